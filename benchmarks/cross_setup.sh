#!/usr/bin/env bash
# Issue 19's table, rerun as written: streams of every mode made here, on a 64x64 crop of the
# sample photo with the shipped models, decoded (a) by the same setup, (b) with XLA emitting the
# code an older CPU runs (--xla_cpu_max_isa=SSE4_2) and (c) by another environment's diffc (e.g.
# the other end of the declared JAX range), each with the compilation cache off. Lossless cells
# say "exact" when the decoded PNG's pixels equal the crop's; the lossy row gives the PSNR.
#
#   benchmarks/cross_setup.sh OUT [OTHER_VENV]
#   benchmarks/cross_setup.sh /tmp/cross /tmp/venv-old   # a venv with jax 0.10.0 and this diffc
set -euo pipefail
out=$1
other=${2:-}
mkdir -p "$out"
export DIFFC_CACHE_DIR=
diffc sample -o "$out/sample.png" --force
python - "$out" <<'EOF'
import sys
from PIL import Image
Image.open(f"{sys.argv[1]}/sample.png").crop((96, 96, 160, 160)).save(f"{sys.argv[1]}/crop.png")
EOF
declare -A modes=([bitsback]="--lossless" [ardm]="--lossless --prior ardm" [max]="--bpp max" [lossy]="--bpp 0.5")
for name in bitsback ardm max lossy; do
    diffc encode "$out/crop.png" ${modes[$name]} -o "$out/$name.dfc" --force --quiet
done
decode() {  # setup, diffc command
    local setup=$1; shift
    for name in bitsback ardm max lossy; do
        if "$@" decode "$out/$name.dfc" -o "$out/$setup-$name.png" --force --quiet 2> "$out/$setup-$name.err"; then
            echo "$setup $name ok"
        else
            echo "$setup $name error: $(tail -1 "$out/$setup-$name.err")"
        fi
    done
}
decode same diffc
XLA_FLAGS=--xla_cpu_max_isa=SSE4_2 decode sse42 diffc
if [ -n "$other" ]; then
    decode other "$other/bin/diffc"
    "$other/bin/python" -c "import jax; print('other environment: jax', jax.__version__)"
fi
python -c "import jax; print('this environment: jax', jax.__version__)"
python - "$out" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
out = Path(sys.argv[1])
crop = np.asarray(Image.open(out / "crop.png"), np.float64)
for name in ("bitsback", "ardm", "max", "lossy"):
    cells = []
    for setup in ("same", "sse42", "other"):
        path = out / f"{setup}-{name}.png"
        if not path.exists():
            cells.append("-" if setup == "other" else "error")
            continue
        got = np.asarray(Image.open(path), np.float64)
        if name == "lossy":
            cells.append(f"{10 * np.log10(255**2 / np.mean((got - crop) ** 2)):.2f} dB")
        else:
            cells.append("exact" if np.array_equal(got, crop) else "NOT EXACT")
    size = (out / f"{name}.dfc").stat().st_size
    print(f"| {name} ({8 * size / crop[..., 0].size:.3f} bpp) | " + " | ".join(cells) + " |")
EOF

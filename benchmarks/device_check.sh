#!/usr/bin/env bash
# The GPU check, run on the device machine as one call (docs/gpu-check.md says how to prepare it):
#   run(command="bash benchmarks/device_check.sh", carry=[".whl", ".devdata"], timeout_s=540)
# 1. times the three coders on the Kodak images in .devdata/kodak (benchmarks/device_timings.py),
#    keeping the GPU's streams;
# 2. in a new process, decodes those streams again (is the GPU deterministic from one process to
#    the next?) and the streams this CPU made (do streams move between CPU and GPU?);
# 3. times lossy DiffC again with the large RCC chunks a GPU can afford (10 bits + margin 2).
# Each writes JSON under $OUT after every row, so a run cut short keeps what it measured.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi -L
names=$(cd .devdata/kodak && ls *.png | sed 's/\.png$//' | paste -sd, -)
python3 benchmarks/device_timings.py .devdata/kodak --names "$names" --save /tmp/gpu-streams \
    --json "$OUT/timings-gpu.json" 2>&1 | tee "$OUT/timings-gpu.log"
mkdir -p /tmp/cross && cp /tmp/gpu-streams/*.dfc /tmp/gpu-streams/*.png /tmp/cross/
for f in .devdata/streams/*; do cp "$f" "/tmp/cross/cpu-$(basename "$f")"; done
python3 benchmarks/device_timings.py .devdata/kodak --modes '' --cross /tmp/cross \
    --json "$OUT/cross-gpu.json" 2>&1 | tee "$OUT/cross-gpu.log"
python3 benchmarks/device_timings.py .devdata/kodak --names "$names" --modes lossy --chunk-bits 10 --margin 2 \
    --json "$OUT/timings-gpu-rcc-10-2.json" 2>&1 | tee "$OUT/timings-gpu-rcc-10-2.log"

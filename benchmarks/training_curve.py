"""Plot training runs' loss curves (train bits/dim, smoothed, and validation bits/dim against
images seen, log scale) from their log.jsonl, with a power-law fit of the first run's validation
points extrapolated tenfold to show what more compute would buy.

    python benchmarks/training_curve.py runs/vdm-small -o docs/vdm-training.png
    python benchmarks/training_curve.py runs/ardm-small runs/ardm-small-plain -o docs/ardm-training.png
    python benchmarks/training_curve.py --card models/checkpoints/vdm-small.json -o docs/vdm-training.png

With ``--card``, the validation history that a model card keeps across the sessions that trained
it (each session resuming the last one's committed resume point), coloured by session.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def load(run: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if "bpd" in r], [r for r in rows if "val_bpd" in r]


def power_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """y = a x^-b + c by a grid over c and least squares in log space; returns (a, b, c)."""
    best = (np.inf, 0.0, 0.0, 0.0)
    for c in np.linspace(0.0, y.min() - 1e-3, 200):
        slope, intercept = np.polyfit(np.log(x), np.log(y - c), 1)
        err = np.sum((np.exp(intercept) * x**slope + c - y) ** 2)
        if err < best[0]:
            best = (err, float(np.exp(intercept)), float(-slope), float(c))
    return best[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="*")
    parser.add_argument("--card", type=Path, help="a model card: plot its validation history by session")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    if args.card is not None:
        plot_card(json.loads(args.card.read_text()), args.output)
        return
    if not args.runs:
        parser.error("give runs or --card")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    top = 0.0
    for i, (run, color) in enumerate(zip(args.runs, ("tab:blue", "tab:green", "tab:red", "tab:purple"))):
        train, val = load(run)
        x = np.array([r["images_seen"] for r in train], dtype=float)
        y = np.array([r["bpd"] for r in train])
        k = max(1, len(y) // 50)
        smooth = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(x[k - 1 :], smooth, lw=1, color=color, alpha=0.5, label=f"{run.name}: train (running mean)")
        vx = np.array([r["images_seen"] for r in val], dtype=float)
        vy = np.array([r["val_bpd"] for r in val])
        ax.plot(vx, vy, "o-", color=color, label=f"{run.name}: validation (cid22/val crops)")
        top = max(top, float(np.max(vy)))
        fit = vx > vx.max() / 20
        if i == 0 and fit.sum() >= 4:
            a, b, c = power_fit(vx[fit], vy[fit])
            ext = np.geomspace(vx[fit].min(), 10 * vx.max(), 100)
            ax.plot(ext, a * ext**-b + c, "--", color=color, alpha=0.6,
                    label=f"power-law fit {a:.3g}·n^-{b:.2f} + {c:.2f}, extrapolated (indicative)")
    ax.set_xscale("log")
    ax.set_xlabel("training crops seen")
    ax.set_ylabel("loss: negative ELBO (bits/dim)")
    ax.set_ylim(top=min(8.0, top + 0.5))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(f"training: {', '.join(run.name for run in args.runs)}")
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


def plot_card(card: dict, output: Path) -> None:
    """Validation bits/dim against crops seen, one colour per session, and a power-law fit of the
    points after the first twentieth, extrapolated tenfold."""
    history = card["val_history"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for session in sorted({r.get("session", 0) for r in history}):
        rows = [r for r in history if r.get("session", 0) == session]
        ax.plot([r["images_seen"] for r in rows], [r["val_bpd"] for r in rows], "o-", ms=3,
                label=f"session {session}: to step {rows[-1]['step']}, {rows[-1]['val_bpd']:.3f} bits/dim")
    vx = np.array([r["images_seen"] for r in history], dtype=float)
    vy = np.array([r["val_bpd"] for r in history])
    fit = vx > vx.max() / 20
    a, b, c = power_fit(vx[fit], vy[fit])
    ext = np.geomspace(vx[fit].min(), 10 * vx.max(), 100)
    ax.plot(ext, a * ext**-b + c, "--", color="gray", label=f"fit {a:.3g}·n^-{b:.2f} + {c:.2f}, extrapolated")
    ax.set_xscale("log")
    ax.set_xlabel("training crops seen")
    ax.set_ylabel("validation negative ELBO (bits/dim)")
    ax.set_ylim(top=min(8.0, float(vy.max()) + 0.3))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{card['name']}: {card['steps']} steps, {card.get('cpu_time_s', 0) / 3600:.1f} CPU-hours")
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()

"""Symbols per second of the rANS entropy layer (``diffc.codec.entropy``) on this machine.

Run: ``python benchmarks/entropy_speed.py [--out docs/entropy-benchmark.md]``. Times the whole
layer call (parameter quantisation, constriction, ideal-cost accounting), best of three.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from diffc.codec import entropy


def best_seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_gaussian(n: int, rng: np.random.Generator) -> tuple[float, float, float]:
    means = rng.normal(size=n) * 3.0
    stds = np.exp(rng.uniform(-1.0, 2.0, size=n))
    symbols = np.round(means + stds * rng.normal(size=n)).astype(np.int64)
    dist = entropy.gaussian(means, stds, bin_width=1.0, radius=1 << 12)
    stack = entropy.Stack()
    push = best_seconds(lambda: entropy.Stack().push(symbols, dist))
    stack.push(symbols, dist)
    data = stack.to_bytes()
    pop = best_seconds(lambda: entropy.Stack.from_bytes(data).pop(dist))
    build = best_seconds(lambda: entropy.gaussian(means, stds, bin_width=1.0, radius=1 << 12))
    return n / push, n / pop, n / build


def bench_categorical(n: int, rng: np.random.Generator) -> tuple[float, float, float]:
    logits = rng.normal(size=(n, 256)) * 2.0
    dist = entropy.categorical_from_logits(logits)
    cdf = dist.probs.cumsum(axis=1)
    symbols = np.minimum((cdf < rng.uniform(size=(n, 1))).sum(axis=1), 255)
    stack = entropy.Stack()
    push = best_seconds(lambda: entropy.Stack().push(symbols, dist))
    stack.push(symbols, dist)
    data = stack.to_bytes()
    pop = best_seconds(lambda: entropy.Stack.from_bytes(data).pop(dist))
    build = best_seconds(lambda: entropy.categorical_from_logits(logits))
    return n / push, n / pop, n / build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write a Markdown table here")
    parser.add_argument("--gaussians", type=int, default=1_000_000)
    parser.add_argument("--categoricals", type=int, default=100_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = [
        ("Gaussian (+-4096 bins)", args.gaussians, *bench_gaussian(args.gaussians, rng)),
        ("categorical, 256 symbols", args.categoricals, *bench_categorical(args.categoricals, rng)),
    ]
    lines = [
        "# Entropy-layer speed",
        "",
        f"Measured by `python benchmarks/entropy_speed.py --out docs/entropy-benchmark.md` on "
        f"{platform.machine()} ({platform.processor() or 'unknown CPU'}), Python "
        f"{platform.python_version()}, one thread. Symbols per second, best of three; push and pop "
        "include parameter handling and the ideal-cost accounting, 'build' is making the "
        "quantised distributions from float parameters (logits for the categorical).",
        "",
        "| distribution | symbols | push /s | pop /s | build /s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, n, push, pop, build in rows:
        lines.append(f"| {name} | {n:,} | {push / 1e6:.2f} M | {pop / 1e6:.2f} M | {build / 1e6:.2f} M |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

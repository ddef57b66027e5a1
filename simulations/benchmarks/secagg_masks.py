"""Benchmark: mask generation of medfed's AES-256-CTR PRG against Flower's `pseudo_rand_gen`.

Both produce one vector of uniform elements mod 2^62 from a seed, per call; Flower's folds
the seed to 32 bits and draws from numpy's MT19937. Run:

    python -m medfed.simulations.benchmarks.secagg_masks [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from medfed.shared.secagg.prg import mask_from_seed

FIELD_BITS = 62
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)


@dataclass(frozen=True)
class Timing:
    """Median seconds per call of one generator at one vector size."""

    size: int
    seconds: float

    @property
    def elements_per_s(self) -> float:
        return self.size / self.seconds

    @property
    def megabytes_per_s(self) -> float:
        return 8 * self.size / self.seconds / 1e6


def median_seconds(generate: Callable[[], object], repeats: int) -> float:
    """Median wall time of `generate()` over `repeats` calls, after one warm-up call."""
    generate()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        generate()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def medfed_generator(size: int) -> Callable[[], object]:
    """A fresh 256-bit seed per call, as each round's masks get."""
    return lambda: mask_from_seed(os.urandom(32), size, FIELD_BITS)


def flower_generator(size: int) -> Callable[[], object] | None:
    """Flower's SecAgg+ mask generator, or None when flwr is not installed."""
    try:
        from medfed.shared.flower_internals import pseudo_rand_gen
    except ImportError:
        return None
    return lambda: pseudo_rand_gen(os.urandom(32), 2**FIELD_BITS, [(size,)])


def run(sizes: Sequence[int], repeats: int) -> list[tuple[Timing, Timing | None]]:
    """(medfed, flwr) timings for each size."""
    rows = []
    for size in sizes:
        ours = Timing(size, median_seconds(medfed_generator(size), repeats))
        flower = flower_generator(size)
        theirs = None if flower is None else Timing(size, median_seconds(flower, repeats))
        rows.append((ours, theirs))
    return rows


def format_table(rows: list[tuple[Timing, Timing | None]]) -> str:
    """A Markdown table: per size, ms per mask, Melem/s and MB/s of each, and the speed ratio."""
    lines = [
        "| elements | medfed AES-256-CTR ms | Melem/s | MB/s "
        "| flwr pseudo_rand_gen ms | Melem/s | MB/s | medfed / flwr speed |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ours, theirs in rows:
        left = (
            f"| {ours.size:,} | {ours.seconds * 1e3:.3f} | {ours.elements_per_s / 1e6:.1f} "
            f"| {ours.megabytes_per_s:.0f} "
        )
        if theirs is None:
            lines.append(left + "| n/a | n/a | n/a | n/a |")
            continue
        lines.append(
            left + f"| {theirs.seconds * 1e3:.3f} | {theirs.elements_per_s / 1e6:.1f} "
            f"| {theirs.megabytes_per_s:.0f} | {theirs.seconds / ours.seconds:.2f}× |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two sizes, few repeats (smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per size")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else SIZES
    repeats = args.repeats or (3 if args.quick else 25)
    print(
        f"SecAgg mask generation, field 2^{FIELD_BITS}, median of {repeats} calls, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(format_table(run(sizes, repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

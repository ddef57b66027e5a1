"""Scale: seconds per round and peak memory of a simulation with 100 and 1000 hospitals.

configs/imaging_cnn.toml (synthetic lesion images, Dirichlet(1.0) label skew, DP CNN) with
`--per-hospital` samples per hospital at `--image-size` pixels, 10 hospitals sampled per round,
secure aggregation off, one CPU per hospital (Ray runs as many hospitals at once as there are
cores). Each size runs in a child process (a fresh Ray); peak memory is summed over that
process and every descendant (Ray's GCS, raylet, agents, workers), sampled every 0.5 s: RSS
(shared library pages counted in every process) and PSS (shared pages split between them).
Run: python -m medfed.simulations.benchmarks.scale [--hospitals 100 1000] [--rounds 3] [--floor]
    [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from medfed.simulations.benchmarks.process_memory import PeakTreeMemory

CONFIG = "configs/imaging_cnn.toml"
SAMPLED = 10  # hospitals per round
TARGET_BYTES = 2 * 1024**3  # the issue: 1000 hospitals in at most 2 GB


def overrides(hospitals: int, rounds: int, per_hospital: int, image_size: int) -> list[str]:
    """The `--set` overrides of one scale run (also what the docs quote)."""
    sampled = min(SAMPLED, hospitals)
    return [
        f"rounds={rounds}",
        f"data.num_hospitals={hospitals}",
        f"data.samples={hospitals * per_hospital}",
        f"data.image_size={image_size}",
        f"strategy.fraction_train={sampled / hospitals}",
        f"strategy.min_hospitals={sampled}",
        f"strategy.fraction_evaluate={sampled / hospitals}",
        "secure_aggregation.enabled=false",
        "simulation.cpus_per_hospital=1",
    ]


def child(settings: list[str], out: Path, kind: str = "medfed") -> None:
    """One run in this process; kind "noop": sim_overhead's no-op ClientApp (the floor)."""
    from medfed.shared.config import load_config
    from medfed.simulations.benchmarks.sim_overhead import noop_client_app
    from medfed.simulations.runner import simulate

    app = noop_client_app() if kind == "noop" else None
    simulate(load_config(CONFIG, settings, environ={}), out, client_app=app)


def measure(settings: list[str], out: Path, kind: str = "medfed") -> dict[str, float]:
    """Run one size in a child process; its round times and the tree's peak memory."""
    command = [sys.executable, "-m", "medfed.simulations.benchmarks.scale", "--child", str(out)]
    command += ["--kind", kind]
    started = time.perf_counter()
    with subprocess.Popen(
        [*command, *settings], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        with PeakTreeMemory(process.pid) as memory:
            stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"scale run failed ({process.returncode}):\n{stdout}\n{stderr[-3000:]}")
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [line for line in lines if line["phase"] == "train"]
    final = [line for line in lines if line["phase"] == "final"]
    return {
        "round": statistics.mean(line["seconds"] for line in train[1:] or train),
        "first": train[0]["seconds"],
        "final": final[0]["seconds"] if final else float("nan"),
        "final_hospitals": len(final[0]["hospitals"]) if final else 0,
        "startup": wall - sum(line["seconds"] for line in lines),
        "wall": wall,
        "peak_rss": memory.peak_rss_bytes,
        "peak_pss": memory.peak_pss_bytes,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hospitals", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-hospital", type=int, default=100, help="samples per hospital")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="20 hospitals, 1 round")
    parser.add_argument(
        "--floor", action="store_true", help="also run the no-op ClientApp: × floor column"
    )
    parser.add_argument("--child", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="medfed", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.child:
        child(rest, Path(args.child), args.kind)
        return 0
    sizes, rounds = ([20], 1) if args.quick else (args.hospitals, args.rounds)
    print(
        f"Scale: {CONFIG}, Dirichlet(1.0) split of {args.per_hospital} synthetic "
        f"{args.image_size}×{args.image_size} images per hospital, DP CNN, {rounds} round(s), "
        f"{SAMPLED} hospitals sampled per round, secure aggregation off, {os.cpu_count()} cores"
    )
    print(
        "| hospitals | app | s / round (rounds 2..) | × floor | round 1 s "
        "| final evaluation s (hospitals) | start-up + teardown s | wall s | peak RSS sum "
        "| peak PSS sum | ≤ 2 GB (RSS / PSS) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    kinds = ("noop", "medfed") if args.floor else ("medfed",)
    floor: float | None = None
    with tempfile.TemporaryDirectory() as scratch:
        for hospitals, kind in ((size, kind) for size in sizes for kind in kinds):
            settings = overrides(hospitals, rounds, args.per_hospital, args.image_size)
            result = measure(settings, Path(scratch) / f"{kind}{hospitals}", kind)
            floor = result["round"] if kind == "noop" else floor
            times = f"{result['round'] / floor:.2f}" if floor else "—"
            rss, pss = result["peak_rss"], result["peak_pss"]
            verdict = " / ".join("yes" if peak <= TARGET_BYTES else "no" for peak in (rss, pss))
            app = "no-op ClientApp (floor)" if kind == "noop" else "medfed DP hospitals"
            print(
                f"| {hospitals} | {app} | {result['round']:.2f} | {times} | {result['first']:.2f} "
                f"| {result['final']:.2f} ({result['final_hospitals']}) "
                f"| {result['startup']:.1f} | {result['wall']:.1f} | {rss / 1024**2:,.0f} MB "
                f"| {pss / 1024**2:,.0f} MB | {verdict} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

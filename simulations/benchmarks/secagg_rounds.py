"""Round time with and without secure aggregation, side by side in one run.

10 simulated hospitals, a ~1M-parameter MLP on synthetic images, DP-SGD on, in Flower's
simulation engine. Reports the mean seconds of rounds 2.. (round 1 includes worker start),
the ratio secure / plain, and message exchanges per round (target 2 vs 1; ≤ 1.05× time).
Run: python -m medfed.simulations.benchmarks.secagg_rounds [--rounds 4] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MEDFED = [sys.executable, "-c", "from medfed.simulations.cli import main; main()"]
WORKLOAD = [
    "data.partition='iid'",
    "data.num_hospitals=10",
    "data.samples=2000",
    "model.name='mlp'",
    "model.hidden_size=700",
    "model.num_layers=2",
    "training.batch_size=64",
    "strategy.min_hospitals=3",
    "privacy.target_epsilon=8.0",
]


def run(out: Path, rounds: int, secure: bool, workload: list[str]) -> tuple[float, float, int]:
    overrides = [*workload, f"rounds={rounds}", f"secure_aggregation.enabled={str(secure).lower()}"]
    command = [*MEDFED, "simulate", "configs/imaging_cnn.toml", "--out", str(out)]
    for override in overrides:
        command += ["--set", override]
    subprocess.run(command, check=True, capture_output=True, text=True)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [line for line in lines if line["phase"] == "train"]
    steady = [line["seconds"] for line in train[1:]] or [train[0]["seconds"]]
    return statistics.mean(steady), train[0]["seconds"], max(line["exchanges"] for line in train)


def parameter_count(workload: list[str]) -> int:
    from medfed.shared.config import ModelConfig
    from medfed.shared.models import build_model

    settings = dict(item.split("=", 1) for item in workload if item.startswith("model."))
    model = build_model(
        ModelConfig(
            name="mlp",
            hidden_size=int(settings["model.hidden_size"]),
            num_layers=int(settings["model.num_layers"]),
        ),
        (1, 28, 28),
        2,
    )
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="2 rounds, a 50k-parameter model")
    args = parser.parse_args()
    workload = list(WORKLOAD)
    rounds = args.rounds
    if args.quick:
        workload = [w.replace("hidden_size=700", "hidden_size=60") for w in workload]
        rounds = 2
    results: dict[bool, list[tuple[float, float, int]]] = {}
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for index, secure in enumerate((False, True, False, True)):  # interleaved: noisy machine
            load_before = os.getloadavg()[0]
            mean, first, exchanges = run(Path(scratch) / str(index), rounds, secure, workload)
            results.setdefault(secure, []).append((mean, first, exchanges))
            runs.append(
                f"{'secure' if secure else 'plain'} {mean:.3f} s/round "
                f"(load {load_before:.1f} -> {os.getloadavg()[0]:.1f})"
            )
    params = parameter_count(workload)
    print(f"10 hospitals, MLP with {params:,} parameters, DP-SGD, {rounds} rounds, 2 runs each")
    print("runs in order: " + "; ".join(runs))
    print("| mode | s / round (rounds 2..) | round 1 s | exchanges / round | ratio |")
    print("|---|---:|---:|---:|---:|")
    plain = statistics.mean(r[0] for r in results[False])
    for secure in (False, True):
        mean = statistics.mean(r[0] for r in results[secure])
        first = statistics.mean(r[1] for r in results[secure])
        name = "secure aggregation (SecAgg+)" if secure else "plain FedAvg"
        print(
            f"| {name} | {mean:.3f} | {first:.2f} | {results[secure][0][2]} | {mean / plain:.2f}× |"
        )


if __name__ == "__main__":
    main()

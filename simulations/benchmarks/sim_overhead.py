"""Simulation round time: medfed's DP hospitals against the engine's floor, as a ratio.

medfed's real DP hospitals next to a no-op ClientApp (replies at once with the model it got)
driven by the same coordinator on the same engine, 4 and 10 hospitals, in one run. Also the
start-up: wall time of the whole command minus its rounds.
Run: python -m medfed.simulations.benchmarks.sim_overhead [--rounds 4] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = "configs/heart_disease.toml"


def noop_client_app():  # built in the child process only
    """A ClientApp that does no work: echoes the received model with minimal metrics."""
    from flwr.app import Message
    from flwr.clientapp import ClientApp

    from medfed.shared.hospital_report import EvaluationReport, TrainingReport
    from medfed.shared.protocol import ARRAYS, Outcome, arrays_to_state, reply_content

    app = ClientApp()

    @app.train()
    def train(msg, context):
        state = arrays_to_state(msg.content.array_records[ARRAYS])
        name = f"noop_{context.node_config['partition-id']}"
        training, evaluation = TrainingReport(num_examples=1.0), EvaluationReport(num_examples=1.0)
        return Message(
            reply_content(Outcome(name, "ok"), state, training, evaluation), reply_to=msg
        )

    @app.evaluate()
    def evaluate(msg, context):
        name = f"noop_{context.node_config['partition-id']}"
        evaluation = EvaluationReport(num_examples=1.0)
        return Message(reply_content(Outcome(name, "ok"), evaluation=evaluation), reply_to=msg)

    return app


def child(kind: str, hospitals: int, rounds: int, out: Path) -> None:
    """One run in this process (a fresh Ray per run)."""
    from medfed.shared.config import load_config
    from medfed.simulations.runner import simulate

    overrides = [f"rounds={rounds}", "secure_aggregation.enabled=false"]
    if hospitals != 4:
        overrides += ["data.partition='iid'", f"data.num_hospitals={hospitals}"]
    run = load_config(CONFIG, overrides, environ={})
    simulate(run, out, client_app=noop_client_app() if kind == "noop" else None)


def measure(kind: str, hospitals: int, rounds: int, out: Path) -> dict[str, float]:
    started = time.perf_counter()
    command = [
        sys.executable,
        "-m",
        "medfed.simulations.benchmarks.sim_overhead",
        "--child",
        kind,
        str(hospitals),
        str(rounds),
        str(out),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [line for line in lines if line["phase"] == "train"]
    steady = train[1:] or train
    return {
        "round": statistics.mean(line["seconds"] for line in steady),
        "first": train[0]["seconds"],
        "startup": wall - sum(line["seconds"] for line in lines),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="4 hospitals, 2 rounds")
    parser.add_argument(
        "--child", nargs=4, metavar=("KIND", "N", "ROUNDS", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        kind, hospitals, rounds, out = args.child
        child(kind, int(hospitals), int(rounds), Path(out))
        return
    sizes, rounds = ((4,), 2) if args.quick else ((4, 10), args.rounds)
    print(f"Simulation round overhead, heart-disease data, {rounds} rounds, secure aggregation off")
    print(
        "| hospitals | app | s / round (rounds 2..) | × floor | round 1 s | start-up + teardown s |"
    )
    print("|---:|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as scratch:
        for hospitals in sizes:
            floor = None
            for kind in ("noop", "medfed"):
                result = measure(kind, hospitals, rounds, Path(scratch) / f"{kind}{hospitals}")
                floor = floor or result["round"]
                label = "no-op ClientApp (floor)" if kind == "noop" else "medfed DP hospitals"
                print(
                    f"| {hospitals} | {label} | {result['round']:.3f} | "
                    f"{result['round'] / floor:.2f} | {result['first']:.2f} | "
                    f"{result['startup']:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()

"""Seconds per round of a deployed federation (SuperLink + 3 SuperNodes, TLS + node auth,
hospitals reaching the loopback SuperLink through medfed-server's nginx, Fleet API only).

Runs, in one go on 127.0.0.1 with the same SuperLink, TLS and node auth:

- Flower's default path (the SuperNode's SuperExec starts a `flwr-clientapp` process per
  message): a no-op ClientApp (replies with a changed copy of the model, imports only Flower:
  the floor the issue names) and medfed's DP ClientApp (torch + Opacus imported every message);
- `medfed-client` as a hospital runs it (the warm executor forks a ready interpreter per task):
  the same no-op ClientApp (what is left is Flower's transport and polling) and medfed's DP
  ClientApp, secure aggregation off and on.

Prints a markdown table.

    python -m medfed.simulations.benchmarks.deployment_rounds [--rounds 5] [--rows 3,4] [--out DIR]

`--rows` picks rows of the table by index (0-4, default all): a quicker before/after check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    RecordDict,
)
from flwr.clientapp import ClientApp

from medfed.shared.processes import free_port, stop_process

BIN = Path(sys.executable).parent
HOSPITALS = {"Cleveland": "Cleveland", "Hungary": "Hungary", "VA": "VA Long Beach"}
NOOP_APP = "medfed.simulations.benchmarks.deployment_rounds:noop_app"

noop_app = ClientApp()


@noop_app.train()
def _echo(msg: Message, context: Context) -> Message:
    """Reply with a changed copy of the received model: no torch, no data, no DP.

    Changed, because Flower stores objects by content hash: an echoed model is already at the
    SuperNode and SuperLink and is never uploaded, which no training hospital can match.
    """
    name = f"node-{context.node_id}"
    outcome = ConfigRecord({"hospital": name, "status": "ok", "code": "", "message": ""})
    received = msg.content.array_records["arrays"]
    changed = ArrayRecord(
        {key: Array(np.nextafter(array.numpy(), np.inf)) for key, array in received.items()}
    )
    content = RecordDict(
        {
            "outcome": outcome,
            "arrays": changed,
            "training": ConfigRecord({"num_examples": 1.0}),
        }
    )
    return Message(content, reply_to=msg)


@noop_app.evaluate()
def _score(msg: Message, context: Context) -> Message:
    outcome = ConfigRecord(
        {"hospital": f"node-{context.node_id}", "status": "ok", "code": "", "message": ""}
    )
    return Message(RecordDict({"outcome": outcome}), reply_to=msg)


def _run(argv: list[str], cwd: Path) -> None:
    subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=cwd, check=True, capture_output=True)


def prepare(root: Path) -> None:
    """Certificates, node keys, identity keys + peers file and one CSV per hospital."""
    import pandas as pd

    from medfed.shared.data.heart_disease import packaged_csv

    _run(["medfed", "certs", "init", "--out", "certs"], root)
    _run(["medfed", "certs", "server", "--ca", "certs", "--name", "127.0.0.1"], root)
    frame = pd.read_csv(packaged_csv())
    for short, name in HOSPITALS.items():
        _run(["medfed", "certs", "node", short, "--out", "certs/nodes"], root)
        identity = ["--name", short, "--out", f"identity/{short}"]
        _run(["medfed", "certs", "hospital-identity", *identity], root)
        frame[frame["dataset"] == name].to_csv(root / f"{short}.csv", index=False)
    entries = [(root / "identity" / h / f"{h}.peer.toml").read_text() for h in HOSPITALS]
    (root / "peers.toml").write_text("\n".join(entries), encoding="utf-8")


def write_configs(root: Path, rounds: int, secure: bool, port: int) -> None:
    hospitals = "".join(
        f'\n[[deployment.hospitals]]\nname = "{h}"\npublic_key = "certs/nodes/{h}.pub"\n'
        for h in HOSPITALS
    )
    (root / "federation.toml").write_text(
        f'name = "bench"\nrounds = {rounds}\n[model]\nname = "logistic"\n'
        '[training]\nbatch_size = 256\nlearning_rate = 2.0\ndevice = "cpu"\n'
        "[strategy]\nmin_hospitals = 3\ntimeout_s = 300\n"
        f"[secure_aggregation]\nenabled = {'true' if secure else 'false'}\n"
        f'[deployment]\naddress = "127.0.0.1:{port}"\nca_certificate = "certs/ca.crt"\n'
        'server_certificate = "certs/server.crt"\nserver_key = "certs/server.key"\n' + hospitals
    )
    for h in HOSPITALS:
        (root / f"{h}.toml").write_text(
            f'name = "{h}"\nstate_dir = "state/{h}"\n[connection]\n'
            f'superlink = "127.0.0.1:{port}"\nroot_certificates = "certs/ca.crt"\n'
            f'private_key = "certs/nodes/{h}"\nclientappio_port = {free_port()}\n'
            f'[data]\npath = "{h}.csv"\n[privacy]\nmax_epsilon = 1000.0\n'
            f'ledger_dir = "state/{h}/ledger"\n'
            f"[secure_aggregation]\nenabled = {'true' if secure else 'false'}\n"
            f'identity_key = "identity/{h}/{h}.identity.key"\npeers_file = "peers.toml"\n'
        )


def _start(argv: list[str], cwd: Path, log: str) -> subprocess.Popen:
    with (cwd / log).open("ab") as handle:
        return subprocess.Popen(
            [str(BIN / argv[0]), *argv[1:]],
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def measure(
    root: Path, label: str, rounds: int, secure: bool, clientapp: str | None, flower_path: bool
) -> dict:
    """One federation run; seconds per training round as the coordinator measured them.

    `flower_path`: the hospitals' SuperNodes start a process per message (Flower's default)."""
    write_configs(root, rounds, secure, free_port())
    out = root / f"run-{label}"
    server_argv = ["medfed-server", "--config", "federation.toml", "--out", str(out)]
    if clientapp:
        server_argv += ["--clientapp", clientapp]
    server = _start(server_argv, root, f"server-{label}.out")
    client_flags = ["--unsafe-flower-subprocess"] if flower_path else []
    clients = [
        _start(["medfed-client", "--config", f"{h}.toml", *client_flags], root, f"{h}-{label}.out")
        for h in HOSPITALS
    ]
    try:
        server.wait(timeout=900)
    finally:
        for process in [*clients, server]:
            stop_process(process, grace_s=15)
    lines = [json.loads(t) for t in (out / "metrics.jsonl").read_text().splitlines()]
    train = [line["seconds"] for line in lines if line["phase"] == "train"]
    steady = train[1:] or train  # round 1 includes the hospitals' cold start
    return {
        "label": label,
        "rounds": len(train),
        "first": train[0],
        "steady": sum(steady) / len(steady),
        "exchanges": lines[-2]["exchanges"] if len(lines) > 1 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--rows", default=None, help="comma-separated row indices (default: all)")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="medfed-deploy-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    prepare(root)
    started = time.perf_counter()
    rows = [  # (runtime, ClientApp, secure aggregation, ClientApp reference, Flower's path)
        ("Flower: process per message", "no-op (the floor)", False, NOOP_APP, True),
        ("Flower: process per message", "medfed DP", False, None, True),
        ("medfed-client: warm executor", "no-op", False, NOOP_APP, False),
        ("medfed-client: warm executor", "medfed DP", False, None, False),
        ("medfed-client: warm executor", "medfed DP + SecAgg+", True, None, False),
    ]
    chosen = range(len(rows)) if args.rows is None else [int(i) for i in args.rows.split(",")]
    results = [
        (runtime, app, measure(root, f"{index}", args.rounds, secure, reference, flower))
        for index, (runtime, app, secure, reference, flower) in enumerate(rows)
        if index in chosen
    ]
    print(f"\n3 hospitals, TLS + node auth, 127.0.0.1, {os.cpu_count()} CPUs, {args.rounds} rounds")
    print(
        "| hospital runtime | ClientApp | round 1 (s) | later rounds, mean (s/round) | exchanges |"
    )
    print("|---|---|---|---|---|")
    for runtime, app, r in results:
        print(f"| {runtime} | {app} | {r['first']:.1f} | {r['steady']:.1f} | {r['exchanges']} |")
    print(f"\ntotal {time.perf_counter() - started:.0f} s; files in {root}")


if __name__ == "__main__":
    main()

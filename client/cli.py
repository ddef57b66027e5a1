"""`medfed-client --config hospital.toml`: check the hospital's setup, then run its SuperNode.

Everything is checked before connecting (each problem one line, exit 2). Then the hospital's
warm executor starts (torch, Opacus and the data loaded once, see `medfed.client.executor`) and
the SuperNode in Flower's `--isolation process` mode, whose node config carries the data path,
ledger directory, budget and policy; the executor runs the SuperNode's ClientApp tasks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from medfed.client.executor import ExecutorProcess
from medfed.client.hospital_config import HospitalConfig, load_hospital_config
from medfed.shared.cli import run_cli
from medfed.shared.errors import HospitalUnavailable, MedfedError
from medfed.shared.processes import stop_process

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
RETRY_S = 1.0
EXECUTOR_START_S = 300.0  # importing torch + Opacus on a busy machine, then loading the data


def problems_of(config: HospitalConfig, source: Path) -> list[str]:
    """Every problem found before connecting, one line each (empty = ready)."""
    from cryptography.hazmat.primitives import serialization

    from medfed.client.node_hospital import cached_data
    from medfed.client.secagg_session import load_identity

    found = []
    connection = config.connection
    if not connection.insecure:
        certificate = connection.root_certificates
        if certificate is None or not certificate.is_file():
            found.append(
                f"{source}: connection.root_certificates: {certificate} not found (the "
                "coordinator's ca.crt; or connection.insecure = true for a plaintext test)"
            )
        key = connection.private_key
        if key is None or not key.is_file():
            found.append(
                f"{source}: connection.private_key: {key} not found "
                "(create it with `medfed certs node NAME`)"
            )
        else:
            try:
                serialization.load_ssh_private_key(key.read_bytes(), password=None)
            except ValueError as exc:
                found.append(f"{source}: connection.private_key: {key}: not an OpenSSH key ({exc})")
    try:
        cached_data(config.data.loader_config(), config.name, _cache_dir(config))
    except MedfedError as error:
        found.append(f"{source}: {error}")
    secure = config.secure_aggregation
    if secure.enabled:
        try:
            load_identity(config.name, secure.identity_key, secure.peers_file)
        except MedfedError as error:
            found.append(f"{source}: {error}")
    return found


def _cache_dir(config: HospitalConfig) -> Path:
    return config.state_dir / "cache"


def node_config_file(config: HospitalConfig) -> Path:
    """STATE_DIR/node-config.toml: the flat keys the deployed ClientApp reads."""
    values = {
        "name": config.name,
        "data": config.data.loader_config().model_dump_json(exclude={"path"}),
        "data-path": str(config.data.path),
        "cache-dir": str(_cache_dir(config)),
        "head-dir": str(config.privacy.head_dir),
        "ledger-dir": str(config.privacy.ledger_dir),
        "max-epsilon": config.privacy.max_epsilon,
        "delta": config.privacy.delta,
        "accountant": config.privacy.accountant,
        "count-noise-multiplier": config.privacy.count_noise_multiplier,
        "max-evaluation-epsilon": config.privacy.max_evaluation_epsilon,
        "max-evaluations": config.privacy.max_evaluations,
        "privacy-enabled": config.privacy.enabled,
        "device": config.device,
        "threads": config.threads,
        "policy": config.policy.model_dump_json(),
        "secure-aggregation": config.secure_aggregation.shared().model_dump_json(),
        "identity-key": str(config.secure_aggregation.identity_key or ""),
        "peers-file": str(config.secure_aggregation.peers_file or ""),
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path = config.state_dir / "node-config.toml"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def runtime_api_address(config: HospitalConfig) -> str:
    """Where the SuperNode serves its Runtime API to the executor (loopback only)."""
    return f"127.0.0.1:{config.connection.clientappio_port}"


def supernode_command(
    config: HospitalConfig, node_config: Path, secret_file: Path | None
) -> list[str]:
    """The SuperNode's command line: its tasks left to medfed's executor (authenticated with
    `secret_file`), or with `secret_file=None` to Flower's own process-per-message SuperExec."""
    connection = config.connection
    command = [
        str(Path(sys.executable).parent / "flower-supernode"),
        "--superlink",
        connection.superlink,
        "--node-config",
        str(node_config),
        "--port",
        str(connection.clientappio_port),
    ]
    if secret_file is not None:
        command += ["--isolation", "process", "--superexec-auth-secret-file", str(secret_file)]
    if connection.max_wait_s is not None:
        command += ["--max-wait-time", str(connection.max_wait_s)]
    if connection.insecure:
        return [*command, "--insecure"]
    return [
        *command,
        "--root-certificates",
        str(connection.root_certificates),
        "--auth-supernode-private-key",
        str(connection.private_key),
    ]


@app.command()
def start(
    config: Annotated[Path, typer.Option("--config", help="the hospital's hospital.toml")],
    check: Annotated[bool, typer.Option("--check", help="validate only; do not connect")] = False,
    flower_subprocess: Annotated[
        bool,
        typer.Option(
            "--unsafe-flower-subprocess",
            hidden=True,
            help="benchmarks only, UNSAFE: Flower's own process per message, which imports "
            "whatever ClientApp the coordinator's app bundle names",
        ),
    ] = False,
) -> None:
    """Check the hospital's config and data, then run its Flower SuperNode until stopped."""
    hospital = load_hospital_config(config)
    found = problems_of(hospital, config)
    if found:
        for line in found:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2)
    typer.echo(f"hospital '{hospital.name}': config and data OK")
    if check:
        return
    if hospital.connection.insecure:
        typer.echo("WARNING: connection.insecure = true: plaintext, unauthenticated", err=True)
    if flower_subprocess:
        typer.echo(
            "WARNING: --unsafe-flower-subprocess: Flower imports the ClientApp the "
            "coordinator's app bundle names, so the coordinator can run code on this machine",
            err=True,
        )
    environment = dict(os.environ)
    environment["FLWR_HOME"] = str(hospital.state_dir / "flwr")
    environment.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # a hospital node does not phone home
    # With --unsafe-flower-subprocess the SuperNode starts `flower-superexec` by name: ours.
    bin_dir = str(Path(sys.executable).parent)
    environment["PATH"] = os.pathsep.join([bin_dir, environment.get("PATH", "")])

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # the `finally`s below stop the executor and SuperNode

    signal.signal(signal.SIGTERM, stop)
    node_config = node_config_file(hospital)
    executor = None
    if not flower_subprocess:
        address, executor_log = runtime_api_address(hospital), hospital.state_dir / "executor.log"
        executor = ExecutorProcess(executor_log, address, node_config, environment)
    try:
        if executor is not None:
            executor.start(EXECUTOR_START_S)
        log_path = hospital.state_dir / "supernode.log"
        typer.echo(f"SuperNode connecting to {hospital.connection.superlink}; log: {log_path}")
        code = _run_supernode(hospital, node_config, environment, log_path, executor)
    except HospitalUnavailable as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        if executor is not None:
            executor.stop()
    if code != 0:
        typer.echo(
            f"error: the SuperNode exited with {code} (coordinator unreachable, TLS mismatch "
            f"or this hospital's key not registered); see {log_path}",
            err=True,
        )
        raise typer.Exit(1)


def _run_supernode(
    hospital: HospitalConfig,
    node_config: Path,
    environment: dict[str, str],
    log_path: Path,
    executor: ExecutorProcess | None,
) -> int:
    """Run the SuperNode (and keep the executor running); restart the SuperNode when it fails
    (the coordinator may not have registered this hospital yet) until `connection.max_wait_s`
    has passed. Returns the last exit code."""
    max_wait_s = hospital.connection.max_wait_s
    deadline = None if max_wait_s is None else time.monotonic() + max_wait_s
    node = None
    try:
        while True:
            with log_path.open("ab") as log:
                node = subprocess.Popen(
                    supernode_command(hospital, node_config, executor and executor.secret_file),
                    env=environment,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            code = _wait_keeping_executor(node, executor)
            if code == 0 or (deadline is not None and time.monotonic() > deadline):
                return code
            typer.echo(f"SuperNode exited with {code}; retrying in {RETRY_S:.0f} s", err=True)
            time.sleep(RETRY_S)
    finally:
        if node is not None:
            stop_process(node)


def _wait_keeping_executor(node: subprocess.Popen, executor: ExecutorProcess | None) -> int:
    """The SuperNode's exit code; an executor that dies meanwhile is restarted."""
    while True:
        try:
            return node.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        if executor is not None and not executor.running():
            typer.echo("the hospital's executor stopped; restarting it", err=True)
            executor.start(EXECUTOR_START_S)


def main() -> None:
    """Console entry point: user errors exit 2 with one line, anything else exits 1."""
    run_cli(app)

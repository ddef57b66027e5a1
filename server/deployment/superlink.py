"""The coordinator's Flower processes: the SuperLink, hospital registration, run submission.

Each runs with its own FLWR_HOME (RUN_DIR/superlink) and in its own process group, so the
coordinator stops exactly what it started. Runtime dependency installation is always off.
The SuperLink listens on 127.0.0.1 only (its Control API authenticates nobody in open-source
Flower): hospitals reach its Fleet API through nginx (`proxy`), the operator's `flwr` reaches
it over loopback TLS with a certificate made for the run (RUN_DIR/superlink/loopback).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from medfed.server.deployment.config import DeploymentConfig
from medfed.shared.crypto.certs import create_ca, create_server_certificate
from medfed.shared.errors import MedfedError

CONNECTION = "medfed"
LOOPBACK, LOOPBACK_NAME = "127.0.0.1", "localhost"  # the SuperLink's address, its TLS names
CLIENTAPP = "medfed.client.deployed_app:app"
# The Flower app `flwr run` submits: both components come from the installed medfed package,
# so the FAB holds only this file and nothing is installed at run time.
APP_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "medfed-app"
version = "0.1.0"
description = "medfed: federated, differentially private learning for hospitals"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "medfed"

[tool.flwr.app.components]
serverapp = "medfed.server.deployed_app:app"
clientapp = "medfed.client.deployed_app:app"

[tool.flwr.app.config]
run-dir = ""
input-shape = "13"
num-classes = 2
expected-hospitals = 1
poll-interval-s = 0.1
resume = false
"""


class DeploymentError(MedfedError):
    """A Flower process of the coordinator failed to start or to accept the run."""

    code = "deployment_error"


def _binary(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def flower_environment(flwr_home: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment["FLWR_HOME"] = str(flwr_home)
    # The SuperLink starts `flower-superexec` by name: it must find this environment's copy.
    bin_dir = str(Path(sys.executable).parent)
    environment["PATH"] = os.pathsep.join([bin_dir, environment.get("PATH", "")])
    environment["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
    # Flower's documented SuperExec knob: look for work every 0.2 s instead of every 1 s.
    environment.setdefault("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "0.2")
    return environment


@dataclass(frozen=True)
class LoopbackTLS:
    """The SuperLink's own TLS identity on 127.0.0.1 (nginx and `flwr` verify it)."""

    ca_certificate: Path
    certificate: Path
    key: Path


def loopback_tls(flwr_home: Path) -> LoopbackTLS:
    """FLWR_HOME/loopback/{ca.crt,server.crt,server.key}: made once per run directory, kept
    for `--resume`. The CA's key is deleted once it signed: nothing else is ever signed."""
    folder = flwr_home / "loopback"
    tls = LoopbackTLS(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    if all(path.is_file() for path in (tls.ca_certificate, tls.certificate, tls.key)):
        return tls
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in folder.iterdir():
        stale.unlink()
    create_ca(folder, common_name="medfed SuperLink loopback CA", days=3650)
    create_server_certificate(folder, folder, [LOOPBACK, LOOPBACK_NAME], days=3650)
    (folder / "ca.key").unlink()
    return tls


def write_connection(flwr_home: Path, port: int, tls: LoopbackTLS | None) -> None:
    """FLWR_HOME/config.toml naming the loopback SuperLink for the `flwr` CLI."""
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]"]
    lines.append(f'address = "{LOOPBACK}:{port}"')
    if tls is None:
        lines.append("insecure = true")
    else:
        lines.append(f'root-certificates = "{tls.ca_certificate}"')
    flwr_home.mkdir(parents=True, exist_ok=True, mode=0o700)
    (flwr_home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def superlink_command(
    deployment: DeploymentConfig, flwr_home: Path, port: int, tls: LoopbackTLS | None
) -> list[str]:
    """`flower-superlink` on 127.0.0.1:`port`; `tls` None: plaintext (`--insecure`)."""
    command = [
        _binary("flower-superlink"),
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--database",
        str(flwr_home / "state.db"),
        "--disable-runtime-dependency-installation",
    ]
    if tls is None:
        return [*command, "--insecure"]
    command += [
        "--ssl-ca-certfile",
        str(tls.ca_certificate),
        "--ssl-certfile",
        str(tls.certificate),
        "--ssl-keyfile",
        str(tls.key),
    ]
    return [*command, "--enable-supernode-auth"] if deployment.node_authentication else command


def start_process(command: list[str], flwr_home: Path, log_path: Path) -> subprocess.Popen:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            env=flower_environment(flwr_home),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_port(
    host: str, port: int, process: subprocess.Popen, timeout_s: float, what: str = "the SuperLink"
) -> None:
    """Return once `host:port` accepts connections (`what` started `process`).

    Raises:
        DeploymentError: the process exited or the port stayed closed for `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DeploymentError(f"{what} exited with {process.returncode} at start")
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise DeploymentError(f"{what} did not listen on {host}:{port} in {timeout_s:.0f} s")


def register_hospitals(deployment: DeploymentConfig, flwr_home: Path) -> None:
    """Register every listed hospital's public key with the SuperLink (in parallel; a key
    the SuperLink already knows is fine).

    Raises:
        DeploymentError: the SuperLink refused a key (the hospital is named).
    """
    running = {
        hospital.name: subprocess.Popen(
            [
                _binary("flwr"),
                "supernode",
                "register",
                str(hospital.public_key),
                CONNECTION,
                "--name",
                hospital.name,
            ],
            env=flower_environment(flwr_home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for hospital in deployment.hospitals
    }
    failures = []
    for name, process in running.items():
        output, _ = process.communicate(timeout=120)
        if process.returncode != 0 and "already" not in output.lower():
            last = output.strip().splitlines()[-1] if output.strip() else str(process.returncode)
            failures.append(f"registering hospital '{name}' failed: {last}")
    if failures:
        raise DeploymentError("; ".join(failures))


def submit_run(
    run_config: dict[str, str | int | float | bool],
    flwr_home: Path,
    log_path: Path,
    clientapp: str = CLIENTAPP,
) -> subprocess.Popen:
    """`flwr run --stream` the medfed app; the process ends when the run does.

    `clientapp` replaces the hospitals' ClientApp (benchmarks measure a no-op one).
    """
    app_dir = flwr_home / "app"
    app_dir.mkdir(parents=True, exist_ok=True)
    pyproject = APP_PYPROJECT.replace(CLIENTAPP, clientapp)
    (app_dir / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    pairs = " ".join(f"{key}={_toml(value)}" for key, value in run_config.items())
    command = [_binary("flwr"), "run", str(app_dir), CONNECTION, "--stream", "--run-config", pairs]
    return start_process(command, flwr_home, log_path)


def _toml(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)

"""Multi-process deployment harness: the commands of docs/deployment.md, on 127.0.0.1.

Every process is started in its own process group and killed (group and all) when the
harness closes, whatever the test did.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from medfed.shared.data.heart_disease import packaged_csv
from medfed.shared.processes import free_port

BIN = Path(sys.executable).parent
DOCS = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
HOSPITALS = {"Cleveland": "Cleveland", "Hungary": "Hungary", "VA": "VA Long Beach"}


def documented_commands() -> list[str]:
    """The `$ ` command lines of docs/deployment.md."""
    lines = DOCS.read_text(encoding="utf-8").splitlines()
    return [line[2:].strip() for line in lines if line.startswith("$ ")]


def split_heart_data(folder: Path) -> None:
    """One CSV per hospital, from the packaged UCI file's `dataset` column."""
    frame = pd.read_csv(packaged_csv())
    for short, name in {**HOSPITALS, "Switzerland": "Switzerland"}.items():
        frame[frame["dataset"] == name].to_csv(folder / f"{short}.csv", index=False)


FEDERATION = """name = "deployment"
rounds = {rounds}

[model]
name = "logistic"

[training]
batch_size = 256
learning_rate = 2.0
class_weighted = true
device = "cpu"

[privacy]
target_epsilon = 1.0

[strategy]
min_hospitals = {min_hospitals}
timeout_s = {timeout_s}
{strategy_extra}
[secure_aggregation]
enabled = {secure}  # false: plaintext at both sides, explicitly (each hospital's table too)

[deployment]
address = "127.0.0.1:{port}"
ca_certificate = "certs/ca.crt"
server_certificate = "certs/server.crt"
server_key = "certs/server.key"
expected_hospitals = {expected}
"""

HOSPITAL = """name = "{name}"
state_dir = "state/{name}"

[connection]
superlink = "127.0.0.1:{port}"
root_certificates = "certs/ca.crt"
private_key = "certs/nodes/{key}"
clientappio_port = {clientappio_port}
insecure = {insecure}
{max_wait}
[data]
path = "{name}.csv"

[privacy]
max_epsilon = 5.0
ledger_dir = "state/{name}/ledger"

[secure_aggregation]
enabled = {secure}
identity_key = "identity/{name}/{name}.identity.key"
peers_file = "peers.toml"

[policy]
allowed_models = ["logistic"]
max_local_epochs = 5
max_rounds = {max_rounds}
"""


class Deployment:
    """A coordinator folder and hospital folders under `root`, and the processes started."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.processes: list[subprocess.Popen] = []
        root.mkdir(parents=True, exist_ok=True)
        split_heart_data(root)

    def run(self, command: str) -> subprocess.CompletedProcess:
        """One documented command, to completion."""
        assert command in documented_commands(), f"not in docs/deployment.md: {command}"
        argv = command.split()
        argv[0] = str(BIN / argv[0])
        return subprocess.run(argv, cwd=self.root, capture_output=True, text=True, check=True)

    def make_certs(self, registered: list[str], unregistered: list[str] = ()) -> None:
        self.run("medfed certs init --out certs")
        self.run("medfed certs server --ca certs --name 127.0.0.1 --name localhost")
        for name in [*registered, *unregistered]:
            command = f"medfed certs node {name} --out certs/nodes"
            if command in documented_commands():
                self.run(command)
            else:  # extra test hospitals (an intruder, a strict policy) beyond the docs
                argv = [str(BIN / "medfed"), *command.split()[1:]]
                subprocess.run(argv, cwd=self.root, check=True, capture_output=True)
        self.make_identities(registered, unregistered)

    def make_identities(self, members: list[str], others: list[str] = ()) -> None:
        """Each hospital's identity key (made "at the hospital"), and the peers file pinning
        the members' keys that every hospital would assemble after comparing fingerprints."""
        for name in [*members, *others]:
            command = f"medfed certs hospital-identity --name {name} --out identity/{name}"
            if command in documented_commands():
                self.run(command)
            else:
                argv = [str(BIN / "medfed"), *command.split()[1:]]
                subprocess.run(argv, cwd=self.root, check=True, capture_output=True)
        entries = [
            (self.root / "identity" / name / f"{name}.peer.toml").read_text() for name in members
        ]
        (self.root / "peers.toml").write_text("\n".join(entries), encoding="utf-8")
        self.run("medfed certs fingerprints peers.toml")

    def write_federation(
        self,
        registered: list[str],
        rounds: int = 2,
        timeout_s: float = 300,
        expected: int = 3,
        secure: bool = False,
        min_hospitals: int = 2,
        strategy_extra: str = "",
    ) -> Path:
        """federation.toml; `strategy_extra`: more `key = value` lines for [strategy]."""
        text = FEDERATION.format(
            rounds=rounds,
            timeout_s=timeout_s,
            min_hospitals=min_hospitals,
            strategy_extra=strategy_extra,
            port=self.port,
            expected=expected,
            secure=str(secure).lower(),
        )
        for name in registered:
            text += (
                f'\n[[deployment.hospitals]]\nname = "{name}"\n'
                f'public_key = "certs/nodes/{name}.pub"\n'
            )
        path = self.root / "federation.toml"
        path.write_text(text, encoding="utf-8")
        return path

    def write_hospital(
        self,
        name: str,
        key: str | None = None,
        insecure: bool = False,
        max_rounds: int = 10,
        max_wait_s: float | None = None,
        secure: bool = False,
    ) -> Path:
        text = HOSPITAL.format(
            name=name,
            secure=str(secure).lower(),
            key=key or name,
            port=self.port,
            clientappio_port=free_port(),
            insecure="true" if insecure else "false",
            max_wait=f"max_wait_s = {max_wait_s}\n" if max_wait_s else "",
            max_rounds=max_rounds,
        )
        path = self.root / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        return path

    def start(self, command: str, log_name: str) -> subprocess.Popen:
        """A long-running command (server or client) in its own process group."""
        argv = command.split()
        argv[0] = str(BIN / argv[0])
        log = (self.root / log_name).open("ab")
        process = subprocess.Popen(
            argv, cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.processes.append(process)
        return process

    def start_server(self, extra: str = "") -> subprocess.Popen:
        command = "medfed-server --config federation.toml --out run"
        return self.start(f"{command} {extra}".strip(), "server.out")

    def start_hospital(self, name: str) -> subprocess.Popen:
        return self.start(f"medfed-client --config {name}.toml", f"{name}.out")

    @staticmethod
    def wait_for(predicate, timeout_s: float, interval_s: float = 0.5) -> bool:  # noqa: ANN001
        return wait_for(predicate, timeout_s, interval_s)

    def kill_tree(self, process: subprocess.Popen) -> None:
        """SIGKILL `process` and every process group below it (a crash, not a shutdown)."""
        for group in _groups_below(process.pid) | {process.pid}:
            _kill_group(group)
        process.wait(timeout=10)

    def signal_tree(self, process: subprocess.Popen, signum: int, only: str = "") -> None:
        """Send `signum` to `process`'s group and every process group below it (`only`: just
        the groups whose leader's command line contains it)."""
        for group in _groups_below(process.pid) | {process.pid}:
            try:
                if only and only not in Path(f"/proc/{group}/cmdline").read_bytes().decode():
                    continue
                os.killpg(group, signum)
            except (OSError, ProcessLookupError, PermissionError):
                pass

    def metrics(self) -> list[dict]:
        path = self.root / "run" / "metrics.jsonl"
        text = path.read_text() if path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def output(self, log_name: str) -> str:
        path = self.root / log_name
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """SIGKILL every process group started here, those its members started, and any
        orphaned Flower process working under `root`."""
        groups = set()
        for process in self.processes:
            groups |= _groups_below(process.pid) | {process.pid}
        groups |= _groups_mentioning(str(self.root))
        groups.discard(os.getpgid(0))
        for group in groups:
            _kill_group(group)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def _kill_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _groups_below(pid: int) -> set[int]:
    """Process groups of `pid`'s descendants (the SuperLink/SuperNode run in their own)."""
    children: dict[int, list[int]] = {}
    groups: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(entry.name)
        children.setdefault(int(fields[1]), []).append(child)
        groups[child] = int(fields[2])
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(groups[child])
            stack.append(child)
    return found


def _groups_mentioning(text: str) -> set[int]:
    """Process groups of processes whose command line mentions `text` (a test's folder)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.add(os.getpgid(int(entry.name)))
        except (OSError, ProcessLookupError):
            continue
    return found


def wait_for(predicate, timeout_s: float, interval_s: float = 0.5) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


@pytest.fixture(scope="module")
def deployment_in(tmp_path_factory):
    """`deployment_in(name)` → a Deployment whose processes are all killed at module end."""
    made: list[Deployment] = []

    def make(name: str) -> Deployment:
        made.append(Deployment(tmp_path_factory.mktemp(name)))
        return made[-1]

    yield make
    for deployment in made:
        deployment.close()

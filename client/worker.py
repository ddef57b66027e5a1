"""The hospital's warm worker: one long-lived process that answers the coordinator's messages.

Flower's SuperNode starts a fresh `flwr-clientapp` process per message; importing torch and
Opacus there costs seconds per round. `medfed-client` therefore starts this worker beside the
SuperNode: it imports everything and loads the hospital's data once, then serves the relay
ClientApp (`medfed.client.deployed_app`) over a Unix socket in a private (0700) folder, with a
random key (multiprocessing's HMAC handshake) so that only the hospital's own relay gets in.
Network traffic stays Flower's; this is a local hand-off between two processes of one node.

    python -m medfed.client.worker --node-config STATE/node-config.toml --socket S --key-file K
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import TYPE_CHECKING

from flwr.app import Context, RecordDict

from medfed.shared.errors import HospitalUnavailable, MedfedError, ProtocolError
from medfed.shared.processes import stop_process

if TYPE_CHECKING:  # medfed-client imports this module; torch loads in the worker only
    from medfed.client.client_app import HospitalLoader

log = logging.getLogger("medfed.client")


class WorkerProcess:
    """The worker as `medfed-client` runs it: started, waited for, restarted, stopped.

    Its socket and key live in a fresh private folder of the system temp dir (created 0700; a
    Unix socket path must stay under 108 bytes); the key file is written 0600.
    """

    def __init__(self, log_path: Path) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="medfed-worker-"))
        self.socket, self.key_file = self.folder / "hospital.sock", self.folder / "authkey"
        descriptor = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, node_config: Path, timeout_s: float) -> None:
        """Start the worker and wait until it listens.

        Raises:
            HospitalUnavailable: it exited or did not listen within `timeout_s`.
        """
        self.socket.unlink(missing_ok=True)
        command = [sys.executable, "-m", "medfed.client.worker", "--node-config", str(node_config)]
        command += ["--socket", str(self.socket), "--key-file", str(self.key_file)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise HospitalUnavailable(
                    f"the hospital's worker did not start; see {self.log_path}"
                )
            time.sleep(0.1)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.folder, ignore_errors=True)


def _serve_one(connection: Connection, load_hospital: HospitalLoader) -> None:
    from medfed.client.client_app import answer, refusal

    try:
        request = connection.recv()
    except (EOFError, OSError):
        return  # the relay went away (its process was stopped); nothing was done
    try:
        message_type, content, context = request
        if not (
            isinstance(message_type, str)
            and isinstance(content, RecordDict)
            and isinstance(context, Context)
        ):
            raise ProtocolError("worker request is not (message type, content, context)")
    except (TypeError, ValueError, ProtocolError) as error:
        log.warning("malformed request from the relay: %s", error)
        reply, state = refusal("unknown", ProtocolError(str(error))), None
    else:
        started = time.perf_counter()
        reply, state = answer(message_type, content, context, load_hospital), context.state
        log.info("answered a %s message in %.3f s", message_type, time.perf_counter() - started)
    try:
        connection.send((reply, state))
    except OSError as error:
        log.warning("could not hand the reply back to the relay: %s", error)


def serve(listener: Listener, load_hospital: HospitalLoader) -> None:
    """Answer one relay request per connection until the listener is closed."""
    while True:
        try:
            connection = listener.accept()
        except (OSError, EOFError, AuthenticationError) as error:
            if not Path(str(listener.address)).exists():
                return  # closed: multiprocessing removed the socket file
            log.warning("refused a connection to the worker: %s", error)
            continue
        with connection:
            _serve_one(connection, load_hospital)


def _exit_with_parent(parent_pid: int) -> None:
    """Stop when `medfed-client` is gone (SIGKILL leaves no one to stop this process)."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(0)


def warm_up(node_config_path: Path) -> HospitalLoader:
    """Import torch + Opacus, load the hospital's data into memory; returns the loader."""
    import torch

    from medfed.client import trainer  # noqa: F401 - imports Opacus now, not in round 1
    from medfed.client.node_hospital import NodeHospital

    node_config = tomllib.loads(node_config_path.read_text(encoding="utf-8"))
    torch.set_num_threads(int(node_config.get("threads", 1)))
    load_hospital = NodeHospital()
    load_hospital(
        Context(run_id=0, node_id=0, node_config=node_config, state=RecordDict(), run_config={})
    )
    return load_hospital


def main() -> None:
    parser = argparse.ArgumentParser(description="medfed's hospital worker (medfed-client)")
    parser.add_argument("--node-config", type=Path, required=True)
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--key-file", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        load_hospital = warm_up(args.node_config)
    except MedfedError as error:
        log.error("worker cannot start: %s", error)
        raise SystemExit(2) from None
    authkey = args.key_file.read_bytes()
    with Listener(str(args.socket), family="AF_UNIX", authkey=authkey) as listener:
        log.info("worker ready on %s", args.socket)
        serve(listener, load_hospital)


if __name__ == "__main__":
    main()

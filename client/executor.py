"""The hospital's warm executor: runs the SuperNode's ClientApp tasks without a cold start.

Flower's default SuperExec starts a fresh `flwr-clientapp` interpreter per message, which
spends seconds importing Flower, torch and Opacus before any work. `medfed-client` therefore
runs its SuperNode in Flower's `--isolation process` mode and starts this executor beside it.
It imports everything and loads the hospital's data once, asks the SuperNode's Runtime API
for a task every `poll_s`, and forks a copy of itself per task that runs Flower's own
`run_clientapp` (exactly what `flwr-clientapp` runs) with the task's token. The fork starts
warm in milliseconds, and its crash cannot take the executor down.

Task acquisition is authenticated with the SuperNode's SuperExec shared secret (a 0600 file
in a 0700 folder that `medfed-client` creates), so no other local process can take the
hospital's tasks. The parent never runs a torch op: forking a process whose thread pools have
started is unsafe.

    python -m medfed.client.executor --runtime-api-address 127.0.0.1:PORT \\
        --node-config STATE/node-config.toml --secret-file SECRET --ready-file READY
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
from pathlib import Path

from medfed.shared.errors import HospitalUnavailable, MedfedError
from medfed.shared.processes import stop_process

log = logging.getLogger("medfed.client")
POLL_S = 0.1  # a loopback request; it overlaps the SuperNode pulling the message in


class ExecutorProcess:
    """The executor as `medfed-client` runs it: started, waited for, restarted, stopped.

    Its shared secret lives in a fresh private folder of the system temp dir (created 0700);
    the secret file is written 0600 and passed to the SuperNode and the executor by path.
    """

    def __init__(
        self,
        log_path: Path,
        runtime_api_address: str,
        node_config: Path,
        environment: dict[str, str],
    ) -> None:
        """`environment`: the SuperNode's (the same FLWR_HOME)."""
        self.folder = Path(tempfile.mkdtemp(prefix="medfed-executor-"))
        self.secret_file, self.ready_file = self.folder / "secret", self.folder / "ready"
        descriptor = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        self.log_path, self.environment = log_path, environment
        self.command = [sys.executable, "-m", "medfed.client.executor"]
        self.command += ["--node-config", str(node_config)]
        self.command += ["--runtime-api-address", runtime_api_address]
        self.command += ["--secret-file", str(self.secret_file)]
        self.command += ["--ready-file", str(self.ready_file)]
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float) -> None:
        """Start the executor and wait until it is warm.

        Raises:
            HospitalUnavailable: it exited or was not warm within `timeout_s`.
        """
        self.ready_file.unlink(missing_ok=True)
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                self.command,
                env=self.environment,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while not self.ready_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise HospitalUnavailable(
                    f"the hospital's executor did not start; see {self.log_path}"
                )
            time.sleep(0.1)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.folder, ignore_errors=True)


def warm_up(node_config_path: Path) -> None:
    """Import torch, Opacus and the deployed ClientApp; load the hospital's data into the
    app's loader, so that every fork starts with it."""
    import torch
    from flwr.app import Context, RecordDict

    from medfed.client import deployed_app, trainer  # noqa: F401 - imports Opacus now

    node_config = tomllib.loads(node_config_path.read_text(encoding="utf-8"))
    torch.set_num_threads(int(node_config.get("threads", 1)))
    # Building an optimizer imports torch._dynamo on first use (about 1 s): do it here, once.
    # Creating a tensor starts no thread pool, so forking stays safe.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    context = Context(
        run_id=0, node_id=0, node_config=node_config, state=RecordDict(), run_config={}
    )
    deployed_app.hospital_loader(context)


def run_task(runtime_api_address: str, token: str) -> int:
    """Run one task in a fork of this process (Flower's `run_clientapp`); its exit code."""
    from medfed.client.app_bundle import refuse_bundle_code
    from medfed.shared.flower_internals import APP_DIR, get_flwr_home, run_clientapp

    parent = os.getpid()
    child = os.fork()
    if child == 0:  # the fork: run the task, never return into the executor's loop
        code = 1
        try:
            refuse_bundle_code(get_flwr_home() / APP_DIR)  # the coordinator ships no code
            run_clientapp(
                runtime_api_address,
                token,
                insecure=True,
                parent_pid=parent,
                runtime_dependency_install=False,  # and installs no packages
            )
            code = 0
        except SystemExit as done:  # Flower's run_clientapp ends with sys.exit
            code = done.code if isinstance(done.code, int) else 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)  # even if flushing fails: a fork never runs the executor's loop
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status)


def runtime_client(runtime_api_address: str, secret: bytes):  # noqa: ANN201 - Flower's client
    """A client of the SuperNode's Runtime API that signs task requests with `secret`."""
    from medfed.shared.flower_internals import (
        ACQUIRE_TASK_METHOD,
        RuntimeHttpClient,
        SuperExecAuthHttpInterceptor,
        make_simple_http_retry_invoker,
    )

    signer = SuperExecAuthHttpInterceptor(
        master_secret=secret, protected_methods=frozenset({ACQUIRE_TASK_METHOD})
    )
    return RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address,
        insecure=True,  # loopback only: the SuperNode serves its Runtime API on 127.0.0.1
        root_certificates=None,
        interceptors=[signer],
        retry_invoker=make_simple_http_retry_invoker(),
    )


def acquire(client) -> tuple[int, str] | None:  # noqa: ANN001 - Flower's RuntimeHttpClient
    """The next ClientApp task waiting at the SuperNode as (task id, token), or None."""
    from medfed.shared.flower_internals import AcquireTaskRequest, TaskType

    acquired = client.AcquireTask(AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP]))
    if acquired.HasField("task") and acquired.token:
        return acquired.task.task_id, acquired.token
    return None


def serve(runtime_api_address: str, secret: bytes, poll_s: float = POLL_S) -> None:
    """Run the SuperNode's ClientApp tasks one at a time, as they come; never returns."""
    import httpx

    client = runtime_client(runtime_api_address, secret)
    while True:
        try:
            task = acquire(client)
        except httpx.HTTPError as error:  # the SuperNode is (re)starting
            log.warning("SuperNode Runtime API not answering (%s); retrying", error)
            time.sleep(1.0)
            continue
        if task is None:
            time.sleep(poll_s)
            continue
        log.info("running task %d", task[0])
        started = time.perf_counter()
        code = run_task(runtime_api_address, task[1])
        log.info("ran task %d in %.3f s (exit %d)", task[0], time.perf_counter() - started, code)


def _exit_with_parent(parent_pid: int) -> None:
    """Stop when `medfed-client` is gone (SIGKILL leaves no one to stop this process)."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description="medfed's hospital executor (medfed-client)")
    parser.add_argument("--runtime-api-address", required=True)
    parser.add_argument("--node-config", type=Path, required=True)
    parser.add_argument("--secret-file", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        warm_up(args.node_config)
    except MedfedError as error:
        log.error("executor cannot start: %s", error)
        raise SystemExit(2) from None
    args.ready_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    log.info("executor ready; taking tasks from %s", args.runtime_api_address)
    serve(args.runtime_api_address, args.secret_file.read_bytes())


if __name__ == "__main__":
    main()

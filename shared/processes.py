"""Starting and stopping what medfed runs: a SuperLink, a SuperNode and their child processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess


def stop_process(process: subprocess.Popen | None, grace_s: float = 5.0) -> None:
    """SIGTERM the process group (started with `start_new_session=True`), SIGKILL it after
    `grace_s`."""
    if process is None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        process.poll()
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a process about to be started)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

"""Stopping what medfed starts: a SuperLink, a SuperNode and their child processes."""

from __future__ import annotations

import os
import signal
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

"""`medfed-client` restarts its warm executor when it dies (the SuperNode keeps running)."""

import os
import signal
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _executors_of(parent: int) -> list[int]:
    """PIDs of `python -m medfed.client.executor` processes whose parent is `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            parent_pid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent_pid == parent and b"medfed.client.executor" in command:
            found.append(int(entry.name))
    return found


def test_a_killed_executor_is_restarted(deployment_in):
    deployment = deployment_in("executor")
    deployment.make_certs(["VA"])
    deployment.write_hospital("VA", max_wait_s=240)  # no coordinator: the SuperNode retries
    hospital = deployment.start_hospital("VA")
    log = "state/VA/executor.log"

    def ready_count():
        return deployment.output(log).count("executor ready")

    assert deployment.wait_for(lambda: ready_count() == 1, 180), deployment.output(log)
    executors = _executors_of(hospital.pid)
    assert len(executors) == 1
    os.kill(executors[0], signal.SIGKILL)
    assert deployment.wait_for(lambda: ready_count() == 2, 180), deployment.output(log)
    assert hospital.poll() is None  # medfed-client itself kept running
    assert "restarting it" in deployment.output("VA.out")
    assert len(_executors_of(hospital.pid)) == 1

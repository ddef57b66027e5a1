"""`simulation.ray_address`: the simulation runs on a Ray cluster someone else started."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEDFED = [sys.executable, "-c", "from medfed.simulations.cli import main; main()"]
RAY = Path(sys.executable).with_name("ray")
CLUSTER_CPUS = 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _without_ray_address() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def ray_head():
    """A one-node Ray cluster of its own: a short temp dir (Ray's socket paths) and free ports
    for everything Ray would otherwise put on a fixed port, so it cannot meet another Ray on
    this machine. `ray start --block` leads a process group of its own; teardown ends that
    group only (a bare `ray stop` would end every Ray here)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))
    ports = {
        "--port": _free_port(),
        "--dashboard-port": _free_port(),
        "--ray-client-server-port": _free_port(),
        "--dashboard-agent-listen-port": _free_port(),
    }
    command = [str(RAY), "start", "--head", "--block", "--num-cpus", str(CLUSTER_CPUS)]
    command += ["--disable-usage-stats", "--include-dashboard", "false", "--temp-dir"]
    command += [str(temp_dir), *(f"{flag}={port}" for flag, port in ports.items())]
    log = (temp_dir / "head.log").open("w")
    head = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=_without_ray_address(),
    )
    address_file = temp_dir / "ray_current_cluster"  # written by `ray start` once it is up
    try:
        deadline = time.monotonic() + 180
        while not address_file.is_file():
            assert head.poll() is None, (temp_dir / "head.log").read_text()
            assert time.monotonic() < deadline, "ray start --head did not come up in 180 s"
            time.sleep(0.5)
        yield address_file.read_text().strip(), temp_dir
    finally:
        head.terminate()  # `ray start --block` ends the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        deadline = time.monotonic() + 30
        while _group_alive(head.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if _group_alive(head.pid):
            os.killpg(head.pid, signal.SIGKILL)
            time.sleep(1)
        log.close()
        assert not _group_alive(head.pid), "processes of the test's Ray cluster are left"
        shutil.rmtree(temp_dir, ignore_errors=True)


def _simulate_on(address: str, out: Path, *overrides: str) -> subprocess.Popen:
    args = [*MEDFED, "simulate", "configs/heart_disease.toml", "--out", str(out)]
    for override in ("rounds=1", f'simulation.ray_address="{address}"', *overrides):
        args += ["--set", override]
    return subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_without_ray_address(),
    )


@pytest.mark.slow
def test_simulation_runs_on_an_existing_ray_cluster(ray_head, tmp_path):
    address, temp_dir = ray_head
    out = tmp_path / "run"
    driver = _simulate_on(address, out, "simulation.cpus_per_hospital=1")
    output, _ = driver.communicate(timeout=900)
    assert driver.returncode == 0, output

    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(line["round"], line["phase"]) for line in lines] == [(1, "train"), (1, "final")]
    assert len(lines[-1]["hospitals"]) == 4
    assert json.loads((out / "report.json").read_text())
    assert not (out / "hospitals" / "data").exists()  # partitions removed after the run

    # The driver joined this cluster (Ray names a driver's log after its pid) ...
    logs = temp_dir / "session_latest" / "logs"
    assert list(logs.glob(f"python-core-driver-*_{driver.pid}.log")), sorted(logs.iterdir())
    # ... and started no Ray of its own in Ray's default place.
    assert not list(Path("/tmp/ray").glob(f"session_*/logs/python-core-driver-*_{driver.pid}.log"))
    # The hospitals ran in the cluster's workers, one actor per simulation.cpus_per_hospital.
    actors = [
        path
        for path in logs.glob("worker-*.out")
        if ":actor_name:ClientAppActor" in path.read_text(errors="replace")
    ]
    assert len(actors) == CLUSTER_CPUS, sorted(path.name for path in logs.glob("worker-*"))


@pytest.mark.slow
def test_hospital_resources_the_cluster_lacks_are_a_config_error(ray_head, tmp_path):
    address, _ = ray_head
    driver = _simulate_on(
        address, tmp_path / "run", f"simulation.cpus_per_hospital={CLUSTER_CPUS + 1}"
    )
    output, _ = driver.communicate(timeout=300)
    lines = [line for line in output.splitlines() if line.strip()]
    assert driver.returncode == 2, output
    assert "simulation.cpus_per_hospital = 3" in lines[-1] and "2 CPU" in lines[-1], output
    assert "Traceback" not in output

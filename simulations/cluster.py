"""An existing Ray cluster as the simulation engine's backend (`simulation.ray_address`).

Flower's Ray backend calls `ray.init` only when Ray is not initialised yet, so connecting
this process first makes the engine use the cluster instead of starting a local Ray; the
connection is checked and bounded here, so a wrong address ends with a reason, not a hang.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from medfed.shared.config.models import SimulationConfig
from medfed.shared.errors import ConfigError

CONNECT_TIMEOUT_S = 30.0
NODE_CHECK_TIMEOUT_S = 120.0
CHECK_PREFIX = ".medfed-cluster-check-"
START_ONE = (
    "start one with `ray start --head --port PORT` and run medfed simulate on a node of that "
    "cluster, or leave simulation.ray_address unset to run on this machine"
)


def backend_config(simulation: SimulationConfig) -> dict:
    """What Flower's Ray backend gets: per-hospital resources (on a cluster too) and, for a
    local Ray only, its `ray.init` arguments."""
    return {
        "client_resources": {
            "num_cpus": simulation.cpus_per_hospital,
            "num_gpus": simulation.gpus_per_hospital,
        },
        "init_args": {"log_to_driver": False, "configure_logging": False},
    }


@dataclass(frozen=True)
class Cluster:
    """The attached cluster: its address and the ids of the nodes that can host a hospital."""

    address: str
    hospital_nodes: tuple[str, ...]

    def check_shared_storage(self, folders: list[Path]) -> None:
        """Every node that may host a hospital reads a fresh token in each of `folders` and
        answers by writing a file next to it: hospitals' partitions, ledgers and keys, and
        the node roster are files that any node's worker and this driver both use.

        Raises:
            ConfigError: a node does not see the folders, or does not answer in time.
        """
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        token = secrets.token_hex(16)
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{CHECK_PREFIX}{token}").write_text(token, encoding="utf-8")
        probe = ray.remote(num_cpus=0)(answer_storage_check)
        calls = {
            probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
            ).remote([str(folder) for folder in folders], token, node): node
            for node in self.hospital_nodes
        }
        try:
            done, late = ray.wait(list(calls), num_returns=len(calls), timeout=NODE_CHECK_TIMEOUT_S)
            if late:
                raise ConfigError(
                    f"simulation.ray_address = {self.address!r}: {len(late)} node(s) did not "
                    f"run a check task within {NODE_CHECK_TIMEOUT_S:.0f} s (see `ray status`)"
                )
            for problem in ray.get(done):
                if problem:
                    raise ConfigError(
                        f"simulation.ray_address = {self.address!r}: {problem}; every node "
                        "must mount the run directory and privacy.ledger_dir at the same path "
                        "(a shared filesystem, see docs/simulation.md)"
                    )
            for folder in folders:
                for node in self.hospital_nodes:
                    if not (folder / f"{CHECK_PREFIX}{token}.{node}").is_file():
                        raise ConfigError(
                            f"simulation.ray_address = {self.address!r}: node {node[:12]} "
                            f"wrote to {folder} but this machine does not see the file; mount "
                            "the same shared filesystem here (docs/simulation.md)"
                        )
        finally:
            for folder in folders:
                for leftover in folder.glob(f"{CHECK_PREFIX}{token}*"):
                    leftover.unlink(missing_ok=True)


def answer_storage_check(folders: list[str], token: str, node: str) -> str | None:
    """Runs on a cluster node: None when it reads `token` in every folder and can write there."""
    for folder in folders:
        path = Path(folder) / f"{CHECK_PREFIX}{token}"
        try:
            if path.read_text(encoding="utf-8") != token:
                return f"node {socket.gethostname()} reads another {path}"
            path.with_name(f"{path.name}.{node}").write_text(token, encoding="utf-8")
        except OSError as error:
            return f"node {socket.gethostname()} cannot use {folder} ({error.strerror or error})"
    return None


@contextlib.contextmanager
def attached(simulation: SimulationConfig) -> Iterator[Cluster | None]:
    """Connected to the cluster at `simulation.ray_address` for the block (None when unset:
    Flower starts a local Ray); disconnects at the end, leaving the cluster running. Inside
    an outer `attached` block (the CLI opens one before its progress bar) it reuses that
    connection.

    Raises:
        ConfigError: nothing answers at the address, it is not a Ray head this machine can
            join, or no node has the resources of one hospital.
    """
    if simulation.ray_address is None:
        yield None
        return
    import ray

    if ray.is_initialized():
        yield Cluster(simulation.ray_address, hospital_nodes(simulation))
        return
    connect(simulation.ray_address)
    try:
        cluster = Cluster(simulation.ray_address, hospital_nodes(simulation))
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()  # the driver's connection only; Flower's engine does the same


def connect(address: str) -> None:
    """`ray.init(address=...)` within CONNECT_TIMEOUT_S (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise ConfigError(
            f"simulation.ray_address = {address!r}: no Ray cluster answers there "
            f"({error.strerror or error}); {START_ONE}"
        ) from None
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # as the runner: no warning
    import ray

    failure: list[BaseException] = []

    def init() -> None:
        try:
            # As Flower's backend would: workers import what this driver imports.
            pythonpath = os.pathsep.join(sys.path)
            ray.init(
                address=address,
                log_to_driver=False,
                configure_logging=False,
                runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
            )
        except Exception as error:  # Ray raises several types; each one means "cannot attach"
            failure.append(error)

    # ray.init off the main thread skips its SIGTERM handler and says so; it is set below.
    ray_worker_log = logging.getLogger("ray._private.worker")
    level = ray_worker_log.level
    ray_worker_log.setLevel(logging.ERROR)
    attempt = threading.Thread(target=init, name="medfed-ray-attach", daemon=True)
    attempt.start()
    attempt.join(CONNECT_TIMEOUT_S)
    ray_worker_log.setLevel(level)
    if attempt.is_alive():
        raise ConfigError(
            f"simulation.ray_address = {address!r}: port {port} answers but no Ray head "
            f"accepted this driver within {CONNECT_TIMEOUT_S:.0f} s (not the head's GCS port, or "
            "this machine is not a node of that cluster: join it with `ray start --address "
            f"{address}`); {START_ONE}"
        )
    if failure:
        reason = (str(failure[0]).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"simulation.ray_address = {address!r}: cannot attach ({type(failure[0]).__name__}: "
            f"{reason}); {START_ONE}"
        )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(signum))  # as ray.init does


def hospital_nodes(simulation: SimulationConfig) -> tuple[str, ...]:
    """Ids of the alive nodes with the CPUs (and GPUs) of at least one hospital.

    Raises:
        ConfigError: no node has them.
    """
    import ray

    nodes, seen = [], []
    for node in ray.nodes():
        resources = node.get("Resources") or {}
        if not node.get("Alive") or not resources:
            continue
        cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
        seen.append(f"{node['NodeManagerAddress']} ({cpus:g} CPU, {gpus:g} GPU)")
        if cpus >= simulation.cpus_per_hospital and gpus >= simulation.gpus_per_hospital:
            nodes.append(node["NodeID"])
    if not nodes:
        raise ConfigError(
            f"simulation.cpus_per_hospital = {simulation.cpus_per_hospital:g}, "
            f"gpus_per_hospital = {simulation.gpus_per_hospital:g}: no node of the Ray cluster "
            f"at {simulation.ray_address!r} has that much ({', '.join(seen) or 'no nodes'}); "
            "lower them or add nodes with `ray start --address`"
        )
    return tuple(nodes)

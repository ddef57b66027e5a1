"""Simulated hospitals: each virtual SuperNode gets one partition of the configured data.

Flower's simulation engine hands every message a fresh copy of the ClientApp, so nothing
loaded in memory survives between messages. The runner therefore writes each hospital's
partition once to the run's hospital storage, and a message loads only its own file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from medfed.client.hospital import HospitalSettings
from medfed.client.planning import evaluation_noise
from medfed.shared.config.models import RunConfig
from medfed.shared.crypto.identity import (
    KEY_SUFFIX,
    file_stem,
    load_or_create_identity_key,
    public_bytes,
    write_peers,
)
from medfed.shared.data import HospitalData
from medfed.shared.data.store import load_hospital_data, save_hospital_data
from medfed.shared.privacy.calibrate import NoiseCalibrator
from medfed.shared.privacy.ledger import ledger_file_name

PEERS_FILE = "peers.toml"


def partition_file(data_dir: Path, partition_id: int) -> Path:
    return data_dir / f"{partition_id}.npz"


def store_partitions(hospitals: list[HospitalData], data_dir: Path) -> None:
    """Write hospital i's arrays to `data_dir/i.npz`."""
    for partition_id, data in enumerate(hospitals):
        save_hospital_data(data, partition_file(data_dir, partition_id))


def load_partition(data_dir: Path, partition_id: int) -> HospitalData:
    """The partition `store_partitions` wrote for `partition_id`.

    Raises:
        DataError: the file is missing or unreadable.
    """
    fix = f"simulated hospital {partition_id}: the runner writes it before the simulation starts"
    return load_hospital_data(partition_file(data_dir, partition_id), fix)


class SimulatedHospitals:
    """Picklable loader: the partition named by the node's `partition-id` (read from
    `data_dir`), with the run's privacy settings as each hospital's own and its ledger in
    `ledger_dir`."""

    def __init__(self, run: RunConfig, ledger_dir: Path, data_dir: Path) -> None:
        self.run, self.ledger_dir, self.data_dir = run, ledger_dir, data_dir
        # Each worker process gets its own copy of this loader and its calibrator: answers
        # depend on the question alone, so the hospitals of one worker share them. The
        # evaluation noise is the same question for every hospital: answered once, here.
        self.calibrator = NoiseCalibrator()
        if run.privacy.enabled:
            evaluation_noise(settings_for(run, "any", ledger_dir, self.calibrator))

    def __call__(self, context: Context) -> tuple[HospitalData, HospitalSettings]:
        # One worker per simulated hospital: torch must not oversubscribe the cores it shares.
        torch.set_num_threads(max(1, int(self.run.simulation.cpus_per_hospital)))
        data = load_partition(self.data_dir, int(context.node_config["partition-id"]))
        return data, settings_for(self.run, data.name, self.ledger_dir, self.calibrator)


def identity_dir(ledger_dir: Path) -> Path:
    """Where the simulated hospitals keep their identity keys and their (shared) peers file."""
    return ledger_dir / "identity"


def prepare_identities(names: list[str], ledger_dir: Path) -> None:
    """Each simulated hospital's identity key (made once, kept with its ledger) and the peers
    file pinning all of them: what deployed hospitals do by hand and out of band."""
    folder = identity_dir(ledger_dir)
    pins = {
        name: public_bytes(load_or_create_identity_key(folder, name).public_key()) for name in names
    }
    write_peers(folder / PEERS_FILE, pins)


def settings_for(
    run: RunConfig, name: str, ledger_dir: Path, calibrator: NoiseCalibrator | None = None
) -> HospitalSettings:
    privacy = run.privacy
    folder = identity_dir(ledger_dir)
    return HospitalSettings(
        name=name,
        max_epsilon=privacy.budget_epsilon,
        ledger_path=ledger_dir / f"{ledger_file_name(name)}.jsonl",
        key_dir=ledger_dir / "keys",
        delta=privacy.delta,
        accountant=privacy.accountant,
        count_noise_multiplier=privacy.count_noise_multiplier,
        max_evaluation_epsilon=privacy.max_evaluation_epsilon,
        max_evaluations=privacy.max_evaluations,
        privacy_enabled=privacy.enabled,
        device=run.training.device,
        secure_aggregation=run.secure_aggregation,
        seeded_noise=True,  # a simulation reproduces from its seed (see HospitalSettings)
        identity_key=folder / f"{file_stem(name)}{KEY_SUFFIX}",
        peers_file=folder / PEERS_FILE,
        calibrator=calibrator or NoiseCalibrator(),
    )


class NodeRoster:
    """Which partition each simulated node serves, as Flower's runtime told the node
    (`Context.node_config["partition-id"]`), so the coordinator can name a node's replies.

    Flower's simulation engine keeps its node → partition map to itself, so each node's first
    message writes `roster_dir/NODE_ID` (the partition id) before any hospital code runs. In
    simulation the runner is trusted: every node runs in the researcher's own processes (this
    machine or their Ray cluster, docs/simulation.md), and nothing authenticates them.
    """

    def __init__(self, roster_dir: Path, names: list[str]) -> None:
        self.roster_dir, self.names = roster_dir, names

    def record(self, context: Context) -> None:
        path = self.roster_dir / str(context.node_id)
        if not path.exists():
            self.roster_dir.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(str(int(context.node_config["partition-id"])), encoding="utf-8")
            os.replace(temporary, path)

    def __call__(self, node: int) -> str | None:
        """The hospital of simulated node `node`, None if it never received a message."""
        path = self.roster_dir / str(node)
        if not path.is_file():
            return None
        return self.names[int(path.read_text(encoding="utf-8"))]


class RosteredClientApp(ClientApp):
    """`app`, after recording in `roster` which partition the receiving node serves."""

    def __init__(self, app: ClientApp, roster: NodeRoster) -> None:
        super().__init__()
        self.app, self.roster = app, roster

    def __call__(self, message: Message, context: Context) -> Message:
        self.roster.record(context)
        return self.app(message, context)

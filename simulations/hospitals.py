"""Simulated hospitals: each virtual SuperNode gets one partition of the configured data."""

from __future__ import annotations

from pathlib import Path

import torch
from flwr.app import Context

from medfed.client.hospital import HospitalSettings
from medfed.shared.config.models import RunConfig
from medfed.shared.data import HospitalData, load_federation
from medfed.shared.privacy.ledger import ledger_file_name


class SimulatedHospitals:
    """Picklable loader: the partition named by the node's `partition-id`, with the run's
    privacy settings as each hospital's own and its ledger in `ledger_dir`."""

    def __init__(self, run: RunConfig, ledger_dir: Path) -> None:
        self.run, self.ledger_dir = run, ledger_dir

    def __call__(self, context: Context) -> tuple[HospitalData, HospitalSettings]:
        # One worker per simulated hospital: torch must not oversubscribe the cores it shares.
        torch.set_num_threads(max(1, int(self.run.simulation.cpus_per_hospital)))
        hospitals = load_federation(self.run.data, self.run.seed)
        data = hospitals[int(context.node_config["partition-id"])]
        return data, settings_for(self.run, data.name, self.ledger_dir)


def settings_for(run: RunConfig, name: str, ledger_dir: Path) -> HospitalSettings:
    privacy = run.privacy
    return HospitalSettings(
        name=name,
        max_epsilon=privacy.budget_epsilon,
        ledger_path=ledger_dir / f"{ledger_file_name(name)}.jsonl",
        key_dir=ledger_dir / "keys",
        delta=privacy.delta,
        accountant=privacy.accountant,
        privacy_enabled=privacy.enabled,
        device=run.training.device,
        secure_aggregation=run.secure_aggregation,
    )

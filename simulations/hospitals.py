"""Simulated hospitals: each virtual SuperNode gets one partition of the configured data."""

from __future__ import annotations

from flwr.app import Context
from medfed.client.hospital import HospitalSettings
from medfed.shared.config.models import RunConfig
from medfed.shared.data import HospitalData, load_federation


class SimulatedHospitals:
    """Picklable loader: the partition named by the node's `partition-id`, with the run's
    privacy settings as each hospital's own."""

    def __init__(self, run: RunConfig) -> None:
        self.run = run

    def __call__(self, context: Context) -> tuple[HospitalData, HospitalSettings]:
        hospitals = load_federation(self.run.data, self.run.seed)
        data = hospitals[int(context.node_config["partition-id"])]
        return data, settings_for(self.run, data.name)


def settings_for(run: RunConfig, name: str) -> HospitalSettings:
    privacy = run.privacy
    return HospitalSettings(
        name=name,
        max_epsilon=privacy.budget_epsilon,
        delta=privacy.delta,
        accountant=privacy.accountant,
        privacy_enabled=privacy.enabled,
        device=run.training.device,
    )

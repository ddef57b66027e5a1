"""Flower strategies by name, configured from `[strategy]`."""

from __future__ import annotations

from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from medfed.shared.config.models import StrategyConfig
from medfed.shared.protocol import ARRAYS, CONFIG, WEIGHT_KEY


def build_strategy(config: StrategyConfig) -> FedAvg:
    """FedAvg, FedProx or FedAdam that train every node their grid lists: medfed's
    coordinator (medfed.server.coordinator) shows them only the round's sample, drawn with
    `fraction_train` and `min_hospitals` from the active hospitals."""
    common = {
        "fraction_train": 1.0,
        "min_train_nodes": 1,
        "min_available_nodes": 1,
        "min_evaluate_nodes": 1,
        "weighted_by_key": WEIGHT_KEY,
        "arrayrecord_key": ARRAYS,
        "configrecord_key": CONFIG,
    }
    if config.name == "fedprox":
        return FedProx(**common, proximal_mu=config.proximal_mu)
    if config.name == "fedadam":
        return FedAdam(
            **common,
            eta=config.server_learning_rate,
            beta_1=config.beta_1,
            beta_2=config.beta_2,
            tau=config.tau,
        )
    return FedAvg(**common)

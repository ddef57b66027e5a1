"""Flower strategies by name, configured from `[strategy]`."""

from __future__ import annotations

from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from medfed.shared.config.models import StrategyConfig
from medfed.shared.protocol import ARRAYS, CONFIG, WEIGHT_KEY


def build_strategy(config: StrategyConfig) -> FedAvg:
    """FedAvg, FedProx or FedAdam, sampling at least `min_hospitals` hospitals a round."""
    common = {
        "fraction_train": config.fraction_train,
        "min_train_nodes": config.min_hospitals,
        "min_available_nodes": config.min_hospitals,
        "min_evaluate_nodes": config.min_hospitals,
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

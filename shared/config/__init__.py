"""Run configuration: pydantic models and the TOML loader."""

from medfed.shared.config.loader import load_config, to_toml, validate_tree
from medfed.shared.config.models import (
    DataConfig,
    ModelConfig,
    PrivacyConfig,
    RunConfig,
    SimulationConfig,
    StrategyConfig,
    TrainingConfig,
)

__all__ = [
    "DataConfig",
    "ModelConfig",
    "PrivacyConfig",
    "RunConfig",
    "SimulationConfig",
    "StrategyConfig",
    "TrainingConfig",
    "load_config",
    "to_toml",
    "validate_tree",
]

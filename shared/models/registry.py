"""Models by name, each with the Opacus grad-sample mode medfed uses for it by default.

Dense models use per-sample hooks. Ghost clipping (≈ 20× faster on a 1M-parameter MLP) is not
offered: a coordinator can send a model whose output overflows for chosen records, and ghost
clipping's second backward pass mixes such a record's non-finite gradient into the sum, where
hooks let the hospital zero it per record (client/dp_sgd.py) so the clipped sum moves by ≤ C.
The CNN uses `ew` (torch's expanded weights): Opacus has no ghost norm for Conv2d,
and `ew` beats hooks; the trainer turns its empty Poisson batches into noise-only steps.
Recurrent models use hooks: each of their Linear layers runs once per sequence
(models/recurrent.py), where hooks beat ghost's second backward pass and `ew` cannot run.
The Transformer uses hooks: its Linear/LayerNorm layers run once per sequence, and hooks were
the fastest mode measured (models/transformer.py).
Measurements: docs/benchmarks.md, DP cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from medfed.shared.config.models import ModelConfig
from medfed.shared.errors import ConfigError
from medfed.shared.models.cnn import cnn
from medfed.shared.models.recurrent import gru, lstm
from medfed.shared.models.tabular import logistic, mlp
from medfed.shared.models.transformer import transformer

Builder = Callable[[tuple[int, ...], int, int, int], nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    build: Builder
    grad_sample_mode: str  # what `training.grad_sample_mode = "auto"` resolves to
    input_rank: int  # dimensions of one sample: 1 tabular, 3 image (C×H×W), 2 sequence (T×F)


MODELS: dict[str, ModelSpec] = {
    "logistic": ModelSpec(logistic, "hooks", 1),
    "mlp": ModelSpec(mlp, "hooks", 1),
    "cnn": ModelSpec(cnn, "ew", 3),
    "gru": ModelSpec(gru, "hooks", 2),
    "lstm": ModelSpec(lstm, "hooks", 2),
    "transformer": ModelSpec(transformer, "hooks", 2),
}


def model_spec(name: str) -> ModelSpec:
    """The registry entry for `name`.

    Raises:
        ConfigError: unknown model name.
    """
    if name not in MODELS:
        raise ConfigError(f"model.name: unknown model '{name}' (choose one of {', '.join(MODELS)})")
    return MODELS[name]


def build_model(config: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Instantiate the configured model for samples of `input_shape`.

    Raises:
        ConfigError: unknown model, or a model that does not fit the data's shape.
    """
    spec = model_spec(config.name)
    if spec.input_rank != 1 and len(input_shape) != spec.input_rank:
        raise ConfigError(
            f"model.name = '{config.name}' expects samples of rank {spec.input_rank}, "
            f"but the data gives shape {input_shape} (pick a model for this dataset)"
        )
    return spec.build(tuple(input_shape), num_classes, config.hidden_size, config.num_layers)

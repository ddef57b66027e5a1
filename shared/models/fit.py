"""The coordinator's model on a hospital's data: built for the data's shape and loaded with the
coordinator's weights, or refused, naming the tensor and the coordinator's fix.

The coordinator builds its model from federation.toml (`model.name`, `deployment.input_shape`,
`deployment.num_classes`); the hospital builds the same architecture from its own data's shape
(public: fixed by its config, e.g. `image_channels` × `image_size`²) and class count, so a
mismatch shows as a tensor of another shape. The refusal speaks only of those config-derived
figures and the coordinator's own tensors.
"""

from __future__ import annotations

import torch
from torch import nn

from medfed.shared.config.models import ModelConfig
from medfed.shared.errors import ConfigError, ModelMismatch
from medfed.shared.models.registry import build_model, model_spec


def _refusal(config: ModelConfig, input_shape: tuple[int, ...], classes: int, why: str):
    shape = list(input_shape)
    return ModelMismatch(
        f"the coordinator's model '{config.name}' does not fit this hospital's data ({why}); "
        f"the hospital's samples are {shape} with {classes} classes: the coordinator sets "
        f"deployment.input_shape = {shape} and deployment.num_classes = {classes} in "
        "federation.toml (and a model.name for such samples)"
    )


def model_with_weights(
    config: ModelConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    weights: dict[str, torch.Tensor],
) -> nn.Module:
    """The configured model for samples of `input_shape`, loaded with `weights`.

    Raises:
        ModelMismatch: unknown model, a model for samples of another rank, or weights with a
            missing, extra or differently shaped tensor.
    """
    try:
        spec = model_spec(config.name)
    except ConfigError as error:
        raise _refusal(config, input_shape, num_classes, str(error)) from None
    if spec.input_rank != 1 and len(input_shape) != spec.input_rank:
        why = f"it takes samples of rank {spec.input_rank}"
        raise _refusal(config, input_shape, num_classes, why)
    model = build_model(config, input_shape, num_classes)
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in weights:
            raise _refusal(config, input_shape, num_classes, f"its weights lack tensor '{name}'")
        if tuple(weights[name].shape) != tuple(tensor.shape):
            why = (
                f"its tensor '{name}' has shape {list(weights[name].shape)}, this hospital's "
                f"model needs {list(tensor.shape)}"
            )
            raise _refusal(config, input_shape, num_classes, why)
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise _refusal(config, input_shape, num_classes, f"unexpected tensor '{extra[0]}'")
    model.load_state_dict(weights)
    return model

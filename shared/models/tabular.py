"""Tabular models: logistic regression and a small MLP."""

from __future__ import annotations

import math

from torch import nn


def logistic(
    input_shape: tuple[int, ...], num_classes: int, hidden_size: int, num_layers: int
) -> nn.Module:
    """Multinomial logistic regression (one linear layer over the flattened input)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


def mlp(
    input_shape: tuple[int, ...], num_classes: int, hidden_size: int, num_layers: int
) -> nn.Module:
    """`num_layers` hidden ReLU layers of width `hidden_size`."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for _ in range(num_layers):
        layers += [nn.Linear(width, hidden_size), nn.ReLU()]
        width = hidden_size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)

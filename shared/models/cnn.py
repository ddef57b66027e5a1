"""A small CNN for 1- or 3-channel medical images (GroupNorm: Opacus rejects BatchNorm)."""

from __future__ import annotations

from torch import nn


def cnn(
    input_shape: tuple[int, ...], num_classes: int, hidden_size: int, num_layers: int
) -> nn.Module:
    """Two conv blocks (conv → GroupNorm → ReLU → pool), global average pool, linear head."""
    channels = input_shape[0]
    width = max(8, hidden_size // 2)
    return nn.Sequential(
        nn.Conv2d(channels, width, kernel_size=3, padding=1),
        nn.GroupNorm(min(4, width), width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, kernel_size=3, padding=1),
        nn.GroupNorm(min(4, 2 * width), 2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )

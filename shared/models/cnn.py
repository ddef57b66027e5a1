"""A small CNN for 1- or 3-channel medical images, shaped for DP-SGD.

DP noise grows with the number of parameters while the clipped signal does not, so the recipe
is small: on validation rows at ε = 1 (docs/benchmarks.md, imaging utility) one block of 4
channels beat two blocks of 4, 8 or 16, GroupNorm lowered the score (Opacus rejects BatchNorm
anyway), and a global max pool beat a global average: "is there a lesion anywhere" is a
maximum over positions, where an average dilutes a small lesion over the image. tanh follows
Papernot et al. 2021 (bounded activations keep per-sample gradients small, so clipping
discards less); ReLU scored the same here. Deeper or wider networks: raise `num_layers` or
`hidden_size`, and validate them, for real images.
"""

from __future__ import annotations

from torch import nn


def cnn(
    input_shape: tuple[int, ...], num_classes: int, hidden_size: int, num_layers: int
) -> nn.Module:
    """`num_layers` blocks (3×3 conv of `hidden_size` channels → tanh, 2×2 max pool between
    blocks), a global max pool and a linear head."""
    channels = input_shape[0]
    layers: list[nn.Module] = []
    for block in range(num_layers):
        if block:
            layers.append(nn.MaxPool2d(2))
        layers += [nn.Conv2d(channels, hidden_size, kernel_size=3, padding=1), nn.Tanh()]
        channels = hidden_size
    return nn.Sequential(
        *layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)
    )

"""A Transformer encoder for vital-sign sequences, built from layers Opacus can clip.

Only `nn.Linear` and `nn.LayerNorm` hold parameters (Opacus has per-sample gradients for both
over N×T×F inputs); attention itself is `F.scaled_dot_product_attention` on the projections,
with one fused query/key/value `Linear` per layer (fewer hooked layers than Opacus's
`DPMultiheadAttention`, which keeps four). Positions are a fixed sinusoidal table (a buffer,
nothing to clip). Pre-LayerNorm blocks, as DP training of Transformers commonly uses
(stable without warm-up).

Padding: the step mask is the input's last feature (`recurrent.step_mask`); padded steps are
masked out as attention keys and left out of the pooled summary (the mean over real steps
next to the last step's state), so neither the output nor the gradients depend on padded
values. A sequence with no real step (a patient with no reading) attends uniformly and
pools nothing: its output is finite.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from medfed.shared.errors import ConfigError
from medfed.shared.models.recurrent import step_mask

HEADS = 4
MASKED = -1e9  # additive score of a padded key: finite, so a row of padding stays finite


class Block(nn.Module):
    """x + attention(LN(x)), then x + MLP(LN(x)); `bias`: N×1×T×T additive key mask."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.up, self.down = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, steps, width = x.shape
        q, k, v = (
            self.qkv(self.norm1(x))
            .view(batch, steps, 3, self.heads, width // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, steps, width))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class TransformerClassifier(nn.Module):
    """N×T×F sequences → logits: input projection + positions, `layers` blocks, a head on
    [state at the last step, mean state over real steps]."""

    def __init__(self, features: int, steps: int, width: int, layers: int, num_classes: int):
        super().__init__()
        if width % HEADS:
            raise ConfigError(
                f"model.hidden_size = {width}: the transformer splits it into {HEADS} "
                f"attention heads, so it must be a multiple of {HEADS} (e.g. 32)"
            )
        self.embed = nn.Linear(features, width)
        self.register_buffer("positions", sinusoidal(steps, width), persistent=False)
        self.blocks = nn.ModuleList(Block(width, HEADS) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        inputs, real = step_mask(sequences)
        x = self.embed(inputs) + self.positions
        bias = torch.where(real, 0.0, MASKED).to(x.dtype)[:, None, None, :]
        for block in self.blocks:
            x = block(x, bias)
        x = self.norm(x)
        weights = real.to(x.dtype)[..., None]
        mean = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(torch.cat([x[:, -1], mean], 1))


def sinusoidal(steps: int, width: int) -> torch.Tensor:
    """The T×W position table of Vaswani et al. (2017)."""
    position = torch.arange(steps, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(1e4) / width))
    table = torch.zeros(steps, width)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: width // 2])
    return table


def transformer(
    input_shape: tuple[int, ...], num_classes: int, hidden_size: int, num_layers: int
) -> nn.Module:
    steps, features = input_shape
    return TransformerClassifier(features, steps, hidden_size, num_layers, num_classes)

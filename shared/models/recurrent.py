"""Sequence classifiers on LSTM/GRU layers built from `nn.Linear`, so Opacus can clip them.

Opacus rejects fused `nn.LSTM`/`nn.GRU`, and its `DPLSTM`/`DPGRU` call two hooked linear layers
per time step. Here each layer's two `nn.Linear` run once per sequence (see `_Recurrent`), which
roughly halves a DP-SGD step (docs/benchmarks.md, DP cost). The maths is that of
`nn.LSTM`/`nn.GRU`; gate rows are ordered i, f, o, g (LSTM, so one sigmoid covers three gates)
and r, z, n (GRU, as in `nn.GRU`).

Sequences are padded, not packed (Opacus's DPLSTM has none): the classifier reads the step
mask from the input's last feature (`step_mask`, shared/data/sequences.py) and the state does
not change on a padded step, so neither the output nor the gradients depend on padded values.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

HiddenProduct = Callable[[torch.Tensor, int], torch.Tensor]  # (h_{t-1}, t) -> W_hh h_{t-1} + b_hh


def step_mask(sequences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs with padded steps zeroed, N×T bool mask of real steps) from N×T×F input whose
    last feature is 1 on a real step and 0 on padding (the vitals grid's layout)."""
    real = sequences[..., -1] > 0.5
    return torch.where(real[..., None], sequences, 0.0), real


class _Recurrent(nn.Module):
    """`num_layers` stacked layers over batch-first N×T×F input; returns (outputs N×T×H, None).

    In training, the hidden-to-hidden layer `hh` is called once per layer, on all T previous
    states, not once per time step: a no-grad pass first finds the states, then the step loop
    multiplies by a detached copy of `hh`'s weight and adds `hh(states) - hh(states).detach()`
    (zero). Values and gradients are exact, and Opacus sees one `hh` call whose backprops are
    the true per-step gradients: one per-sample gradient einsum over T instead of T of them,
    and ghost clipping (which refuses reused layers) applies.
    """

    gates = 1
    hidden_bias = False

    def __init__(
        self, features: int, hidden_size: int, num_layers: int = 1, batch_first: bool = True
    ):
        super().__init__()
        if not batch_first:
            raise ValueError("only batch_first=True sequences are supported")
        self.hidden_size = hidden_size
        width = self.gates * hidden_size
        self.ih = nn.ModuleList(
            nn.Linear(features if layer == 0 else hidden_size, width) for layer in range(num_layers)
        )
        self.hh = nn.ModuleList(
            nn.Linear(hidden_size, width, bias=self.hidden_bias) for _ in range(num_layers)
        )

    def forward(
        self, sequences: torch.Tensor, real: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, None]:
        """`real` (N×T bool): steps where the state updates; elsewhere it is carried."""
        keep = None if real is None else real[..., None].unbind(1)
        for ih, hh in zip(self.ih, self.hh, strict=True):
            sequences = self._layer(ih(sequences).unbind(1), hh, keep)
        return sequences, None

    def _layer(
        self, projected: tuple[torch.Tensor, ...], hh: nn.Linear, keep: tuple | None
    ) -> torch.Tensor:
        if not (torch.is_grad_enabled() and hh.weight.requires_grad):
            return self._steps(projected, lambda h, _: hh(h), keep)
        weight = hh.weight.detach()
        bias = None if hh.bias is None else hh.bias.detach()
        with torch.no_grad():
            states = self._steps(projected, lambda h, _: F.linear(h, weight, bias), keep)
        previous = torch.cat([torch.zeros_like(states[:, :1]), states[:, :-1]], 1)
        products = hh(previous)
        taps = (products - products.detach()).unbind(1)
        return self._steps(projected, lambda h, t: F.linear(h, weight, bias) + taps[t], keep)

    def _steps(
        self, projected: tuple[torch.Tensor, ...], hidden: HiddenProduct, keep: tuple | None
    ) -> torch.Tensor:
        raise NotImplementedError


class LSTM(_Recurrent):
    gates = 4

    def _steps(
        self, projected: tuple[torch.Tensor, ...], hidden: HiddenProduct, keep: tuple | None
    ) -> torch.Tensor:
        size = self.hidden_size
        h = c = projected[0].new_zeros(projected[0].shape[0], size)
        outputs = []
        for t, step in enumerate(projected):
            gates, g = (step + hidden(h, t)).split([3 * size, size], 1)
            i, f, o = torch.sigmoid(gates).chunk(3, 1)
            new_c = torch.addcmul(f * c, i, torch.tanh(g))
            new_h = o * torch.tanh(new_c)
            if keep is None:
                h, c = new_h, new_c
            else:
                h, c = torch.where(keep[t], new_h, h), torch.where(keep[t], new_c, c)
            outputs.append(h)
        return torch.stack(outputs, 1)


class GRU(_Recurrent):
    gates = 3
    hidden_bias = True  # b_hn sits inside r * (W_hn h + b_hn), as in nn.GRU

    def _steps(
        self, projected: tuple[torch.Tensor, ...], hidden: HiddenProduct, keep: tuple | None
    ) -> torch.Tensor:
        size = self.hidden_size
        h = projected[0].new_zeros(projected[0].shape[0], size)
        outputs = []
        for t, step in enumerate(projected):
            product = hidden(h, t)
            r, z = torch.sigmoid(step[:, : 2 * size] + product[:, : 2 * size]).split(size, 1)
            n = torch.tanh(step[:, 2 * size :] + r * product[:, 2 * size :])
            new_h = n + z * (h - n)
            h = new_h if keep is None else torch.where(keep[t], new_h, h)
            outputs.append(h)
        return torch.stack(outputs, 1)


class SequenceClassifier(nn.Module):
    """Recurrent encoder over N×T×F input (last feature: the step mask); the state after the
    last real step feeds a linear head (padding carries the state, so that is step T−1's)."""

    def __init__(
        self,
        cell: type[nn.Module],
        features: int,
        hidden_size: int,
        num_layers: int,
        num_classes: int,
    ):
        super().__init__()
        self.encoder = cell(features, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        inputs, real = step_mask(sequences)
        outputs, _ = self.encoder(inputs, real)
        return self.head(outputs[:, -1])


def gru(
    input_shape: tuple[int, ...], num_classes: int, hidden_size: int, num_layers: int
) -> nn.Module:
    return SequenceClassifier(GRU, input_shape[-1], hidden_size, num_layers, num_classes)


def lstm(
    input_shape: tuple[int, ...], num_classes: int, hidden_size: int, num_layers: int
) -> nn.Module:
    return SequenceClassifier(LSTM, input_shape[-1], hidden_size, num_layers, num_classes)

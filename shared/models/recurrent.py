"""Sequence classifiers on Opacus's DP recurrent layers (plain nn.LSTM/GRU are rejected)."""

from __future__ import annotations

import torch
from opacus.layers import DPGRU, DPLSTM
from torch import nn


class SequenceClassifier(nn.Module):
    """Recurrent encoder over N×T×F input; the last time step's state feeds a linear head."""

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
        outputs, _ = self.encoder(sequences)
        return self.head(outputs[:, -1])


def gru(
    input_shape: tuple[int, ...], num_classes: int, hidden_size: int, num_layers: int
) -> nn.Module:
    return SequenceClassifier(DPGRU, input_shape[-1], hidden_size, num_layers, num_classes)


def lstm(
    input_shape: tuple[int, ...], num_classes: int, hidden_size: int, num_layers: int
) -> nn.Module:
    return SequenceClassifier(DPLSTM, input_shape[-1], hidden_size, num_layers, num_classes)

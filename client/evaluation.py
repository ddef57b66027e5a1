"""A hospital's evaluation of a received model, released as a DP statistic of its test split.

Exact metrics of coordinator-chosen models are an oracle on the test records: threshold models
recover a feature's value record by record. So the hospital releases only
`release_statistic(evaluation_statistic(...))` (Gaussian mechanism, test stream of the ledger)
and metrics post-processed from it.

The statistic (one record changes one count by 1 and the loss coordinate by at most 1, so its
L2 sensitivity under add/remove of one test record is √2):
  binary: per true class, a histogram of P(class 1) in EVALUATION_BINS equal bins on [0, 1]
          (bins closed on the right, so P = 0.5 falls below the threshold, as argmax has it);
  K > 2:  the K×K confusion counts (true × predicted, row-major);
  last:   Σ per-record cross-entropy clipped to [0, LOSS_BOUND], divided by LOSS_BOUND.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch

from medfed.shared.data.base import HospitalData
from medfed.shared.errors import ConfigError, DataError
from medfed.shared.metrics import confusion_metrics, histogram_metrics

EVALUATION_BINS = 10
# 4 nats: above ln K of every registry dataset (MedMNIST has ≤ 11 classes: ln 11 ≈ 2.4), so only
# confidently wrong records (P(true class) < 1.8%) are clipped; the loss's noise grows with it.
LOSS_BOUND = 4.0
EVALUATION_SENSITIVITY = math.sqrt(2.0)
# Records go through the model in zero-padded chunks of one fixed shape, so no record's
# computation depends on how many other records the test split holds.
_CHUNK = 256


class Randomness(Protocol):
    """What the release needs from medfed.client.randomness.SecureRandom."""

    def gaussian(self, shape: tuple[int, ...], std: float) -> np.ndarray: ...


def statistic_length(num_classes: int) -> int:
    """Number of values in the statistic of a `num_classes`-class model."""
    cells = 2 * EVALUATION_BINS if num_classes == 2 else num_classes * num_classes
    return cells + 1


@torch.no_grad()
def _log_probabilities(
    model: torch.nn.Module, features: np.ndarray, num_classes: int, device: torch.device
) -> np.ndarray:
    model.to(device).eval()
    chunks = []
    for start in range(0, len(features), _CHUNK):
        chunk = features[start : start + _CHUNK]
        padded = np.zeros((_CHUNK, *features.shape[1:]), dtype=features.dtype)
        padded[: len(chunk)] = chunk
        logits = model(torch.from_numpy(padded).to(device))[: len(chunk)]
        chunks.append(torch.log_softmax(logits.double(), dim=1).cpu().numpy())
    log_probabilities = np.concatenate(chunks) if chunks else np.empty((0, num_classes))
    if log_probabilities.shape[1] != num_classes:
        raise DataError(
            f"hospital test split has {num_classes} classes but the model outputs "
            f"{log_probabilities.shape[1]} (build the model with the data's num_classes)"
        )
    return log_probabilities


def evaluation_statistic(
    model: torch.nn.Module, data: HospitalData, device: torch.device
) -> np.ndarray:
    """The exact statistic of `model` on `data`'s test split (float64, statistic_length long);
    what `release_statistic` noises. Never send it as is.

    Raises:
        DataError: a test label is not a class index, or the model's output width differs.
    """
    num_classes, labels = data.num_classes, np.asarray(data.y_test, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"hospital '{data.name}': test labels must lie in 0..{num_classes - 1}")
    log_probabilities = _log_probabilities(model, data.x_test, num_classes, device)
    if num_classes == 2:
        score = np.nan_to_num(np.exp(log_probabilities[:, 1]), nan=0.0)
        column = np.clip(np.ceil(score * EVALUATION_BINS) - 1, 0, EVALUATION_BINS - 1)
        cells = labels * EVALUATION_BINS + column.astype(np.int64)
    else:
        predicted = np.nan_to_num(log_probabilities, nan=-np.inf).argmax(axis=1)
        cells = labels * num_classes + predicted
    size = statistic_length(num_classes) - 1
    losses = -log_probabilities[np.arange(len(labels)), labels]
    losses = np.clip(np.nan_to_num(losses, nan=LOSS_BOUND), 0.0, LOSS_BOUND)
    statistic = np.zeros(size + 1)
    statistic[:size] = np.bincount(cells, minlength=size)
    statistic[size] = losses.sum() / LOSS_BOUND
    return statistic


def release_statistic(
    statistic: np.ndarray, noise_multiplier: float, randomness: Randomness
) -> np.ndarray:
    """`statistic` plus Gaussian noise of std noise_multiplier · EVALUATION_SENSITIVITY on every
    value: the Gaussian mechanism with noise multiplier `noise_multiplier` (ledger history tuple
    (noise_multiplier, 1.0, 1) on the test stream). 0 releases the statistic exactly.

    Raises:
        ConfigError: `noise_multiplier` is negative or not finite.
    """
    if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
        raise ConfigError(
            f"evaluation noise_multiplier must be a finite number ≥ 0, got {noise_multiplier}"
        )
    statistic = np.asarray(statistic, dtype=np.float64)
    if noise_multiplier == 0:
        return statistic.copy()
    std = noise_multiplier * EVALUATION_SENSITIVITY
    return statistic + np.asarray(randomness.gaussian(statistic.shape, std), dtype=np.float64)


def metrics_from_release(released: np.ndarray, num_classes: int) -> dict[str, float]:
    """accuracy, sensitivity, specificity, auroc (binary only), loss and num_examples computed
    from a released statistic alone (post-processing; see medfed.shared.metrics for how noisy
    counts become rates). Values lie in their ranges: rates in [0, 1], loss in
    [0, LOSS_BOUND], num_examples ≥ 1. A rate whose denominator is below one record is left out.

    Raises:
        DataError: `released` does not have statistic_length(num_classes) values.
    """
    released = np.asarray(released, dtype=np.float64)
    expected = statistic_length(num_classes)
    if released.shape != (expected,) or not np.isfinite(released).all():
        raise DataError(
            f"evaluation release: expected {expected} finite values for {num_classes} classes, "
            f"got shape {released.shape}"
        )
    cells, loss_sum = released[:-1], released[-1]
    if num_classes == 2:
        metrics = histogram_metrics(cells[:EVALUATION_BINS], cells[EVALUATION_BINS:])
    else:
        metrics = confusion_metrics(cells.reshape(num_classes, num_classes))
    num_examples = max(1.0, float(cells.sum()))
    loss = float(np.clip(loss_sum * LOSS_BOUND / num_examples, 0.0, LOSS_BOUND))
    return metrics | {"loss": loss, "num_examples": num_examples}

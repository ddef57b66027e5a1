"""The hospital's DP label counts: the one release every n-derived value comes from.

Under add/remove adjacency the number of training records is private. A hospital therefore
releases its per-class training counts once per dataset with the Gaussian mechanism (one
record changes one count by 1: L2 sensitivity 1), signs them into its ledger as a `count`
entry on the training stream, and derives everything else that depends on n from them: the
FedAvg weight, the Poisson rate, Opacus's expected batch size and balanced class weights.
Reusing released counts is post-processing; they are drawn again only for a new dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COUNT_SENSITIVITY = 1.0  # one record added or removed changes one class count by one


@dataclass(frozen=True)
class ReleasedCounts:
    """Noisy per-class training counts as released (may be fractional or negative)."""

    counts: tuple[float, ...]

    @property
    def size(self) -> float:
        """The released training-set size: Σ max(count, 0) rounded to a whole number, at least
        1 (whole, so plain FedAvg and secure aggregation's integer weights agree)."""
        return float(max(1, round(sum(max(c, 0.0) for c in self.counts))))

    def class_weights(self) -> tuple[float, ...]:
        """sklearn's "balanced" weights n / (k · count_k), each count taken as at least 1."""
        k = len(self.counts)
        return tuple(self.size / (k * max(c, 1.0)) for c in self.counts)


def exact_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class counts of `labels` (the statistic before noise)."""
    return np.bincount(labels, minlength=num_classes).astype(np.float64)


def release_counts(
    labels: np.ndarray, num_classes: int, noise_multiplier: float, randomness
) -> ReleasedCounts:
    """The Gaussian mechanism on the label histogram: counts + N(0, (σ · 1)²) each."""
    statistic = exact_counts(labels, num_classes)
    noise = randomness.gaussian(statistic.shape, noise_multiplier * COUNT_SENSITIVITY)
    return ReleasedCounts(tuple(float(v) for v in statistic + noise))

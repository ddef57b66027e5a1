"""Per-patient summaries of a vitals grid: the non-sequence baseline of the vitals benchmark.

Per channel, from the steps where it was read (`observed` indicator 1): the last reading, the
mean reading and the least-squares slope of reading against step (0 where fewer than two
steps were read; all three 0 for a channel never read). The issue's difficulty bound is a
logistic regression on these (docs/datasets.md).
"""

from __future__ import annotations

import numpy as np


def patient_summaries(grids: np.ndarray) -> np.ndarray:
    """N×T×(2C+1) grids (shared/data/sequences.py layout) → N×3C: last, mean, slope per channel."""
    channels = (grids.shape[2] - 1) // 2
    steps = np.arange(grids.shape[1], dtype=np.float64)
    columns = []
    for c in range(channels):
        values = grids[..., c].astype(np.float64)
        read = grids[..., channels + c] > 0.5
        count = read.sum(1)
        mean = (values * read).sum(1) / np.maximum(count, 1)
        last_step = np.where(read, np.arange(grids.shape[1]), -1).max(1)
        last = np.take_along_axis(values, np.maximum(last_step, 0)[:, None], 1)[:, 0]
        last = np.where(last_step >= 0, last, 0.0)
        centre = (steps * read).sum(1) / np.maximum(count, 1)
        spread = ((steps - centre[:, None]) ** 2 * read).sum(1)
        moment = ((steps - centre[:, None]) * (values - mean[:, None]) * read).sum(1)
        slope = np.where(spread > 0, moment / np.where(spread > 0, spread, 1.0), 0.0)
        columns += [last, mean, slope]
    return np.stack(columns, 1)

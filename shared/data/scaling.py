"""Record-local scaling: named columns clipped to public ranges and mapped onto [-1, 1].

The one definition of the per-record map that training (heart disease, breast cancer, through
`heart_disease.scale_features`) and serving (medfed.serve) apply. A `RangeScaler` is built
once from the ranges (public constants, never statistics of records); each call maps every row
on its own with whole-row array operations, so one request costs the same few numpy calls
whatever the number of columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


class RangeScaler:
    """Columns named in `bounds` (name → (low, high)), of the rows laid out as `names`.

    A ranged value becomes (clip(x, low, high) − mid) / half-range, clipped to [-1, 1] against
    rounding; every other column passes unchanged (its range is (−∞, ∞), mid 0, half-range 1,
    which leaves each value, NaN and ±∞ included, bit for bit as it was).

    Raises:
        ValueError: a column of `bounds` is not in `names`.
    """

    def __init__(self, bounds: Mapping[str, tuple[float, float]], names: Sequence[str]) -> None:
        names = list(names)
        self.columns = list(bounds)
        self.index = [names.index(column) for column in self.columns]
        width = len(names)
        self.low, self.high = np.full(width, -np.inf), np.full(width, np.inf)
        self.mid, self.half = np.zeros(width), np.ones(width)
        self.edge_low, self.edge_high = np.full(width, -np.inf), np.full(width, np.inf)
        for i, column in zip(self.index, self.columns, strict=True):
            low, high = (float(bound) for bound in bounds[column])
            self.low[i], self.high[i] = low, high
            self.mid[i], self.half[i] = (low + high) / 2, (high - low) / 2
            self.edge_low[i], self.edge_high[i] = -1.0, 1.0

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """float32 rows: `raw` (N × len(names), float64 in the columns' units) scaled."""
        unit = (np.minimum(np.maximum(raw, self.low), self.high) - self.mid) / self.half
        return np.minimum(np.maximum(unit, self.edge_low), self.edge_high).astype(np.float32)

    def clipped(self, raw: np.ndarray) -> dict[str, tuple[int, int]]:
        """Per ranged column: (values below, values above) its range."""
        values = raw[:, self.index]
        below = (values < self.low[self.index]).sum(0).tolist()
        above = (values > self.high[self.index]).sum(0).tolist()
        return {c: (int(b), int(a)) for c, b, a in zip(self.columns, below, above, strict=True)}

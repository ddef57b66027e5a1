"""Validated inputs → the model's input tensor, through training's own record-local functions.

Heart disease: `CODES` (the UCI codes), `feature_matrix` and `scale_features` from
shared/data/heart_disease.py with the run's bounds; sequences: `scale_channels` from
shared/data/sequences.py with the run's ranges; images: decoded by serve/images.py through
`window_uint8`. Each row depends on its own values and public constants only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pydantic import BaseModel

from medfed.serve.inputs import InputSchema, sequence_channels
from medfed.shared.config.models import RunConfig
from medfed.shared.data.heart_disease import (
    CODED_COLUMNS,
    CODES,
    FEATURE_BOUNDS,
    FEATURE_NAMES,
    feature_matrix,
    scale_features,
)
from medfed.shared.data.sequences import CHANNEL_RANGES, scale_channels


class Preprocessor:
    """Turns a batch of validated request items into an N×… float32 tensor."""

    def __init__(self, run: RunConfig, schema: InputSchema) -> None:
        self.schema = schema
        self.bounds = {**FEATURE_BOUNDS, **(run.data.feature_bounds or {})}
        if schema.kind == "sequence":
            self.keys, names, _ = sequence_channels(run)
            ranges = {**CHANNEL_RANGES, **(run.data.channel_ranges or {})}
            self.range_names, self.ranges = names, ranges

    @property
    def feature_names(self) -> list[str]:
        """Names of the model's input features (tabular), for explanations."""
        return list(FEATURE_NAMES)

    def __call__(self, batch: Sequence[BaseModel]) -> torch.Tensor:
        kind = self.schema.kind
        if kind == "tabular":
            array = self.records(batch)
        elif kind == "sequence":
            series = np.stack([[getattr(item, key) for key in self.keys] for item in batch])
            array = scale_channels(series.transpose(0, 2, 1), self.range_names, self.ranges)
        else:
            array = np.stack([item.pixels for item in batch])
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    def records(self, batch: Sequence[BaseModel]) -> np.ndarray:
        columns = {}
        for column in CODED_COLUMNS:
            values = [getattr(record, column) for record in batch]
            codes = CODES.get(column)
            if codes is not None:  # categorical or boolean: the CSV's text level → UCI code
                values = [codes[str(value).lower()] for value in values]
            columns[column] = np.asarray(values, dtype=np.float64)
        scaled, _ = scale_features(feature_matrix(columns), self.bounds)
        return scaled

"""Validated inputs → the model's input tensor, through training's own record-local functions.

Heart disease: `CODES` (the UCI codes), `feature_matrix` and `scale_features` from
shared/data/heart_disease.py with the run's bounds; sequences: the patients' readings as the
long rows (patient, time, channel, value) a vitals CSV holds, gridded by training's
`vitals_to_grid` (shared/data/sequences.py) with the run's channels, ranges, sequence_length
and sequence_step; images: decoded by serve/images.py through `window_uint8`. Each row depends
on its own values and public constants only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
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
from medfed.shared.data.sequences import vitals_to_grid


class Preprocessor:
    """Turns a batch of validated request items into an N×… float32 tensor."""

    def __init__(self, run: RunConfig, schema: InputSchema) -> None:
        self.schema = schema
        self.bounds = {**FEATURE_BOUNDS, **(run.data.feature_bounds or {})}
        if schema.kind == "sequence":
            self.channels, self.ranges = sequence_channels(run)
            self.length, self.step = run.data.sequence_length, run.data.sequence_step

    @property
    def feature_names(self) -> list[str]:
        """Names of the model's input features (tabular), for explanations."""
        return list(FEATURE_NAMES)

    def __call__(self, batch: Sequence[BaseModel]) -> torch.Tensor:
        kind = self.schema.kind
        if kind == "tabular":
            array = self.records(batch)
        elif kind == "sequence":
            array = vitals_to_grid(
                self.readings(batch), list(range(len(batch))), self.channels, self.ranges,
                self.length, self.step,
            )  # fmt: skip
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

    def readings(self, batch: Sequence[BaseModel]) -> pd.DataFrame:
        """Long rows (patient = index in the batch, time, channel, value), nulls dropped."""
        rows: dict[str, list] = {"patient": [], "time": [], "channel": [], "value": []}
        for patient, item in enumerate(batch):
            for channel in self.channels:
                for time, value in zip(item.time, getattr(item, channel) or (), strict=False):
                    if value is not None:
                        rows["patient"].append(patient)
                        rows["time"].append(time)
                        rows["channel"].append(channel)
                        rows["value"].append(value)
        return pd.DataFrame(
            {"patient": np.asarray(rows["patient"], dtype=np.int64),
             "time": np.asarray(rows["time"], dtype=np.float64),
             "channel": rows["channel"], "value": np.asarray(rows["value"], dtype=np.float64)}
        )  # fmt: skip

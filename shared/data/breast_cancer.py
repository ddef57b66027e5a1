"""Wisconsin breast cancer (diagnostic): 569 real patients, as scikit-learn ships them.

30 features of the cell nuclei in a digitised fine-needle aspirate (mean, standard error and
worst of 10 measurements); label 1 = malignant (scikit-learn codes malignant as 0, medfed's
positive class is the disease), 212 malignant / 357 benign. `data.path` may name a hospital's
own CSV with the same columns (`FEATURE_NAMES`, scikit-learn's names with `_` for spaces) and
`diagnosis` (M / B, as in UCI's wdbc.data).

The patients have no hospital, so the federation is a partition (`data.partition` = iid or
dirichlet over `data.num_hospitals`; natural needs a CSV with `data.hospital_column`), then a
stratified per-hospital train/test split (`data.test_fraction`). Partition and split use the
fixed `SPLIT_SEED`, not the run's seed: every run and seed sees the same hospitals, as FLamby's
fixed centres.

Scaling is record-local (design.md, Threat model): each feature is clipped to `FEATURE_BOUNDS`
(public constants, overridden by `data.feature_bounds`) and mapped onto [-1, 1]; no statistic
of any hospital's records is read. Clipped values are counted in the `medfed.data` log.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

from medfed.shared.data.base import read_csv_file
from medfed.shared.data.heart_disease import log_clipped, scale_features
from medfed.shared.errors import DataError

# The documented range of each feature: the "Summary Statistics" (Min, Max) table of the
# dataset's description (scikit-learn's DESCR, from UCI's wdbc.names), copied once by hand;
# public constants of the published dataset, never recomputed from the records being loaded.
FEATURE_BOUNDS: dict[str, tuple[float, float]] = {
    "mean_radius": (6.981, 28.11),
    "mean_texture": (9.71, 39.28),
    "mean_perimeter": (43.79, 188.5),
    "mean_area": (143.5, 2501.0),
    "mean_smoothness": (0.053, 0.163),
    "mean_compactness": (0.019, 0.345),
    "mean_concavity": (0.0, 0.427),
    "mean_concave_points": (0.0, 0.201),
    "mean_symmetry": (0.106, 0.304),
    "mean_fractal_dimension": (0.05, 0.097),
    "radius_error": (0.112, 2.873),
    "texture_error": (0.36, 4.885),
    "perimeter_error": (0.757, 21.98),
    "area_error": (6.802, 542.2),
    "smoothness_error": (0.002, 0.031),
    "compactness_error": (0.002, 0.135),
    "concavity_error": (0.0, 0.396),
    "concave_points_error": (0.0, 0.053),
    "symmetry_error": (0.008, 0.079),
    "fractal_dimension_error": (0.001, 0.03),
    "worst_radius": (7.93, 36.04),
    "worst_texture": (12.02, 49.54),
    "worst_perimeter": (50.41, 251.2),
    "worst_area": (185.2, 4254.0),
    "worst_smoothness": (0.071, 0.223),
    "worst_compactness": (0.027, 1.058),
    "worst_concavity": (0.0, 1.252),
    "worst_concave_points": (0.0, 0.291),
    "worst_symmetry": (0.156, 0.664),
    "worst_fractal_dimension": (0.055, 0.208),
}
FEATURE_NAMES = list(FEATURE_BOUNDS)
DIAGNOSIS = {"m": 1, "malignant": 1, "b": 0, "benign": 0}
SPLIT_SEED = 43


def packaged() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's copy: features in the published units, labels 1 = malignant."""
    bunch = load_breast_cancer()
    return bunch.data.astype(np.float64), (bunch.target == 0).astype(np.int64)


def read_breast_cancer_csv(
    path: Path, hospital_column: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A hospital's CSV: (features in the published units, labels, hospital names or None).

    Raises:
        DataError: file missing or unreadable, a column absent, non-numeric or missing
            values, or a diagnosis other than M / B.
    """
    frame = read_csv_file(path, "data file not found (set data.path to the hospital's CSV)")
    missing = [c for c in [*FEATURE_NAMES, "diagnosis"] if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: no column {', '.join(repr(c) for c in missing[:3])} (expected 'diagnosis' "
            f"and the 30 breast-cancer features: {', '.join(FEATURE_NAMES[:3])}, ...)"
        )
    diagnosis = frame["diagnosis"].astype(str).str.strip().str.lower()
    unknown = sorted(set(diagnosis) - set(DIAGNOSIS))
    if unknown:
        raise DataError(
            f"{path}: column 'diagnosis' has unknown value(s) {unknown[:3]} (expected M or B)"
        )
    features = frame[FEATURE_NAMES].apply(pd.to_numeric, errors="coerce")
    bad = [c for c in FEATURE_NAMES if features[c].isna().any()]
    if bad:
        raise DataError(f"{path}: column '{bad[0]}' has missing or non-numeric values")
    sites = frame[hospital_column].astype(str).to_numpy() if hospital_column in frame else None
    return features.to_numpy(np.float64), diagnosis.map(DIAGNOSIS).to_numpy(np.int64), sites


def load_breast_cancer_records(
    path: Path | None,
    hospital_column: str,
    feature_bounds: dict[str, tuple[float, float]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Every patient scaled on its own: (float32 features in [-1, 1], labels, hospitals or None).

    `feature_bounds` replaces entries of `FEATURE_BOUNDS` (validated in `DataConfig`).
    """
    if path is None:
        raw, labels, sites = (*packaged(), None)
    else:
        raw, labels, sites = read_breast_cancer_csv(path, hospital_column)
    bounds = {**FEATURE_BOUNDS, **(feature_bounds or {})}
    features, clipped = scale_features(raw, bounds, FEATURE_NAMES)
    log_clipped(path.name if path else "breast_cancer (scikit-learn)", clipped, bounds)
    return features, labels, sites

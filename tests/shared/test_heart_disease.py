import numpy as np
import pandas as pd
import pytest

from medfed.shared.data.heart_disease import (
    FEATURE_BOUNDS,
    FEATURE_NAMES,
    NUMERIC_COLUMNS,
    feature_matrix,
    load_heart_disease,
    packaged_csv,
    scale_features,
)
from medfed.shared.errors import DataError

EXPECTED = {
    "Cleveland": (200, 104),
    "Hungary": (171, 89),
    "Switzerland": (30, 16),
    "VA Long Beach": (85, 45),
}


def test_flamby_protocol_gives_the_published_train_test_counts():
    hospitals = load_heart_disease(None, "dataset")
    assert {h.name: (h.num_train, len(h.y_test)) for h in hospitals} == EXPECTED


def test_thirteen_features_scaled_with_public_ranges_into_the_unit_interval():
    for hospital in load_heart_disease(None, "dataset"):
        assert hospital.input_shape == (13,) == (len(FEATURE_NAMES),)
        features = np.concatenate([hospital.x_train, hospital.x_test])
        assert features.dtype == np.float32 and np.all(np.abs(features) <= 1.0)


def test_a_cleveland_patient_maps_to_hand_computed_features():
    cleveland = next(h for h in load_heart_disease(None, "dataset") if h.name == "Cleveland")
    features = np.concatenate([cleveland.x_train, cleveland.x_test])
    # CSV row 0: 63 y, male, typical angina, 145 mmHg, 233 mg/dl, fbs, lv hypertrophy, 150 bpm,
    # no exang, 2.3 mm; (x - mid) / half with age 18-100, trestbps 60-240, chol 50-650,
    # thalch 40-220, oldpeak -5-10; cp level 1 and restecg level 2 one-hot.
    expected = np.float32(
        [4 / 41, 1, -5 / 90, -117 / 300, 1, 20 / 90, 0, -0.2 / 7.5, 0, 0, 0, 0, 1]
    )
    assert np.any(np.all(np.abs(features - expected) < 1e-6, axis=1))


def test_label_is_num_greater_than_zero():
    frame = pd.read_csv(packaged_csv())
    cleveland = frame[frame.dataset == "Cleveland"]
    complete = cleveland.dropna(
        subset=[
            "age",
            "sex",
            "cp",
            "trestbps",
            "chol",
            "fbs",
            "restecg",
            "thalch",
            "exang",
            "oldpeak",
        ]
    )
    hospital = next(h for h in load_heart_disease(None, "dataset") if h.name == "Cleveland")
    positives = int(hospital.y_train.sum() + hospital.y_test.sum())
    assert positives == int((complete.num > 0).sum())


def test_hospital_csv_without_hospital_column_is_one_hospital(tmp_path):
    frame = pd.read_csv(packaged_csv())
    own = frame[frame.dataset == "Hungary"].drop(columns=["dataset"])
    path = tmp_path / "st_marys.csv"
    own.to_csv(path, index=False)
    (hospital,) = load_heart_disease(path, "dataset")
    assert (
        hospital.name == "st_marys"
        and (hospital.num_train, len(hospital.y_test)) == EXPECTED["Hungary"]
    )


def test_csv_missing_a_column_names_file_and_column(tmp_path):
    path = tmp_path / "heart.csv"
    pd.read_csv(packaged_csv()).drop(columns=["thalch"]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"heart\.csv: no column 'thalch'"):
        load_heart_disease(path, "dataset")


def test_unknown_category_names_column(tmp_path):
    path = tmp_path / "heart.csv"
    frame = pd.read_csv(packaged_csv())
    frame.loc[0, "cp"] = "sharp pain"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="column 'cp' has unknown value"):
        load_heart_disease(path, "dataset")


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_heart_disease(tmp_path / "absent.csv", "dataset")


def test_fingerprint_changes_with_the_data():
    first, second = load_heart_disease(None, "dataset")[:2]
    assert len(first.fingerprint) == 64 and first.fingerprint != second.fingerprint


def test_features_equal_the_per_column_formula_bit_for_bit():
    """The vectorised `feature_matrix` / `scale_features` against the formula written out per
    column and per level (independent of the library code), on values in and out of range."""
    rng = np.random.default_rng(7)
    n = 500
    columns = {name: rng.uniform(-50, 800, n).round(1) for name in NUMERIC_COLUMNS}
    columns |= {"sex": rng.integers(0, 2, n), "fbs": rng.integers(0, 2, n),
                "exang": rng.integers(0, 2, n), "cp": rng.integers(1, 5, n),
                "restecg": rng.integers(0, 3, n)}  # fmt: skip
    columns["age"][:3] = [18.0, 100.0, np.nan]  # the bounds themselves, and a NaN passing through
    bounds = FEATURE_BOUNDS | {"chol": (100.0, 400.0)}
    expected = np.stack(
        [columns[c].astype(np.float64) for c in NUMERIC_COLUMNS]
        + [(columns["cp"] == level).astype(np.float64) for level in (2, 3, 4)]
        + [(columns["restecg"] == level).astype(np.float64) for level in (1, 2)],
        axis=1,
    )
    raw = feature_matrix(columns)
    assert raw.tobytes() == expected.tobytes()
    scaled, clipped = scale_features(raw, bounds)
    for column, (low, high) in bounds.items():
        i = FEATURE_NAMES.index(column)
        values = expected[:, i].copy()
        unit = (np.clip(values, low, high) - (low + high) / 2) / ((high - low) / 2)
        expected[:, i] = np.clip(unit, -1.0, 1.0)
        assert clipped[column] == (int((values < low).sum()), int((values > high).sum()))
    assert scaled.dtype == np.float32
    assert scaled.tobytes() == expected.astype(np.float32).tobytes()

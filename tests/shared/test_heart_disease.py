import numpy as np
import pandas as pd
import pytest

from medfed.shared.data.heart_disease import FEATURE_NAMES, load_heart_disease, packaged_csv
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


def test_thirteen_features_z_scored_with_training_statistics():
    for hospital in load_heart_disease(None, "dataset"):
        assert hospital.input_shape == (13,) == (len(FEATURE_NAMES),)
        means = hospital.x_train.mean(axis=0)
        assert np.allclose(means, 0, atol=1e-5)
        stds = hospital.x_train.std(axis=0)
        assert np.all((np.abs(stds - 1) < 1e-4) | (stds < 1e-6))  # constant features stay 0


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

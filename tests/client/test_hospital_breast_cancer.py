"""A deployed hospital's own Wisconsin breast-cancer CSV (dataset = "breast_cancer")."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from medfed.client.cli import problems_of
from medfed.client.hospital_config import load_hospital_config
from medfed.client.node_hospital import cached_data
from medfed.shared.data.breast_cancer import FEATURE_BOUNDS, FEATURE_NAMES

HOSPITAL = """name = "North"
[connection]
superlink = "127.0.0.1:9"
insecure = true
[data]
dataset = "breast_cancer"
path = "wdbc.csv"
{extra}
[privacy]
max_epsilon = 1.0
[secure_aggregation]
enabled = false
"""
ROWS = 120


def write_csv(folder, drop=None):
    """The first ROWS patients of scikit-learn's copy, in the hospital-CSV layout (M / B)."""
    bunch = load_breast_cancer()
    frame = pd.DataFrame(bunch.data[:ROWS], columns=FEATURE_NAMES)
    frame["diagnosis"] = np.where(bunch.target[:ROWS] == 0, "M", "B")
    frame.drop(columns=[drop] if drop else []).to_csv(folder / "wdbc.csv", index=False)
    return bunch.data[:ROWS], (bunch.target[:ROWS] == 0).astype(np.int64)


def config(folder, extra=""):
    path = folder / "hospital.toml"
    path.write_text(HOSPITAL.format(extra=extra), encoding="utf-8")
    return load_hospital_config(path), path


def test_a_breast_cancer_csv_loads_scaled_by_the_public_bounds_alone(tmp_path):
    raw, labels = write_csv(tmp_path)
    hospital, _ = config(tmp_path)
    data = cached_data(hospital.data.loader_config(), "North", tmp_path / "cache")
    assert data.input_shape == (30,) and data.num_classes == 2
    assert len(data.y_train) + len(data.y_test) == ROWS
    # Golden: each row mapped onto [-1, 1] by the published (min, max), computed here.
    low, high = np.array([FEATURE_BOUNDS[name] for name in FEATURE_NAMES]).T
    expected = 2 * (np.clip(raw, low, high) - low) / (high - low) - 1
    for features, label in zip(data.x_train, data.y_train, strict=True):
        distance = np.abs(expected - features).max(axis=1)
        assert distance.min() < 1e-5 and labels[distance.argmin()] == label


def test_feature_bounds_are_the_simulate_configs(tmp_path):
    write_csv(tmp_path)
    hospital, _ = config(tmp_path, "feature_bounds = { mean_radius = [0, 50] }")
    assert hospital.data.loader_config().feature_bounds == {"mean_radius": (0.0, 50.0)}
    with pytest.raises(Exception, match="unknown breast_cancer feature 'chol'"):
        config(tmp_path, "feature_bounds = { chol = [100, 600] }")


def test_check_names_a_missing_column(tmp_path):
    write_csv(tmp_path, drop="worst_area")
    hospital, path = config(tmp_path)
    [line] = problems_of(hospital, path)
    assert "wdbc.csv" in line and "'worst_area'" in line

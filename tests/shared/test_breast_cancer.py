"""The breast_cancer dataset: scikit-learn's 569 patients as fixed hospitals, scaled per record."""

import logging
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from medfed.shared.config import DataConfig, load_config
from medfed.shared.data import load_federation
from medfed.shared.data.breast_cancer import FEATURE_BOUNDS, FEATURE_NAMES
from medfed.shared.errors import ConfigError, DataError


def config(**values) -> DataConfig:
    return DataConfig(
        **{"dataset": "breast_cancer", "partition": "dirichlet", "num_hospitals": 4} | values
    )


def records(hospitals) -> Counter:
    """Every encoded record, keyed by label and exact feature bytes (not by hospital)."""
    return Counter(
        (int(label), row.tobytes())
        for h in hospitals
        for x, y in ((h.x_train, h.y_train), (h.x_test, h.y_test))
        for row, label in zip(x, y, strict=True)
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """scikit-learn's copy as a hospital CSV: the 30 features and UCI's M/B diagnosis."""
    bunch = load_breast_cancer(as_frame=True)
    features = bunch.data.set_axis(FEATURE_NAMES, axis=1)
    return features.assign(diagnosis=np.where(bunch.target == 0, "M", "B"))


def test_loads_all_569_patients_with_30_features_in_the_unit_interval():
    hospitals = load_federation(config(), seed=0)
    features = np.concatenate([x for h in hospitals for x in (h.x_train, h.x_test)])
    labels = np.concatenate([y for h in hospitals for y in (h.y_train, h.y_test)])
    assert features.shape == (569, 30) and features.dtype == np.float32
    assert np.all(np.abs(features) <= 1.0)
    assert int(labels.sum()) == 212  # label 1 = malignant (scikit-learn codes it 0)


def test_a_patient_maps_to_hand_computed_features():
    raw = load_breast_cancer().data[0]  # 17.99 mm mean radius, ..., a malignant tumour
    low, high = np.array(list(FEATURE_BOUNDS.values())).T
    expected = np.clip((2 * raw - low - high) / (high - low), -1, 1).astype(np.float32)
    hospitals = load_federation(config(), seed=0)
    features = np.concatenate([x for h in hospitals for x in (h.x_train, h.x_test)])
    assert np.any(np.all(np.abs(features - expected) < 1e-6, axis=1))
    assert abs(expected[0] - (17.99 - 17.5455) / 10.5645) < 1e-5  # mean radius, by hand


@pytest.mark.parametrize("partition", ["iid", "dirichlet"])
def test_each_hospital_splits_a_third_of_its_patients_to_test_stratified(partition):
    hospitals = load_federation(config(partition=partition), seed=0)
    assert [h.name for h in hospitals] == [f"hospital_{i}" for i in range(4)]
    assert sum(h.num_train + len(h.y_test) for h in hospitals) == 569
    for h in hospitals:
        size = h.num_train + len(h.y_test)
        assert len(h.y_test) == int(np.ceil(0.34 * size))  # scikit-learn rounds the test up
        for label in (0, 1):  # stratified: each class split in the same proportion (±1 row)
            in_test, total = (
                (h.y_test == label).sum(),
                (h.y_train == label).sum() + (h.y_test == label).sum(),
            )
            assert abs(in_test - 0.34 * total) <= 1.0


def test_the_hospitals_are_the_same_patients_for_every_run_seed():
    first, second = load_federation(config(), seed=0), load_federation(config(), seed=7)
    for a, b in zip(first, second, strict=True):
        assert a.fingerprint == b.fingerprint and a.x_test.tobytes() == b.x_test.tobytes()


def test_dirichlet_partition_skews_labels_and_iid_does_not():
    def malignant_share(partition):
        return [
            (h.y_train.sum() + h.y_test.sum()) / (h.num_train + len(h.y_test))
            for h in load_federation(config(partition=partition), seed=0)
        ]

    assert np.ptp(malignant_share("iid")) < 0.15
    assert np.ptp(malignant_share("dirichlet")) > 0.2


def test_changing_one_patients_values_leaves_every_other_record_bit_identical(frame, tmp_path):
    path = tmp_path / "wdbc.csv"
    frame.to_csv(path, index=False)
    before = records(load_federation(config(path=path), seed=0))
    changed = frame.copy()
    changed.loc[5, FEATURE_NAMES] = changed.loc[5, FEATURE_NAMES] * 1e4  # one outlier patient
    changed.to_csv(path, index=False)
    after = records(load_federation(config(path=path), seed=0))
    (lost,), (gained,) = before - after, after - before  # one record changed, no other
    assert sum((before - after).values()) == 1 and sum((after - before).values()) == 1
    assert np.all(np.frombuffer(gained[1], np.float32) == 1.0)  # clipped at every upper bound
    assert lost[0] == gained[0]


def test_adding_a_patient_adds_one_record_and_changes_no_other(frame, tmp_path):
    path = tmp_path / "wdbc.csv"
    frame.to_csv(path, index=False)
    before = records(load_federation(config(path=path, partition="iid"), seed=0))
    new = frame.iloc[[0]].assign(mean_area=-1e6, worst_texture=1e9, diagnosis="B")
    pd.concat([frame, new]).to_csv(path, index=False)
    after = records(load_federation(config(path=path, partition="iid"), seed=0))
    assert before - after == Counter() and sum((after - before).values()) == 1


def test_a_csv_with_a_hospital_column_gives_natural_hospitals(frame, tmp_path):
    path = tmp_path / "wdbc.csv"
    frame.assign(site=np.where(np.arange(len(frame)) % 3, "north", "south")).to_csv(path)
    hospitals = load_federation(
        DataConfig(dataset="breast_cancer", path=path, hospital_column="site"), seed=0
    )
    assert [h.name for h in hospitals] == ["south", "north"]
    assert [h.num_train + len(h.y_test) for h in hospitals] == [190, 379]


def test_feature_bounds_override_replaces_one_range_and_counts_clipped_values(caplog):
    data = config(feature_bounds={"mean_radius": (10.0, 20.0)})
    with caplog.at_level(logging.INFO, logger="medfed.data"):
        hospitals = load_federation(data, seed=0)
    radius = np.concatenate([x[:, 0] for h in hospitals for x in (h.x_train, h.x_test)])
    raw = load_breast_cancer().data[:, 0]
    assert (radius == -1.0).sum() == (raw <= 10.0).sum() and (radius == 1.0).sum() == (
        raw >= 20.0
    ).sum()
    (message,) = [r.getMessage() for r in caplog.records if r.name == "medfed.data"]
    assert f"mean_radius {(raw < 10).sum()} below 10" in message


def test_feature_bounds_name_the_dataset_features_and_the_fix(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[data]\ndataset = "breast_cancer"\n')
    with pytest.raises(ConfigError, match=r"data\.feature_bounds: .*breast_cancer.*'chol'.*mean_"):
        load_config(path, ["data.feature_bounds.chol=[1, 2]"], environ={})
    ok = load_config(path, ["data.feature_bounds.worst_area=[100, 5000]"], environ={})
    assert ok.data.feature_bounds == {"worst_area": (100.0, 5000.0)}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="worst_area"), r"wdbc\.csv: no column 'worst_area'"),
        (lambda f: f.assign(diagnosis="X"), r"wdbc\.csv: column 'diagnosis'.*\['x'\].*M or B"),
        (lambda f: f.assign(mean_area="big"), r"wdbc\.csv: column 'mean_area'.*non-numeric"),
    ],
)
def test_bad_csv_names_the_file_the_column_and_the_fix(frame, tmp_path, change, message):
    path = tmp_path / "wdbc.csv"
    change(frame).to_csv(path, index=False)
    with pytest.raises(DataError, match=message):
        load_federation(config(path=path), seed=0)


def test_natural_partition_without_a_hospital_column_says_what_to_use():
    with pytest.raises(DataError, match=r"'natural'.*use partition = 'iid' or 'dirichlet'"):
        load_federation(DataConfig(dataset="breast_cancer"), seed=0)

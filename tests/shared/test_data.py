import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfed.shared.config import DataConfig
from medfed.shared.data import load_federation
from medfed.shared.data.imaging import read_medmnist, synthetic_lesions
from medfed.shared.data.partition import dirichlet_partition, iid_partition, natural_partition
from medfed.shared.data.sequences import read_vitals_csv
from medfed.shared.errors import DataError


@given(st.integers(10, 500), st.integers(1, 10), st.integers(0, 10**6))
def test_iid_partition_is_a_disjoint_cover(n, k, seed):
    parts = iid_partition(n, k, seed)
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@settings(max_examples=30)
@given(st.integers(2, 8), st.floats(0.1, 10), st.integers(0, 10**6))
def test_dirichlet_partition_is_a_disjoint_cover_without_empty_hospitals(k, alpha, seed):
    labels = np.random.default_rng(seed).integers(0, 3, size=400)
    parts = dirichlet_partition(labels, k, alpha, seed)
    assert sorted(np.concatenate(parts).tolist()) == list(range(400))
    assert min(map(len, parts)) >= 2


def test_dirichlet_small_alpha_skews_labels():
    labels = np.repeat([0, 1], 500)
    parts = dirichlet_partition(labels, 5, 0.1, 0)
    shares = [labels[p].mean() for p in parts]
    assert max(shares) - min(shares) > 0.5


def test_impossible_dirichlet_split_explains_the_fix():
    with pytest.raises(DataError, match="raise data.dirichlet_alpha"):
        dirichlet_partition(np.zeros(10, dtype=int), 8, 0.01, 0, min_size=2)


def test_natural_partition_groups_by_hospital():
    groups = natural_partition(np.array(["b", "a", "b"]))
    assert list(groups) == ["b", "a"] and groups["b"].tolist() == [0, 2]


def test_synthetic_images_are_balanced_and_shaped():
    images, labels = synthetic_lesions(100, 16, 3, seed=1)
    assert images.shape == (100, 3, 16, 16) and images.dtype == np.float32
    assert labels.mean() == 0.5 and 0 <= images.min() and images.max() <= 1


def test_synthetic_images_are_reproducible_per_seed():
    assert np.array_equal(synthetic_lesions(20, 8, 1, 3)[0], synthetic_lesions(20, 8, 1, 3)[0])
    assert not np.array_equal(synthetic_lesions(20, 8, 1, 3)[0], synthetic_lesions(20, 8, 1, 4)[0])


def test_medmnist_npz_pools_splits_as_nchw(tmp_path):
    path = tmp_path / "pneumoniamnist.npz"
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, size=(n, 1))
    np.savez(path, **arrays)
    images, labels = read_medmnist(path)
    assert images.shape == (11, 1, 28, 28) and labels.shape == (11,)
    assert images.max() <= 1.0


def test_medmnist_missing_key_is_named(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, train_images=np.zeros((2, 4, 4)))
    with pytest.raises(DataError, match="missing key"):
        read_medmnist(path)


def test_vitals_csv_long_format_to_sequences(tmp_path):
    rows = []
    for patient, label, site in (("p1", 0, "north"), ("p2", 1, "south"), ("p3", 1, "north")):
        for time in range(5):
            for channel, value in (
                ("heart_rate", 70 + time * label * 5),
                ("spo2", 97 - time * label),
            ):
                rows.append(
                    {
                        "patient": patient,
                        "time": time,
                        "channel": channel,
                        "value": value,
                        "label": label,
                        "hospital": site,
                    }
                )
    path = tmp_path / "vitals.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    sequences, labels, sites = read_vitals_csv(path, sequence_length=8, hospital_column="hospital")
    # Every configured channel (4 by default), whatever the file measures: a fixed input shape
    # of 4 values, 4 observed indicators and the step mask.
    assert sequences.shape == (3, 8, 9) and labels.tolist() == [0, 1, 1]
    assert sites.tolist() == ["north", "south", "north"]


def test_vitals_csv_missing_column_is_named(tmp_path):
    path = tmp_path / "vitals.csv"
    pd.DataFrame({"patient": [1], "time": [0], "value": [1.0], "label": [0]}).to_csv(
        path, index=False
    )
    with pytest.raises(DataError, match="no column 'channel'"):
        read_vitals_csv(path, 4, "hospital")


@pytest.mark.parametrize("dataset", ["imaging", "sequences"])
def test_federation_of_synthetic_data_splits_every_hospital(dataset):
    hospitals = load_federation(
        DataConfig(dataset=dataset, partition="dirichlet", num_hospitals=3, samples=300), seed=0
    )
    assert len(hospitals) == 3
    assert sum(h.num_train + len(h.y_test) for h in hospitals) == 300


def test_natural_partition_without_hospital_column_is_explained():
    with pytest.raises(DataError, match="needs a 'dataset' column"):
        load_federation(DataConfig(dataset="imaging", partition="natural"), seed=0)

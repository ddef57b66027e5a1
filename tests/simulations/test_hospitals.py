"""Simulated hospitals read their own partition from the run's storage, not the whole data."""

import numpy as np
import pytest
from flwr.app import Context, RecordDict

import medfed.shared.data
import medfed.shared.data.registry
from medfed.shared.config.models import DataConfig, RunConfig
from medfed.shared.data import load_federation
from medfed.shared.errors import DataError
from medfed.simulations.hospitals import SimulatedHospitals, load_partition, store_partitions

RUN = RunConfig(
    seed=3,
    data=DataConfig(
        dataset="imaging", partition="dirichlet", num_hospitals=5, samples=200, image_size=8
    ),
)


def _context(partition_id: int) -> Context:
    return Context(0, partition_id, {"partition-id": partition_id}, RecordDict(), {})


def test_stored_partition_is_exactly_the_one_load_federation_gives(tmp_path):
    expected = load_federation(RUN.data, RUN.seed)
    store_partitions(expected, tmp_path)
    for partition_id, hospital in enumerate(expected):
        loaded = load_partition(tmp_path, partition_id)
        assert loaded.name == hospital.name
        assert loaded.num_classes == hospital.num_classes
        assert loaded.fingerprint == hospital.fingerprint
        for name in ("x_train", "y_train", "x_test", "y_test"):
            stored, original = getattr(loaded, name), getattr(hospital, name)
            assert stored.dtype == original.dtype
            np.testing.assert_array_equal(stored, original)
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, nothing half-written left


def test_a_message_loads_its_partition_without_regenerating_the_federation(tmp_path, monkeypatch):
    expected = load_federation(RUN.data, RUN.seed)
    store_partitions(expected, tmp_path / "data")

    def forbidden(*args, **kwargs):
        raise AssertionError("load_federation called at message time")

    monkeypatch.setattr(medfed.shared.data.registry, "load_federation", forbidden)
    monkeypatch.setattr(medfed.shared.data, "load_federation", forbidden)
    loader = SimulatedHospitals(RUN, tmp_path / "ledgers", tmp_path / "data")
    data, settings = loader(_context(2))
    assert data.fingerprint == expected[2].fingerprint  # SHA-256 over the training arrays
    np.testing.assert_array_equal(data.x_test, expected[2].x_test)
    assert settings.name == expected[2].name
    assert settings.ledger_path.parent == tmp_path / "ledgers"


def test_a_missing_partition_file_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"7\.npz"):
        load_partition(tmp_path, 7)

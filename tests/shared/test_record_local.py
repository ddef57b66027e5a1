"""Record-local preprocessing: a record's features depend only on it and public constants.

DP-SGD's guarantee assumes that adding or removing one patient changes only that patient's
gradient; a statistic over patients (a z-score mean, a std) lets one record move all others.
Every check runs the real loaders on CSV files and compares encoded records across two loads.
"""

import logging
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfed.shared.config import DataConfig, load_config
from medfed.shared.data import load_federation
from medfed.shared.data.heart_disease import load_heart_disease, packaged_csv
from medfed.shared.data.imaging import read_medmnist
from medfed.shared.data.sequences import read_vitals_csv
from medfed.shared.errors import ConfigError, DataError

HEART_NUMERIC = ["age", "trestbps", "chol", "thalch", "oldpeak"]  # scaled columns, in order
HEART_FEATURE_INDEX = {"age": 0, "trestbps": 2, "chol": 3, "thalch": 5, "oldpeak": 7}


def heart_records(hospitals) -> Counter:
    """Every encoded record of a load, keyed by hospital, label and exact feature bytes."""
    return Counter(
        (h.name, int(label), row.tobytes())
        for h in hospitals
        for x, y in ((h.x_train, h.y_train), (h.x_test, h.y_test))
        for row, label in zip(x, y, strict=True)
    )


def cleveland_row(**values) -> dict:
    """A complete Cleveland patient (the packaged CSV's first row) with `values` replaced."""
    row = pd.read_csv(packaged_csv()).iloc[0].to_dict()
    return {**row, "id": 100_000, **values}


@pytest.fixture(scope="module")
def heart_frame():
    return pd.read_csv(packaged_csv())


@pytest.fixture(scope="module")
def heart_baseline(heart_frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("heart") / "heart.csv"
    heart_frame.to_csv(path, index=False)
    return heart_records(load_heart_disease(path, "dataset"))


def load_with(frame: pd.DataFrame, path) -> list:
    frame.to_csv(path, index=False)
    return load_heart_disease(path, "dataset")


@pytest.mark.parametrize(
    "outlier",
    [{"chol": 2000.0}, {"chol": 1e5}, {"trestbps": 1e4}, {"age": -40.0}, {"oldpeak": -1e9}],
)
def test_adding_an_outlier_patient_leaves_every_other_record_bit_identical(
    heart_frame, heart_baseline, tmp_path, outlier
):
    added = pd.concat([heart_frame, pd.DataFrame([cleveland_row(**outlier)])], ignore_index=True)
    records = heart_records(load_with(added, tmp_path / "heart.csv"))
    assert heart_baseline - records == Counter()  # every old record is there, unchanged
    assert sum((records - heart_baseline).values()) == 1  # and exactly one new one


def test_outliers_own_features_are_clipped_into_the_unit_interval(heart_frame, tmp_path):
    added = pd.concat(
        [heart_frame, pd.DataFrame([cleveland_row(chol=1e5, trestbps=-3.0)])], ignore_index=True
    )
    baseline = heart_records(load_with(heart_frame, tmp_path / "before.csv"))
    ((name, _, row_bytes),) = heart_records(load_with(added, tmp_path / "after.csv")) - baseline
    row = np.frombuffer(row_bytes, dtype=np.float32)
    assert name == "Cleveland" and np.all(np.abs(row) <= 1.0)
    assert row[HEART_FEATURE_INDEX["chol"]] == 1.0 and row[HEART_FEATURE_INDEX["trestbps"]] == -1.0


def test_numeric_features_map_their_range_linearly_onto_minus_one_to_one(tmp_path):
    from medfed.shared.data.heart_disease import FEATURE_BOUNDS

    rows = []
    for position, fraction in enumerate((0.0, 0.25, 0.5, 1.0) * 2):  # 8 rows: a 66/34 split
        values = {c: lo + fraction * (hi - lo) for c, (lo, hi) in FEATURE_BOUNDS.items()}
        rows.append(cleveland_row(id=position, **values))
    (hospital,) = load_with(pd.DataFrame(rows).drop(columns="dataset"), tmp_path / "h.csv")
    features = np.concatenate([hospital.x_train, hospital.x_test])
    for column, index in HEART_FEATURE_INDEX.items():
        assert sorted(set(features[:, index].tolist())) == [-1.0, -0.5, 0.0, 1.0], column


def test_indicators_stay_zero_or_one():
    for hospital in load_heart_disease(None, "dataset"):
        features = np.concatenate([hospital.x_train, hospital.x_test])
        indicators = np.delete(features, list(HEART_FEATURE_INDEX.values()), axis=1)
        assert set(np.unique(indicators).tolist()) <= {0.0, 1.0}


def test_unmeasured_cholesterol_coded_zero_sits_at_the_lower_bound():
    switzerland = next(h for h in load_heart_disease(None, "dataset") if h.name == "Switzerland")
    chol = np.concatenate([switzerland.x_train, switzerland.x_test])[:, HEART_FEATURE_INDEX["chol"]]
    assert np.all(chol == -1.0)  # UCI's 0 = not measured, for every Swiss patient


def test_clipped_values_are_counted_per_hospital_and_column_in_the_log(
    heart_frame, tmp_path, caplog
):
    outliers = pd.DataFrame([cleveland_row(chol=2000.0), cleveland_row(chol=1e5, age=200.0)])
    with caplog.at_level(logging.INFO, logger="medfed.data"):
        load_with(pd.concat([heart_frame, outliers], ignore_index=True), tmp_path / "h.csv")
    cleveland = [r.getMessage() for r in caplog.records if "Cleveland" in r.getMessage()]
    assert all(r.name == "medfed.data" and r.levelno == logging.INFO for r in caplog.records)
    assert len(cleveland) == 1 and "chol 2 above" in cleveland[0] and "age 1 above" in cleveland[0]
    assert any(
        "Switzerland" in r.getMessage() and "chol 46 below" in r.getMessage()
        for r in caplog.records
    )


_level = st.sampled_from
_value = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, np.inf, -np.inf, 2000.0, 1e5])
)
_patient = st.fixed_dictionaries(
    {
        "dataset": _level(["Cleveland", "Hungary", "Switzerland", "VA Long Beach"]),
        "sex": _level(["Male", "Female"]),
        "cp": _level(["typical angina", "atypical angina", "non-anginal", "asymptomatic"]),
        "fbs": _level([True, False]),
        "restecg": _level(["normal", "st-t abnormality", "lv hypertrophy"]),
        "exang": _level([True, False]),
        "num": st.integers(0, 4),
        **{column: _value for column in HEART_NUMERIC},
    }
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    change=st.one_of(
        st.tuples(st.just("add"), _patient), st.tuples(st.just("remove"), st.integers(0, 919))
    )
)
def test_a_random_neighbouring_dataset_changes_only_its_own_record(
    heart_frame, heart_baseline, tmp_path, change
):
    kind, what = change
    if kind == "add":
        neighbour = pd.concat([heart_frame, pd.DataFrame([cleveland_row(**what)])])
    else:
        neighbour = heart_frame.drop(index=heart_frame.index[what])
    records = heart_records(load_with(neighbour, tmp_path / "neighbour.csv"))
    gained, lost = records - heart_baseline, heart_baseline - records
    if kind == "add":
        assert lost == Counter() and sum(gained.values()) == 1
        assert np.all(np.abs(np.frombuffer(next(iter(gained))[2], np.float32)) <= 1.0)
    else:  # an incomplete row was never a record
        assert gained == Counter() and sum(lost.values()) <= 1


def test_feature_bounds_override_from_toml_replaces_one_range(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[data]\nfeature_bounds = { chol = [100, 600] }\n")
    config = load_config(path, environ={})
    assert config.data.feature_bounds == {"chol": (100.0, 600.0)}
    rows = pd.DataFrame([cleveland_row(id=i, chol=600.0 if i % 2 else 100.0) for i in range(6)])
    rows.to_csv(tmp_path / "h.csv", index=False)
    data = DataConfig(
        path=tmp_path / "h.csv", hospital_column="x", feature_bounds=config.data.feature_bounds
    )
    (hospital,) = load_federation(data, seed=0)
    chol = np.concatenate([hospital.x_train, hospital.x_test])[:, HEART_FEATURE_INDEX["chol"]]
    assert sorted(set(chol.tolist())) == [-1.0, 1.0]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("data.feature_bounds.chol=[600, 100]", r"data\.feature_bounds: .*'chol'.*low < high"),
        ("data.feature_bounds.chol=[100, inf]", r"data\.feature_bounds: .*'chol'.*finite"),
        ("data.feature_bounds.cholesterol=[1, 2]", r"data\.feature_bounds: .*'cholesterol'.*chol"),
        ("data.channel_ranges.lactate=[20, 0]", r"data\.channel_ranges: .*'lactate'.*low < high"),
    ],
)
def test_bad_ranges_name_the_key_and_the_fix(tmp_path, setting, message):
    path = tmp_path / "run.toml"
    path.write_text('name = "t"\n')
    with pytest.raises(ConfigError, match=message):
        load_config(path, [setting], environ={})


# --- vitals -------------------------------------------------------------------------------


def vitals_rows(patient, label, site, heart_rates, spo2=97.0):
    return [
        {
            "patient": patient,
            "time": t,
            "channel": channel,
            "value": value,
            "label": label,
            "hospital": site,
        }
        for t, hr in enumerate(heart_rates)
        for channel, value in (("heart_rate", hr), ("spo2", spo2))
    ]


def vitals_frame(patients: int = 12) -> pd.DataFrame:
    rows = []
    for p in range(patients):
        rates = [70.0 + 3 * p + 5 * t * (p % 2) for t in range(5)]
        rows += vitals_rows(f"p{p}", p % 2, "north" if p < patients // 2 else "south", rates)
    return pd.DataFrame(rows)


def read(frame: pd.DataFrame, path, **kwargs):
    frame.to_csv(path, index=False)
    return read_vitals_csv(path, 8, "hospital", **kwargs)


def test_adding_a_patient_with_heart_rate_1e4_leaves_every_other_patient_bit_identical(tmp_path):
    base = vitals_frame()
    before, _, _ = read(base, tmp_path / "before.csv")
    outlier = pd.DataFrame(vitals_rows("p99", 1, "north", [80.0, 1e4, 1e4], spo2=-5.0))
    after, _, _ = read(pd.concat([base, outlier]), tmp_path / "after.csv")
    assert after[:-1].tobytes() == before.tobytes()
    # Channels in sorted order of the configured ranges: heart_rate 0, spo2 2; 3 readings on
    # a grid of 8 steps: steps 0-4 are padding (all zero, step mask 0).
    assert np.all(after[-1, -2:, 0] == 1.0) and np.all(after[-1, 5:, 2] == -1.0)
    assert np.all(after[-1, :5] == 0.0) and np.all(after[-1, 5:, -1] == 1.0)


def test_a_test_split_patients_values_do_not_move_any_training_patient(tmp_path):
    base = vitals_frame()
    config = DataConfig(
        dataset="sequences", path=tmp_path / "v.csv", hospital_column="hospital", sequence_length=8
    )
    base.to_csv(config.path, index=False)
    before = load_federation(config, seed=0)
    tested = 0
    for patient in base.patient.unique():
        changed = base.copy()
        mine = (changed.patient == patient) & (changed.channel == "heart_rate")
        changed.loc[mine, "value"] *= 3.0
        changed.to_csv(config.path, index=False)
        after = load_federation(config, seed=0)
        moved = [
            (a.name, split)
            for a, b in zip(after, before, strict=True)
            for split in ("x_train", "x_test")
            if getattr(a, split).tobytes() != getattr(b, split).tobytes()
        ]
        assert len(moved) == 1  # the patient's own split, no other
        tested += moved[0][1] == "x_test"
    assert tested >= 2  # some of the changed patients were test-split patients


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    remove=st.one_of(st.none(), st.integers(0, 11)),
    rates=st.lists(st.floats(-1e5, 1e5, allow_nan=False), min_size=1, max_size=12),
)
def test_random_neighbouring_vitals_file_changes_only_its_own_patient(tmp_path, remove, rates):
    base = vitals_frame()
    before, _, _ = read(base, tmp_path / "before.csv")
    if remove is None:
        neighbour = pd.concat([base, pd.DataFrame(vitals_rows("new", 1, "north", rates))])
        expected = before
    else:
        neighbour = base[base.patient != f"p{remove}"]
        expected = np.delete(before, remove, axis=0)
    after, _, _ = read(neighbour, tmp_path / "after.csv")
    kept = after[:-1] if remove is None else after
    assert kept.tobytes() == expected.tobytes()
    assert np.all(np.abs(after) <= 1.0)


def test_channel_without_a_range_names_file_channel_and_fix(tmp_path):
    frame = vitals_frame()
    frame.loc[frame.channel == "spo2", "channel"] = "lactate"
    with pytest.raises(DataError, match=r"v\.csv: channel 'lactate'.*data\.channel_ranges"):
        read(frame, tmp_path / "v.csv")


def test_channel_ranges_add_a_channel_and_override_a_known_one(tmp_path):
    frame = vitals_frame()
    frame.loc[frame.channel == "spo2", "channel"] = "lactate"
    ranges = {"lactate": (0.0, 194.0), "heart_rate": (70.0, 130.0)}
    sequences, _, _ = read(frame, tmp_path / "v.csv", channel_ranges=ranges)
    # Columns sorted; p0's 5 readings fill steps 3-7 of 8.
    lactate_first, heart_rate_first = sequences[0, 3, 1], sequences[0, 3, 0]
    assert lactate_first == 0.0 and heart_rate_first == -1.0  # 97 mid of [0, 194]; 70 low


def test_clipped_vitals_are_counted_per_channel_in_the_log(tmp_path, caplog):
    frame = pd.concat([vitals_frame(), pd.DataFrame(vitals_rows("p99", 1, "x", [1e4, 5.0]))])
    with caplog.at_level(logging.INFO, logger="medfed.data"):
        read(frame, tmp_path / "v.csv")
    (message,) = [r.getMessage() for r in caplog.records if r.name == "medfed.data"]
    assert "v.csv" in message and "heart_rate 1 below" in message and "1 above" in message


def test_a_channel_the_patient_never_had_sits_at_the_range_midpoint(tmp_path):
    frame = vitals_frame()
    frame = frame[~((frame.patient == "p0") & (frame.channel == "spo2"))]
    sequences, _, _ = read(frame, tmp_path / "v.csv")
    spo2, spo2_observed = 2, 4 + 2  # value and indicator columns (channels sorted)
    assert np.all(sequences[0, :, spo2] == 0.0) and np.all(sequences[0, :, spo2_observed] == 0.0)
    assert np.all(sequences[1, 3:, spo2_observed] == 1.0)  # another patient's were read


# --- images -------------------------------------------------------------------------------


def test_images_use_a_fixed_window_so_adding_one_changes_no_other(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{s}_labels": np.zeros((2, 1), dtype=np.int64) for s in ("train", "val", "test")}
    arrays |= {
        f"{s}_images": rng.integers(0, 256, (2, 4, 4), dtype=np.uint8) for s in ("val", "test")
    }
    arrays["train_images"] = np.zeros((2, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", **arrays)
    before, _ = read_medmnist(tmp_path / "a.npz")
    arrays["test_images"] = np.concatenate(
        [arrays["test_images"], np.full((1, 4, 4), 255, np.uint8)]
    )
    arrays["test_labels"] = np.zeros((3, 1), dtype=np.int64)
    np.savez(tmp_path / "b.npz", **arrays)
    after, _ = read_medmnist(tmp_path / "b.npz")
    assert after[:-1].tobytes() == before.tobytes() and np.all(after[-1] == 1.0)
    assert np.all(before[:2] == 0.0)


def test_the_input_shape_does_not_depend_on_which_channels_the_patients_have(tmp_path):
    """Removing the only patient with a channel must not change every record's features."""
    base = vitals_frame()
    only_heart_rate = base[base["channel"] == "heart_rate"]
    full, _, _ = read(base, tmp_path / "full.csv")
    partial, _, _ = read(only_heart_rate, tmp_path / "partial.csv")
    assert full.shape == partial.shape
    assert partial[:, :, 0].tobytes() == full[:, :, 0].tobytes()

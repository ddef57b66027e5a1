"""Everything a reply carries is a DP release or declared (the report's table)."""

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, RecordDict

from medfed.client.client_app import answer
from medfed.client.hospital import HospitalSettings
from medfed.shared.config import RunConfig
from medfed.shared.data import load_federation
from medfed.shared.errors import DataError
from medfed.shared.hospital_report import RELEASED_FIELDS
from medfed.shared.instruction import instruction_record
from medfed.shared.models import build_model
from medfed.shared.protocol import ARRAYS, CONFIG, WITHHELD, state_to_arrays
from medfed.shared.secagg import SecureAggregationConfig

DECLARED = {(f.record, f.name) for f in RELEASED_FIELDS if f.release == "declared"}
REGISTERED = {(f.record, f.name) for f in RELEASED_FIELDS}


@pytest.fixture(scope="module")
def cleveland():
    return next(h for h in load_federation(RunConfig().data, 0) if h.name == "Cleveland")


def _train_message(run):
    config = dict(instruction_record(run, "run1"))
    config["server-round"] = 1
    weights = build_model(run.model, (13,), 2).state_dict()
    return RecordDict({ARRAYS: state_to_arrays(weights), CONFIG: ConfigRecord(config)})


def _values(content: RecordDict) -> dict[tuple[str, str], object]:
    """Every scalar a reply carries, keyed by (record, field); the update as one value."""
    values = {}
    records = [*content.config_records.items(), *content.metric_records.items()]
    for record_name, record in records:
        if record_name == "outcome":
            continue
        for key, value in record.items():
            values[(record_name, key)] = value
    for record_name, record in content.array_records.items():
        flat = np.concatenate([a.numpy().ravel() for a in record.values()])
        values[(record_name, "update")] = tuple(flat.tolist())
    return values


def _reply(data, tmp_path, name):
    run = RunConfig(rounds=3, training={"batch_size": 512, "class_weighted": True})
    plain = SecureAggregationConfig(enabled=False)
    storage = tmp_path / name
    settings = HospitalSettings(
        data.name, 5.0, storage / "l.jsonl", storage / "k", secure_aggregation=plain
    )
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    return answer("train", _train_message(run), context, lambda _: (data, settings))


def test_no_undeclared_value_is_identical_across_rounds_with_different_secret_noise(
    cleveland, tmp_path
):
    first, second = _reply(cleveland, tmp_path, "a"), _reply(cleveland, tmp_path, "b")
    assert first.config_records["outcome"]["status"] == "ok"
    one, two = _values(first), _values(second)
    for values in (one, two):  # a noisy rate whose denominator fell below one record is left out
        assert set(values) <= REGISTERED, set(values) - REGISTERED
    # A rate the noise pushed to a bound of its range (0 or 1) is equal by clipping, not by data.
    common = set(one) & set(two)
    identical = {key for key in common if one[key] == two[key] and one[key] not in (0.0, 1.0)}
    assert identical <= DECLARED, identical - DECLARED
    assert ("arrays", "update") in one and ("training", "num_examples") in one
    assert ("evaluation", "accuracy") in one


def test_a_data_error_leaves_the_hospital_as_its_code_and_a_fixed_text(tmp_path, caplog):
    def broken(_context):
        raise DataError("/srv/vitals.csv: patient 'MRN-0042' has more than one value in 'label'")

    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    run = RunConfig(rounds=1)
    reply = answer("train", _train_message(run), context, broken)
    outcome = reply.config_records["outcome"]
    assert outcome["code"] == DataError.code and outcome["message"] == WITHHELD
    assert "MRN-0042" not in str(dict(outcome)) and "MRN-0042" in caplog.text  # kept locally

"""A round re-sent after a coordinator resume gets the released update again, at no privacy cost."""

import pytest
import torch
from flwr.app import ConfigRecord, Context, RecordDict

from medfed.client.client_app import answer
from medfed.client.hospital import HospitalSettings
from medfed.shared.config import RunConfig
from medfed.shared.data import load_federation
from medfed.shared.instruction import instruction_record
from medfed.shared.models import build_model
from medfed.shared.privacy.verify import verify_ledger
from medfed.shared.protocol import ARRAYS, CONFIG, arrays_to_state, state_to_arrays
from medfed.shared.secagg import SecureAggregationConfig

RUN = RunConfig(rounds=3)
PLAIN = SecureAggregationConfig(enabled=False)


def _plain(tmp_path):
    """A hospital that releases plain updates: its own secure aggregation is off."""
    return HospitalSettings(
        "Hungary", 3.0, tmp_path / "Hungary.jsonl", tmp_path / "keys", secure_aggregation=PLAIN
    )


@pytest.fixture(scope="module")
def hungary():
    return next(h for h in load_federation(RUN.data, 0) if h.name == "Hungary")


def _train(hungary, settings, weights, server_round=1):
    config = dict(instruction_record(RUN, "run1"))
    config["server-round"] = server_round
    content = RecordDict({ARRAYS: state_to_arrays(weights), CONFIG: ConfigRecord(config)})
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    reply = answer("train", content, context, lambda _context: (hungary, settings))
    training = dict(reply.config_records["training"])
    return arrays_to_state(reply.array_records[ARRAYS]), training


def test_identical_request_is_answered_from_memory_without_a_ledger_entry(hungary, tmp_path):
    settings = _plain(tmp_path)
    weights = build_model(RUN.model, (13,), 2).state_dict()
    first, first_metrics = _train(hungary, settings, weights)
    entries = verify_ledger(settings.ledger_path).entries
    again, again_metrics = _train(hungary, settings, weights)  # the resumed coordinator's copy
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert again_metrics["epsilon"] == first_metrics["epsilon"]
    assert verify_ledger(settings.ledger_path).entries == entries


def test_a_different_global_model_or_round_is_trained_and_counted(hungary, tmp_path):
    settings = _plain(tmp_path)
    weights = build_model(RUN.model, (13,), 2).state_dict()
    _train(hungary, settings, weights)
    entries = verify_ledger(settings.ledger_path).entries
    moved = {k: v + 0.01 for k, v in weights.items()}
    _train(hungary, settings, moved)
    _train(hungary, settings, moved, server_round=2)
    # Each fresh round: one evaluation of the received model and one training entry.
    assert verify_ledger(settings.ledger_path).entries == entries + 4


def test_a_torn_memory_file_means_training_afresh(hungary, tmp_path):
    settings = _plain(tmp_path)
    weights = build_model(RUN.model, (13,), 2).state_dict()
    _train(hungary, settings, weights)
    entries = verify_ledger(settings.ledger_path).entries
    memory = tmp_path / "Hungary.rounds" / "run1.pt"
    memory.write_bytes(memory.read_bytes()[:40])
    _train(hungary, settings, weights)
    assert verify_ledger(settings.ledger_path).entries == entries + 2

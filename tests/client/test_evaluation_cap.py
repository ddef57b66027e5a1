"""A coordinator that sends hundreds of chosen models for evaluation learns almost nothing."""

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, Context, RecordDict

from medfed.client.client_app import answer
from medfed.client.hospital import HospitalSettings
from medfed.shared.config import RunConfig
from medfed.shared.data import load_federation
from medfed.shared.errors import EvaluationBudgetExceeded
from medfed.shared.hospital_report import EvaluationReport
from medfed.shared.instruction import instruction_record
from medfed.shared.models import build_model
from medfed.shared.privacy.verify import ledger_epsilon
from medfed.shared.protocol import ARRAYS, CONFIG, EVALUATION, state_to_arrays

MODELS = 300


@pytest.fixture(scope="module")
def hungary():
    return next(h for h in load_federation(RunConfig().data, 0) if h.name == "Hungary")


def _threshold_model(run, feature: int, threshold: float) -> dict[str, torch.Tensor]:
    """A logistic model predicting class 1 exactly when feature > threshold (the oracle)."""
    state = build_model(run.model, (13,), 2).state_dict()
    weight, bias = torch.zeros_like(state["1.weight"]), torch.zeros_like(state["1.bias"])
    weight[1, feature], bias[1] = 50.0, -50.0 * threshold
    return {"1.weight": weight, "1.bias": bias}


def test_three_hundred_chosen_models_get_at_most_the_hospitals_cap(hungary, tmp_path):
    run = RunConfig(rounds=1)
    settings = HospitalSettings("Hungary", 5.0, tmp_path / "H.jsonl", tmp_path / "keys")
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    config = dict(instruction_record(run, "probe")) | {"server-round": 1}
    answered, refused, accuracies = 0, 0, []
    for index, threshold in enumerate(np.linspace(-1, 1, MODELS)):
        config["run-id"] = f"probe{index}"  # a fresh run id per probe resets nothing
        weights = _threshold_model(run, 0, float(threshold))
        content = RecordDict({ARRAYS: state_to_arrays(weights), CONFIG: ConfigRecord(config)})
        reply = answer("evaluate", content, context, lambda _: (hungary, settings))
        outcome = reply.config_records["outcome"]
        if outcome["status"] == "ok":
            answered += 1
            report = EvaluationReport.from_record(reply.config_records[EVALUATION])
            feature = hungary.x_test[:, 0]
            exact = float(((feature > threshold) == hungary.y_test.astype(bool)).mean())
            accuracies.append((report.accuracy, exact))
        else:
            assert outcome["code"] == EvaluationBudgetExceeded.code
            refused += 1
    assert answered == settings.max_evaluations and refused == MODELS - answered
    test_epsilon = ledger_epsilon(settings.ledger_path, stream="test")
    assert test_epsilon <= settings.max_evaluation_epsilon + 1e-9
    # The answers are noisy: almost none equals the exact accuracy of its threshold model.
    assert sum(abs(released - exact) < 1e-9 for released, exact in accuracies) <= 2

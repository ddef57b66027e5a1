"""A coordinator's model that overflows for chosen records cannot break the clipping bound."""

import numpy as np
import pytest
import torch

from medfed.client.hospital import HospitalSettings, train_round
from medfed.shared.config import RunConfig
from medfed.shared.data import load_federation
from medfed.shared.instruction import RoundInstruction, instruction_record
from medfed.shared.models import build_model


@pytest.fixture(scope="module")
def hungary():
    return next(h for h in load_federation(RunConfig().data, 0) if h.name == "Hungary")


def _overflowing(run, feature: int, threshold: float) -> dict[str, torch.Tensor]:
    """float32 logits overflow to +inf exactly for records whose `feature` ≥ `threshold`."""
    state = build_model(run.model, (13,), 2).state_dict()
    weight, bias = torch.zeros_like(state["1.weight"]), torch.zeros_like(state["1.bias"])
    weight[1, feature] = 3e38
    bias[1] = float(torch.finfo(torch.float32).max) - 3e38 * threshold + 1e37
    return {"1.weight": weight, "1.bias": bias}


def test_an_overflowing_model_yields_a_finite_update_every_time(hungary, tmp_path):
    """Before the fix a record at the top of the feature's range made about half the updates
    NaN and none without it: a membership signal with no ε bound."""
    run = RunConfig(rounds=1, training={"batch_size": 512})
    top = float(np.max(hungary.x_train[:, 3]))
    weights = _overflowing(run, 3, top)
    logits = torch.from_numpy(hungary.x_train) @ weights["1.weight"].T + weights["1.bias"]
    overflowing = int((~torch.isfinite(logits)).any(dim=1).sum())
    assert 0 < overflowing < len(logits)  # the attack singles out some records
    record = dict(instruction_record(run, "probe")) | {"server-round": 1}
    for attempt in range(6):
        settings = HospitalSettings(
            "Hungary", 5.0, tmp_path / f"{attempt}.jsonl", tmp_path / f"k{attempt}"
        )
        result = train_round(hungary, settings, RoundInstruction.model_validate(record), weights)
        assert all(torch.isfinite(v).all() for v in result.state_dict.values())

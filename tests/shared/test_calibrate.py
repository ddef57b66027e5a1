"""Noise calibration: few accountant evaluations, never a σ over the budget.

Golden values: Opacus's own accountants (called here directly) and the bisection medfed used
before the calibrator (copied below as it was), not the calibrator's own output.
"""

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant

from medfed.client.hospital import train_round
from medfed.shared.config import load_config
from medfed.shared.data import load_federation
from medfed.shared.instruction import RoundInstruction, instruction_record
from medfed.shared.models import build_model
from medfed.shared.privacy.accounting import RDP_ORDERS, epsilon_of
from medfed.shared.privacy.calibrate import NoiseCalibrator
from medfed.simulations.hospitals import SimulatedHospitals, settings_for

COUNT = (10.0, 1.0, 1)  # a hospital's label-count release: σ 10, one full-batch step


def opacus_epsilon(history, delta, accountant):
    if accountant == "rdp":
        rdp = RDPAccountant()
        rdp.history = list(history)
        return rdp.get_epsilon(delta=delta, alphas=RDP_ORDERS)
    prv = PRVAccountant()
    prv.history = list(history)
    return prv.get_epsilon(delta=delta)


def bisection(history, target, delta, rate, steps, accountant, largest, tolerance=0.005):
    """medfed's calibration before the calibrator (shared/privacy/accounting.py, 2026-11)."""

    def total(sigma):
        return epsilon_of([*history, (sigma, rate, steps)], delta, accountant)

    if total(largest) > target:
        return None
    low, high, probe = 0.0, largest, 1.0
    while probe < high and total(probe) <= target:
        high, probe = probe, probe / 2
        if probe < 0.05:
            break
    low = probe if probe < high else low
    for _ in range(60):
        mid = (low + high) / 2
        if total(mid) <= target:
            high = mid
            if target - total(mid) <= tolerance:
                break
        else:
            low = mid
    return high


class Counted:
    """The accountant, counting its evaluations."""

    def __init__(self):
        self.calls = 0

    def __call__(self, history, delta, accountant):
        self.calls += 1
        return epsilon_of(history, delta, accountant)


@pytest.mark.parametrize(
    ("history", "target", "rate", "steps", "accountant"),
    [
        ([], 3.0, 1.0, 30, "rdp"),  # the evaluation noise: 30 releases in ε 3
        ([COUNT], 1.0, 1.0, 5, "rdp"),  # the demo: full batch, 5 rounds
        ([COUNT], 3.0, 0.97, 6, "rdp"),  # a 66-image hospital at batch 64 (scale benchmark)
        # Opacus's series at rates below 1 (and PRV) take seconds per evaluation here.
        pytest.param([COUNT], 3.0, 0.25, 40, "rdp", marks=pytest.mark.slow),
        pytest.param([COUNT, (2.0, 0.1, 50)], 8.0, 0.05, 500, "rdp", marks=pytest.mark.slow),
        pytest.param([COUNT], 1.0, 0.5, 10, "prv", marks=pytest.mark.slow),
    ],
)
def test_sigma_keeps_opacus_epsilon_under_the_target_and_matches_the_old_bisection(
    history, target, rate, steps, accountant
):
    counted = Counted()
    sigma = NoiseCalibrator(counted).noise_for(history, target, 1e-5, rate, steps, accountant, 20.0)
    golden = bisection(history, target, 1e-5, rate, steps, accountant, 20.0)
    epsilon = opacus_epsilon([*history, (sigma, rate, steps)], 1e-5, accountant)
    assert target - 0.005 <= epsilon <= target  # within the old tolerance, never over
    assert sigma == pytest.approx(golden, rel=0.01)
    assert counted.calls <= 5


def test_unreachable_target_returns_none_after_checking_the_largest_noise():
    counted = Counted()
    calibrator = NoiseCalibrator(counted)
    assert calibrator.noise_for([COUNT], 0.3, 1e-5, 1.0, 5, "rdp", 20.0) is None  # count: 0.375
    assert opacus_epsilon([COUNT, (20.0, 1.0, 5)], 1e-5, "rdp") > 0.3
    assert counted.calls <= 3


def test_a_repeated_question_is_answered_from_the_cache_without_evaluating():
    counted = Counted()
    calibrator = NoiseCalibrator(counted)
    first = calibrator.noise_for([COUNT], 1.0, 1e-5, 1.0, 5, "rdp", 20.0)
    before = counted.calls
    assert calibrator.noise_for([COUNT], 1.0, 1e-5, 1.0, 5, "rdp", 20.0) == first
    assert counted.calls == before == calibrator.evaluations
    calibrator.noise_for([COUNT], 1.0, 1e-5, 1.0, 4, "rdp", 20.0)  # one input differs: a search
    assert counted.calls > before


def test_a_previous_sigma_that_still_fits_costs_one_evaluation_and_one_that_does_not_restarts():
    counted = Counted()
    calibrator = NoiseCalibrator(counted)
    assert calibrator.noise_for([COUNT], 1.0, 1e-5, 1.0, 4, "rdp", 20.0, keep=12.0) == 12.0
    assert counted.calls == 1
    sigma = calibrator.noise_for([COUNT], 1.0, 1e-5, 1.0, 4, "rdp", 20.0, keep=3.0)  # too little
    assert 0.995 <= opacus_epsilon([COUNT, (sigma, 1.0, 4)], 1e-5, "rdp") <= 1.0
    assert counted.calls <= 1 + 5


def test_state_dict_round_trip_rechecks_every_answer_and_drops_one_over_budget():
    calibrator = NoiseCalibrator()
    calibrator.noise_for([COUNT], 1.0, 1e-5, 1.0, 5, "rdp", 20.0)
    calibrator.noise_for([], 3.0, 1e-5, 1.0, 30, "rdp", 20.0)
    state = calibrator.state_dict()
    state["entries"][0]["sigma"] = 2.0  # a tampered file: σ 2 over 5 steps overshoots ε 1
    counted = Counted()
    restored = NoiseCalibrator.from_state_dict(state, counted)
    assert counted.calls == 2 and len(restored.cache) == 1
    assert restored.noise_for([], 3.0, 1e-5, 1.0, 30, "rdp", 20.0) == state["entries"][1]["sigma"]
    assert counted.calls == 2  # answered from the restored cache


def test_a_simulated_hospital_calibrates_in_at_most_five_evaluations_then_two_a_round(tmp_path):
    """The demo federation through `train_round`, with the simulation's per-worker calibrator
    (its evaluation noise found once when the loader is built)."""
    overrides = ["data.partition='iid'", "rounds=3"]
    run = load_config("configs/breast_cancer.toml", overrides, environ={})
    counted = Counted()
    loader = SimulatedHospitals(run, tmp_path / "ledgers", tmp_path / "data")
    loader.calibrator.epsilon = counted
    for hospital in load_federation(run.data, 0):
        settings = settings_for(run, hospital.name, tmp_path / "ledgers", loader.calibrator)
        weights = build_model(run.model, hospital.input_shape, 2).state_dict()
        for server_round in range(1, run.rounds + 1):
            record = dict(instruction_record(run, "run")) | {"server-round": server_round}
            counted.calls = 0
            result = train_round(
                hospital, settings, RoundInstruction.model_validate(record), weights
            )
            assert counted.calls <= (5 if server_round == 1 else 2), (hospital.name, server_round)
        with settings.locked_ledger(hospital.fingerprint) as ledger:
            spent = opacus_epsilon(ledger.history("train"), run.privacy.delta, "rdp")
        assert result.training.epsilon == pytest.approx(spent, abs=1e-9) and spent <= 1.0

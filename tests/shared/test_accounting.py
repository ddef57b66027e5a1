"""Golden values: ε from Opacus's own accountants, built independently in the test."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants import PRVAccountant, RDPAccountant

from medfed.shared.errors import ConfigError
from medfed.shared.privacy.accounting import RDP_ORDERS, epsilon_of
from medfed.shared.privacy.calibrate import calibrate_noise

HISTORIES = [
    [(1.1, 0.01, 1000)],
    [(5.0, 1 / 7, 70)],
    [(0.8, 0.05, 100), (1.5, 0.02, 300), (3.0, 0.25, 12)],
]


def _opacus_rdp(history, delta):
    accountant = RDPAccountant()
    for sigma, q, steps in history:
        for _ in range(steps):
            accountant.step(noise_multiplier=sigma, sample_rate=q)
    return accountant.get_epsilon(delta=delta, alphas=RDP_ORDERS)


def _opacus_prv(history, delta):
    accountant = PRVAccountant()
    for sigma, q, steps in history:
        for _ in range(steps):
            accountant.step(noise_multiplier=sigma, sample_rate=q)
    return accountant.get_epsilon(delta=delta)


@pytest.mark.parametrize("history", HISTORIES)
@pytest.mark.parametrize("delta", [1e-5, 1e-6])
def test_rdp_epsilon_matches_opacus_step_by_step(history, delta):
    assert epsilon_of(history, delta, "rdp") == pytest.approx(_opacus_rdp(history, delta), abs=1e-6)


@pytest.mark.parametrize("history", HISTORIES[:2])
def test_prv_epsilon_matches_opacus_step_by_step(history):
    assert epsilon_of(history, 1e-5, "prv") == pytest.approx(_opacus_prv(history, 1e-5), abs=1e-6)


def test_no_steps_spend_nothing():
    assert epsilon_of([], 1e-5, "rdp") == 0.0


def test_gdp_is_not_offered():
    with pytest.raises(ConfigError, match="use rdp or prv"):
        epsilon_of([(1.0, 0.1, 10)], 1e-5, "gdp")


@settings(max_examples=15, deadline=None)
@given(
    st.floats(0.3, 4.0),
    st.floats(0.01, 1.0),
    st.integers(1, 200),
    st.lists(st.tuples(st.floats(0.8, 5), st.floats(0.01, 0.5), st.integers(1, 50)), max_size=2),
)
def test_calibrated_noise_never_exceeds_the_target(target, q, steps, history):
    spent = epsilon_of(history, 1e-5, "rdp")
    sigma = calibrate_noise(history, target, 1e-5, q, steps, "rdp", max_noise_multiplier=50.0)
    if sigma is None:
        assert epsilon_of([*history, (50.0, q, steps)], 1e-5, "rdp") > target
    else:
        total = epsilon_of([*history, (sigma, q, steps)], 1e-5, "rdp")
        assert spent <= total <= target


def test_calibration_is_tight():
    sigma = calibrate_noise([], 1.0, 1e-5, 0.1, 100, "rdp", 50.0)
    assert 0.99 <= epsilon_of([(sigma, 0.1, 100)], 1e-5, "rdp") <= 1.0

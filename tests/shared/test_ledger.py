"""The signed, hash-chained privacy ledger: tamper evidence and ε from the entries alone."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opacus.accountants import RDPAccountant

from medfed.shared.crypto.signing import load_or_create_signing_key
from medfed.shared.errors import LedgerError
from medfed.shared.privacy.accounting import RDP_ORDERS
from medfed.shared.privacy.ledger import PrivacyLedger, entry_hash
from medfed.shared.privacy.verify import ledger_epsilon, trusted_key_for, verify_ledger

ROUNDS = [(1.2, 0.1, 30), (1.2, 0.1, 30), (2.5, 0.25, 8), (0.9, 0.05, 100)]


def _fill(tmp_path, rounds=ROUNDS):
    path = tmp_path / "Cleveland.jsonl"
    key = load_or_create_signing_key(tmp_path / "keys", "Cleveland")
    ledger = PrivacyLedger.open(path, key, "Cleveland", "f" * 64)
    for number, (sigma, q, steps) in enumerate(rounds, start=1):
        ledger.append_round(
            run_id="run-a" if number < 3 else "run-b",
            round=number,
            dataset_fingerprint="f" * 64,
            noise_multiplier=sigma,
            sample_rate=q,
            steps=steps,
            max_grad_norm=1.0,
            delta=1e-5,
            accountant="rdp",
        )
    return path


def _lines(path):
    return path.read_text().splitlines()


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")


def test_epsilon_recomputed_from_entries_matches_opacus(tmp_path):
    path = _fill(tmp_path)
    accountant = RDPAccountant()
    for sigma, q, steps in ROUNDS:
        for _ in range(steps):
            accountant.step(noise_multiplier=sigma, sample_rate=q)
    expected = accountant.get_epsilon(delta=1e-5, alphas=RDP_ORDERS)
    assert ledger_epsilon(path) == pytest.approx(expected, abs=1e-6)
    assert json.loads(_lines(path)[-1])["epsilon_after"] == pytest.approx(expected, abs=1e-6)


def test_untouched_ledger_verifies_against_the_trusted_key(tmp_path):
    path = _fill(tmp_path)
    verdict = verify_ledger(path, trusted_key_for(path))
    assert verdict.valid and verdict.entries == 1 + len(ROUNDS) and verdict.hospital == "Cleveland"


def test_private_key_is_owner_only(tmp_path):
    _fill(tmp_path)
    assert (tmp_path / "keys" / "Cleveland.ed25519").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "field, value",
    [
        ("noise_multiplier", 5.0),
        ("steps", 1),
        ("sample_rate", 0.01),
        ("epsilon_after", 0.1),
        ("delta", 1e-3),
        ("run_id", "other"),
        ("dataset_fingerprint", "0" * 64),
        ("time", 0.0),
    ],
)
def test_editing_any_field_is_detected_at_its_line(tmp_path, field, value):
    path = _fill(tmp_path)
    lines = _lines(path)
    entry = json.loads(lines[2])
    entry[field] = value
    lines[2] = json.dumps(entry)
    _write(path, lines)
    verdict = verify_ledger(path, trusted_key_for(path))
    assert not verdict.valid and verdict.bad_line == 3


def test_edit_with_recomputed_hash_still_fails_the_signature(tmp_path):
    path = _fill(tmp_path)
    lines = _lines(path)
    entry = json.loads(lines[-1])
    entry["steps"] = 1
    entry["hash"] = entry_hash(entry)
    lines[-1] = json.dumps(entry)
    _write(path, lines)
    verdict = verify_ledger(path)
    assert not verdict.valid and "signature" in verdict.reason


def test_deleting_a_middle_entry_is_detected(tmp_path):
    path = _fill(tmp_path)
    lines = _lines(path)
    _write(path, lines[:2] + lines[3:])
    verdict = verify_ledger(path)
    assert not verdict.valid and verdict.bad_line == 3


def test_swapping_two_entries_is_detected(tmp_path):
    path = _fill(tmp_path)
    lines = _lines(path)
    lines[2], lines[3] = lines[3], lines[2]
    _write(path, lines)
    verdict = verify_ledger(path)
    assert not verdict.valid and verdict.bad_line == 3


def test_truncated_line_is_reported_with_its_number(tmp_path):
    path = _fill(tmp_path)
    text = path.read_text()
    path.write_text(text[: len(text) - 40])
    verdict = verify_ledger(path)
    assert not verdict.valid and verdict.bad_line == 1 + len(ROUNDS)


def test_resigning_everything_with_another_key_is_detected(tmp_path):
    path = _fill(tmp_path)
    forged_dir = tmp_path / "forged"
    forged_dir.mkdir()
    forger = load_or_create_signing_key(forged_dir / "keys", "Cleveland")
    forged = PrivacyLedger.open(forged_dir / "Cleveland.jsonl", forger, "Cleveland", "f" * 64)
    for entry in [json.loads(line) for line in _lines(path)][1:]:
        fields = {
            k: entry[k]
            for k in entry
            if k not in {"seq", "time", "type", "prev_hash", "hash", "signature", "epsilon_after"}
        }
        forged.append_round(**{**fields, "steps": 1})  # a smaller spend, re-signed
    _write(path, _lines(forged_dir / "Cleveland.jsonl"))
    assert verify_ledger(path).valid  # self-consistent…
    verdict = verify_ledger(path, trusted_key_for(path))  # …but not the hospital's key
    assert not verdict.valid and verdict.bad_line == 1 and "re-signed" in verdict.reason


def test_opening_a_tampered_ledger_refuses(tmp_path):
    path = _fill(tmp_path)
    lines = _lines(path)
    _write(path, lines[:2] + lines[3:])
    key = load_or_create_signing_key(tmp_path / "keys", "Cleveland")
    with pytest.raises(LedgerError, match="line 3"):
        PrivacyLedger.open(path, key, "Cleveland", "f" * 64)


def test_reopening_continues_the_chain(tmp_path):
    path = _fill(tmp_path, ROUNDS[:2])
    key = load_or_create_signing_key(tmp_path / "keys", "Cleveland")
    ledger = PrivacyLedger.open(path, key, "Cleveland", "f" * 64)
    assert ledger.epsilon_before_run("run-b", 1e-5, "rdp") == pytest.approx(ledger_epsilon(path))
    ledger.append_round(
        run_id="run-b",
        round=1,
        dataset_fingerprint="f" * 64,
        noise_multiplier=1.0,
        sample_rate=0.1,
        steps=10,
        max_grad_norm=1.0,
        delta=1e-5,
        accountant="rdp",
    )
    assert verify_ledger(path, trusted_key_for(path)).valid and len(_lines(path)) == 4


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(
        st.tuples(st.integers(1, 4), st.sampled_from([8, 32, 256]), st.floats(0.2, 1.5)),
        min_size=1,
        max_size=4,
    ),
    max_epsilon=st.floats(0.3, 3.0),
)
def test_rounds_restarts_and_new_runs_never_exceed_max_epsilon(tmp_path_factory, plan, max_epsilon):
    """Any sequence of runs (each its own rounds, batch, target) stays within max_epsilon.
    Every round re-opens the ledger from disk, exactly as a restarted hospital process does."""
    from medfed.client.hospital import HospitalSettings, train_round
    from medfed.shared.config import RunConfig
    from medfed.shared.data import load_federation
    from medfed.shared.errors import PrivacyBudgetExceeded
    from medfed.shared.instruction import RoundInstruction, instruction_record
    from medfed.shared.models import build_model

    directory = tmp_path_factory.mktemp("prop")
    hospital = load_federation(RunConfig().data, 0)[2]  # Switzerland: 30 patients, fast
    settings_ = HospitalSettings(
        hospital.name, max_epsilon, directory / "h.jsonl", directory / "keys"
    )
    for run_number, (rounds, batch, target) in enumerate(plan):
        run = RunConfig(rounds=rounds)
        run.training.batch_size = batch
        run.privacy.target_epsilon = target
        weights = build_model(run.model, hospital.input_shape, 2).state_dict()
        for server_round in range(1, rounds + 1):
            record = dict(instruction_record(run, f"run{run_number}"))
            record["server-round"] = server_round
            try:
                weights = train_round(
                    hospital, settings_, RoundInstruction.model_validate(record), weights
                ).state_dict
            except PrivacyBudgetExceeded:
                break
            assert verify_ledger(settings_.ledger_path).valid
            assert ledger_epsilon(settings_.ledger_path) <= max_epsilon
    if settings_.ledger_path.exists():
        assert ledger_epsilon(settings_.ledger_path) <= max_epsilon


def test_epsilon_so_far_reuses_the_signed_value_only_at_the_same_delta(tmp_path):
    path = _fill(tmp_path)
    key = load_or_create_signing_key(tmp_path / "keys", "Cleveland")
    ledger = PrivacyLedger.open(path, key, "Cleveland", "f" * 64)

    def opacus(history, delta):
        accountant = RDPAccountant()
        accountant.history = list(history)
        return accountant.get_epsilon(delta=delta, alphas=RDP_ORDERS)

    assert ledger.epsilon_before_run("run-b", 1e-5, "rdp") == pytest.approx(
        opacus(ROUNDS[:2], 1e-5), abs=1e-9
    )
    assert ledger.epsilon_of_first(len(ledger.entries), 1e-5, "rdp") == pytest.approx(
        opacus(ROUNDS, 1e-5), abs=1e-9
    )
    # Recorded at δ = 1e-5: a question at another δ is recomputed, not answered from the entry.
    assert ledger.epsilon_of_first(len(ledger.entries), 1e-3, "rdp") == pytest.approx(
        opacus(ROUNDS, 1e-3), abs=1e-9
    )
    assert ledger.epsilon_of_first(1, 1e-5, "rdp") == 0.0  # the header alone

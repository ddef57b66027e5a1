"""The signed, hash-chained privacy ledger: tamper evidence and ε per stream from the entries
alone (rollback, emptied files and concurrent processes: test_ledger_rollback.py)."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opacus.accountants import RDPAccountant

from medfed.shared.crypto.signing import load_or_create_signing_key, sign
from medfed.shared.errors import LedgerError
from medfed.shared.privacy.accounting import RDP_ORDERS
from medfed.shared.privacy.chain import entry_hash
from medfed.shared.privacy.ledger import LedgerPlan, PrivacyLedger
from medfed.shared.privacy.verify import ledger_epsilon, trusted_key_for, verify_ledger

ROUNDS = [(1.2, 0.1, 30), (1.2, 0.1, 30), (2.5, 0.25, 8), (0.9, 0.05, 100)]
FINGERPRINT = "f" * 64


def _locked(directory, name="Cleveland"):
    """The ledger under its lock; its head file lives apart from the ledger, in `heads/`."""
    return PrivacyLedger.locked(
        directory / f"{name}.jsonl",
        directory / "keys",
        directory / "heads" / f"{name}.head.json",
        name,
        FINGERPRINT,
    )


def _plan(sigma, q, steps, run_id="run-a", number=1, kind="round", delta=1e-5, released=()):
    return LedgerPlan(
        type=kind,
        run_id=run_id,
        round=number,
        dataset_fingerprint=FINGERPRINT,
        noise_multiplier=sigma,
        sample_rate=q,
        steps=steps,
        max_grad_norm=1.0,
        delta=delta,
        accountant="rdp",
        released=released,
    )


def _fill(tmp_path, rounds=ROUNDS):
    with _locked(tmp_path) as ledger:
        for number, (sigma, q, steps) in enumerate(rounds, start=1):
            ledger.commit(_plan(sigma, q, steps, "run-a" if number < 3 else "run-b", number))
    return tmp_path / "Cleveland.jsonl"


def _opacus(history, delta=1e-5):
    """Golden ε: Opacus's RDP accountant holding `history`, at our (wider) RDP orders."""
    accountant = RDPAccountant()
    accountant.history = list(history)
    return accountant.get_epsilon(delta=delta, alphas=RDP_ORDERS) if history else 0.0


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
    with _locked(forged_dir) as forged:
        for entry in [json.loads(line) for line in _lines(path)][1:]:
            forged.commit(_plan(entry["noise_multiplier"], entry["sample_rate"], 1))  # less spent
    _write(path, _lines(forged_dir / "Cleveland.jsonl"))
    assert verify_ledger(path).valid  # self-consistent…
    verdict = verify_ledger(path, trusted_key_for(path))  # …but not the hospital's key
    assert not verdict.valid and verdict.bad_line == 1 and "re-signed" in verdict.reason


def test_opening_a_tampered_ledger_refuses(tmp_path):
    path = _fill(tmp_path)
    lines = _lines(path)
    _write(path, lines[:2] + lines[3:])
    with pytest.raises(LedgerError, match="line 3"), _locked(tmp_path):
        pass


def test_reopening_continues_the_chain(tmp_path):
    path = _fill(tmp_path, ROUNDS[:2])
    with _locked(tmp_path) as ledger:
        assert ledger.epsilon_before_run("run-b", 1e-5, "rdp") == pytest.approx(
            ledger_epsilon(path)
        )
        ledger.commit(_plan(1.0, 0.1, 10, "run-b"))
    assert verify_ledger(path, trusted_key_for(path)).valid and len(_lines(path)) == 4


def test_commit_outside_the_lock_is_refused(tmp_path):
    with _locked(tmp_path) as ledger:
        pass
    with pytest.raises(RuntimeError, match="outside PrivacyLedger.locked"):
        ledger.commit(_plan(1.0, 0.1, 10))
    assert len(_lines(tmp_path / "Cleveland.jsonl")) == 1


def test_each_stream_composes_only_its_own_entries_as_opacus_does(tmp_path):
    """Rounds and the label-count release spend the training split's budget; evaluation
    releases the test split's. A release is one Gaussian step at rate 1: (σ, 1.0, 1)."""
    releases = [
        ("count", (30.0, 1.0, 1)),
        ("round", (1.2, 0.1, 30)),
        ("evaluation", (8.0, 1.0, 1)),
        ("round", (1.2, 0.1, 30)),
        ("evaluation", (8.0, 1.0, 1)),
    ]
    train, test = [], []
    with _locked(tmp_path) as ledger:
        for kind, (sigma, q, steps) in releases:
            released = (12.4, 17.9) if kind == "count" else ()
            entry = ledger.commit(_plan(sigma, q, steps, kind=kind, released=released))
            stream = train if kind in ("round", "count") else test
            stream.append((sigma, q, steps))
            assert entry["stream"] == ("train" if stream is train else "test")
            assert entry["epsilon_after"] == pytest.approx(_opacus(stream), abs=1e-9)
        assert ledger.epsilon("train", 1e-5, "rdp") == pytest.approx(_opacus(train), abs=1e-9)
        assert ledger.epsilon("test", 1e-3, "rdp") == pytest.approx(_opacus(test, 1e-3), abs=1e-9)
        assert ledger.history("test") == test and ledger.count("evaluation") == 2
        assert ledger.latest("count", FINGERPRINT)["released"] == [12.4, 17.9]
        assert ledger.latest("count", "0" * 64) is None
        assert [e["round"] for e in ledger.rounds_of_run("run-a")] == [1, 1]
    path = tmp_path / "Cleveland.jsonl"
    assert verify_ledger(path, trusted_key_for(path)).valid
    assert ledger_epsilon(path) == pytest.approx(_opacus(train), abs=1e-9)
    assert ledger_epsilon(path, stream="test") == pytest.approx(_opacus(test), abs=1e-9)


def _resign(tmp_path, line, **changes):
    """Rewrite entry `line` (0-based) with `changes`, validly hashed and signed by the
    hospital's own key: only the entry's meaning can be wrong."""
    path = tmp_path / "Cleveland.jsonl"
    key = load_or_create_signing_key(tmp_path / "keys", "Cleveland")
    lines = _lines(path)
    entry = json.loads(lines[line]) | changes
    entry = {k: v for k, v in entry.items() if v is not None}  # None: remove the field
    entry["hash"] = entry_hash(entry)
    entry["signature"] = sign(key, entry["hash"].encode())
    _write(path, [*lines[:line], json.dumps(entry)])
    return verify_ledger(path, trusted_key_for(path))


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"stream": "test"}, "stream"),
        ({"type": "gift"}, "not a mechanism entry"),
        ({"steps": 2.5}, "malformed steps"),
        ({"noise_multiplier": "high"}, "malformed noise_multiplier"),
    ],
)
def test_a_signed_entry_with_a_wrong_stream_type_or_field_fails_verification(
    tmp_path, changes, reason
):
    _fill(tmp_path, ROUNDS[:2])
    verdict = _resign(tmp_path, 2, **changes)
    assert not verdict.valid and verdict.bad_line == 3 and reason in verdict.reason


def test_a_count_entry_records_what_it_released(tmp_path):
    with _locked(tmp_path) as ledger, pytest.raises(ValueError, match="released"):
        ledger.commit(_plan(30.0, 1.0, 1, kind="count"))
    with _locked(tmp_path) as ledger:
        ledger.commit(_plan(30.0, 1.0, 1, kind="count", released=(3.2, 9.1)))
    verdict = _resign(tmp_path, 1, released=None)
    assert not verdict.valid and "count entry missing released" in verdict.reason


OPERATOR_MOVES = [None, None, "truncate", "empty", "delete", "restore_old"]


def _operator_move(path, move, oldest):
    """Damage the ledger as an operator might; True when the file changed (must be refused)."""
    before = path.read_bytes()
    if move == "truncate":
        path.write_bytes(before.splitlines(keepends=True)[0])
    elif move == "empty":
        path.write_bytes(b"")
    elif move == "delete":
        path.unlink()
    elif move == "restore_old":
        path.write_bytes(oldest)
    return not path.exists() or path.read_bytes() != before


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
    moves=st.lists(st.sampled_from(OPERATOR_MOVES), min_size=16, max_size=16),
)
def test_rounds_restarts_and_new_runs_never_exceed_max_epsilon(
    tmp_path_factory, plan, max_epsilon, moves
):
    """Any sequence of runs (each its own rounds, batch, target) stays within max_epsilon.
    Every round re-opens the ledger from disk, exactly as a restarted hospital process does.
    Before a round the operator may truncate, empty or delete the ledger or restore its oldest
    copy: the hospital refuses to train (LedgerError) until the newest copy is put back."""
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
    path, oldest, move_of = settings_.ledger_path, None, iter(moves)
    for run_number, (rounds, batch, target) in enumerate(plan):
        run = RunConfig(rounds=rounds)
        run.training.batch_size = batch
        run.privacy.target_epsilon = target
        weights = build_model(run.model, hospital.input_shape, 2).state_dict()
        for server_round in range(1, rounds + 1):
            record = dict(instruction_record(run, f"run{run_number}"))
            record["server-round"] = server_round
            instruction = RoundInstruction.model_validate(record)
            newest = path.read_bytes() if path.exists() else None
            if newest is not None and _operator_move(path, next(move_of, None), oldest or newest):
                with pytest.raises(LedgerError):
                    train_round(hospital, settings_, instruction, weights)
                path.write_bytes(newest)  # the fix the error names: restore the newest copy
                assert ledger_epsilon(path) <= max_epsilon
            try:
                weights = train_round(hospital, settings_, instruction, weights).state_dict
            except PrivacyBudgetExceeded:
                break
            oldest = oldest or path.read_bytes()
            assert verify_ledger(path).valid
            assert ledger_epsilon(path) <= max_epsilon
    if path.exists():
        assert ledger_epsilon(path) <= max_epsilon


def test_epsilon_so_far_reuses_the_signed_value_only_at_the_same_delta(tmp_path):
    _fill(tmp_path)
    with _locked(tmp_path) as ledger:
        pass
    assert ledger.epsilon_before_run("run-b", 1e-5, "rdp") == pytest.approx(
        _opacus(ROUNDS[:2]), abs=1e-9
    )
    assert ledger.epsilon_of_first(len(ledger.entries), 1e-5, "rdp") == pytest.approx(
        _opacus(ROUNDS), abs=1e-9
    )
    # Recorded at δ = 1e-5: a question at another δ is recomputed, not answered from the entry.
    assert ledger.epsilon_of_first(len(ledger.entries), 1e-3, "rdp") == pytest.approx(
        _opacus(ROUNDS, 1e-3), abs=1e-9
    )
    assert ledger.epsilon_of_first(1, 1e-5, "rdp") == 0.0  # the header alone
    assert ledger.epsilon_before_run("run-b", 1e-5, "rdp", stream="test") == 0.0


def _audit(*args):
    from typer.testing import CliRunner

    from medfed.simulations.cli import app

    result = CliRunner().invoke(app, ["audit", *args])
    return result.exit_code, result.output.strip()


def test_audit_epsilon_names_each_stream_once_there_are_evaluations(tmp_path):
    path = _fill(tmp_path, ROUNDS[:1])
    code, output = _audit("epsilon", str(path))
    assert code == 0 and float(output) == pytest.approx(_opacus(ROUNDS[:1]), abs=1e-6)
    with _locked(tmp_path) as ledger:
        ledger.commit(_plan(8.0, 1.0, 1, kind="evaluation"))
    code, output = _audit("epsilon", str(path))
    train, test = output.splitlines()
    assert code == 0 and train.startswith("train stream ε = ") and test.startswith("test stream")
    assert float(train.split()[4]) == pytest.approx(_opacus(ROUNDS[:1]), abs=1e-6)
    assert float(test.split()[4]) == pytest.approx(_opacus([(8.0, 1.0, 1)]), abs=1e-6)
    code, output = _audit("epsilon", str(path), "--stream", "test")
    assert code == 0 and float(output) == pytest.approx(_opacus([(8.0, 1.0, 1)]), abs=1e-6)
    code, output = _audit("verify", str(path))
    assert code == 0 and output.startswith("valid") and "test stream ε" in output
    _write(path, _lines(path)[:1] + _lines(path)[2:])
    code, output = _audit("verify", str(path))
    assert code == 1 and "line 2" in output

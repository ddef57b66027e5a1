"""The ledger cannot be rolled back: emptied, cut, deleted or older copies are refused, and
concurrent hospital processes are serialised. The budget survives the operator: refuse,
never re-spend. Golden ε values come from Opacus's RDP accountant directly."""

import json
import multiprocessing
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opacus.accountants import RDPAccountant

from medfed.shared.crypto.signing import load_or_create_signing_key, sign
from medfed.shared.errors import LedgerError
from medfed.shared.privacy.accounting import RDP_ORDERS
from medfed.shared.privacy.chain import GENESIS, entry_hash
from medfed.shared.privacy.ledger import LedgerPlan, PrivacyLedger, lock_path
from medfed.shared.privacy.verify import ledger_epsilon, trusted_key_for, verify_ledger
from medfed.shared.privacy.witness import write_head

FINGERPRINT = "f" * 64
DELTA = 1e-5
# Full-batch steps (q = 1) keep Opacus's accounting exact and fast.
SPEND = (4.0, 1.0, 2)
# A round entry as written before streams and head files (no `stream`, no header `format`).
LEGACY_ROUND = {
    "type": "round", "run_id": "old", "round": 1, "dataset_fingerprint": FINGERPRINT,
    "noise_multiplier": SPEND[0], "sample_rate": SPEND[1], "steps": SPEND[2],
    "max_grad_norm": 1.0, "delta": DELTA, "accountant": "rdp",
}  # fmt: skip


class Files:
    """One hospital's ledger, key and head file; the head file lies apart from the ledger."""

    def __init__(self, root):
        self.root = root
        self.ledger = root / "ledgers" / "H.jsonl"
        self.keys = root / "keys"
        self.key = self.keys / "H.ed25519"
        self.head = root / "heads" / "H.head.json"

    def locked(self, timeout_s=120.0):
        return PrivacyLedger.locked(self.ledger, self.keys, self.head, "H", FINGERPRINT, timeout_s)

    def snapshot(self):
        return self.ledger.read_bytes(), self.head.read_bytes()


def _plan(sigma, q, steps, number=1):
    return LedgerPlan("round", "run", number, FINGERPRINT, sigma, q, steps, 1.0, DELTA, "rdp")


def _opacus(history):
    accountant = RDPAccountant()
    accountant.history = list(history)
    return accountant.get_epsilon(delta=DELTA, alphas=RDP_ORDERS) if history else 0.0


def _spend_if_within_budget(files, budget, step=SPEND, pause_s=0.0):
    """What a hospital process does: under the lock, plan against ε so far, commit if it fits."""
    with files.locked() as ledger:
        after = _opacus([*ledger.history(), step])
        time.sleep(pause_s)  # widen the window between the check and the write
        return ledger.commit(_plan(*step)) if after <= budget else None


def _filled(tmp_path, rounds=3):
    files = Files(tmp_path)
    for _ in range(rounds):
        _spend_if_within_budget(files, float("inf"))
    return files


def _refused(files, *names):
    with pytest.raises(LedgerError) as caught, files.locked():
        pass
    for name in names:
        assert str(name) in str(caught.value)
    return str(caught.value)


def test_a_new_ledger_is_created_only_when_neither_key_nor_head_file_exists(tmp_path):
    files = Files(tmp_path)
    with files.locked() as ledger:
        assert [e["type"] for e in ledger.entries] == ["header"]
    head = json.loads(files.head.read_text())
    assert head["seq"] == 0 and head["hash"] == ledger.entries[0]["hash"]
    assert files.key.exists() and lock_path(files.ledger) == files.ledger.with_name("H.jsonl.lock")
    assert lock_path(files.ledger).exists()


def test_truncating_the_ledger_to_its_header_is_refused(tmp_path):
    """Today's bug: a ledger cut to its header verified with ε = 0 and the hospital trained."""
    files = _filled(tmp_path)
    files.ledger.write_text(files.ledger.read_text().splitlines(keepends=True)[0])
    assert verify_ledger(files.ledger).valid  # the chain alone cannot tell…
    message = _refused(files, files.ledger, files.head)  # …the head file can
    assert "ends at seq 0" in message and "seq 3" in message and "restore" in message


def test_cutting_the_last_entry_is_refused(tmp_path):
    files = _filled(tmp_path)
    files.ledger.write_text("".join(files.ledger.read_text().splitlines(keepends=True)[:-1]))
    _refused(files, files.ledger, files.head)


def test_a_torn_last_line_is_refused_naming_its_line(tmp_path):
    """A crash in the middle of writing an entry leaves half a line: refused, never skipped."""
    files = _filled(tmp_path)
    files.ledger.write_text(files.ledger.read_text()[:-40])
    assert "line 4: not a JSON entry" in _refused(files, files.ledger)


@pytest.mark.parametrize("damage", ["empty", "delete"])
def test_an_emptied_or_deleted_ledger_is_refused_while_its_key_exists(tmp_path, damage):
    """Today's bug: the ledger was silently re-created at ε = 0 while the hospital's key existed."""
    files = _filled(tmp_path)
    files.ledger.write_text("") if damage == "empty" else files.ledger.unlink()
    message = _refused(files, files.ledger, files.key, files.head)
    assert ("empty" if damage == "empty" else "missing") in message
    assert "Restore the ledger from backup" in message and "never trained" in message
    assert not files.ledger.exists() or files.ledger.read_text() == ""  # not re-created


@pytest.mark.parametrize("kept", ["key", "head"])
def test_a_deleted_ledger_is_refused_while_either_its_key_or_its_head_file_exists(tmp_path, kept):
    files = _filled(tmp_path)
    files.ledger.unlink()
    (files.head if kept == "key" else files.key).unlink()
    _refused(files, files.ledger, files.key if kept == "key" else files.head)
    assert not files.ledger.exists()


def test_removing_key_and_head_file_together_starts_a_new_ledger_identity(tmp_path):
    files = _filled(tmp_path)
    old_key = files.keys.joinpath("H.ed25519.pub").read_text()
    for path in (files.ledger, files.key, files.head):
        path.unlink()
    with files.locked() as ledger:
        assert len(ledger.entries) == 1
    assert files.keys.joinpath("H.ed25519.pub").read_text() != old_key


def test_a_ledger_whose_signing_key_is_missing_is_refused_and_no_key_is_created(tmp_path):
    files = _filled(tmp_path)
    files.key.unlink()
    assert "restore the key" in _refused(files, files.key)
    assert not files.key.exists()


def test_a_ledger_restored_from_an_older_copy_is_refused(tmp_path):
    """Today's bug: an older backup copy of the ledger was accepted and its spend re-spent."""
    files = _filled(tmp_path, rounds=2)
    older, _ = files.snapshot()
    _spend_if_within_budget(files, float("inf"))
    files.ledger.write_bytes(older)
    assert verify_ledger(files.ledger, trusted_key_for(files.ledger)).valid
    assert "older" in _refused(files, files.ledger, files.head)


def test_a_forked_ledger_holding_another_entry_at_the_heads_seq_is_refused(tmp_path):
    files = _filled(tmp_path, rounds=2)
    fork = Files(tmp_path / "fork")
    shutil.copytree(tmp_path / "ledgers", fork.root / "ledgers")
    shutil.copytree(tmp_path / "keys", fork.root / "keys")
    shutil.copytree(tmp_path / "heads", fork.root / "heads")
    _spend_if_within_budget(files, float("inf"), (8.0, 1.0, 1))
    _spend_if_within_budget(fork, float("inf"), (2.0, 1.0, 1))  # same seq, another entry
    shutil.copy(fork.ledger, files.ledger)
    assert "forked" in _refused(files, files.ledger, files.head)


def test_restoring_ledger_and_head_file_together_is_not_detectable_locally(tmp_path):
    """The known limit: a consistent older pair (ledger AND head file from the same backup) is
    all the hospital has, so it is accepted and its ε is the older one. Keep the head file out
    of the ledger's backups; the coordinator's privacy.json / report still shows the gap."""
    files = _filled(tmp_path, rounds=2)
    older_ledger, older_head = files.snapshot()
    _spend_if_within_budget(files, float("inf"))
    files.ledger.write_bytes(older_ledger)
    files.head.write_bytes(older_head)
    with files.locked() as ledger:
        assert ledger.epsilon("train", DELTA, "rdp") == pytest.approx(_opacus([SPEND] * 2))


@pytest.mark.parametrize(
    "tamper",
    ["seq", "hash", "signature", "garbage", "other-key"],
)
def test_a_head_file_that_does_not_verify_is_refused(tmp_path, tamper):
    files = _filled(tmp_path)
    head = json.loads(files.head.read_text())
    if tamper == "seq":
        head["seq"] = 1  # points into the ledger, but the signature covers "3:hash"
    elif tamper == "hash":
        head["hash"] = "0" * 64
    elif tamper == "signature":
        head["signature"] = head["signature"][:-4] + "AAA="
    elif tamper == "other-key":
        other = load_or_create_signing_key(tmp_path / "other", "H")
        head["signature"] = sign(other, f"{head['seq']}:{head['hash']}".encode())
    files.head.write_text("{not json" if tamper == "garbage" else json.dumps(head))
    _refused(files, files.head)


def test_a_missing_head_file_is_refused(tmp_path):
    files = _filled(tmp_path)
    files.head.unlink()
    assert "Restore the head file" in _refused(files, files.head, files.ledger)


def test_a_ledger_longer_than_its_head_is_accepted_and_the_head_rewritten(tmp_path):
    """A crash between the ledger's fsync and the head's rewrite leaves the head one behind."""
    files = _filled(tmp_path, rounds=2)
    key = load_or_create_signing_key(files.keys, "H")
    entries = [json.loads(line) for line in files.ledger.read_text().splitlines()]
    write_head(files.head, key, 1, entries[1]["hash"])
    with files.locked() as ledger:
        assert len(ledger.entries) == 3
    assert json.loads(files.head.read_text())["seq"] == 2


CRASH_BEFORE_HEAD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import medfed.shared.privacy.ledger as ledger_module
    from medfed.shared.privacy.ledger import LedgerPlan, PrivacyLedger

    root = Path(sys.argv[1])
    def die(*args):  # SIGKILL after the ledger's fsync, before the head file is rewritten
        os.kill(os.getpid(), signal.SIGKILL)
    with PrivacyLedger.locked(root / "ledgers" / "H.jsonl", root / "keys",
                              root / "heads" / "H.head.json", "H", "f" * 64) as ledger:
        ledger_module.write_head = die
        ledger.commit(LedgerPlan("round", "run", 9, "f" * 64, 4.0, 1.0, 2, 1.0, 1e-5, "rdp"))
    """
)


@pytest.mark.slow
def test_sigkill_between_the_ledger_fsync_and_the_head_write_leaves_a_ledger_that_opens(tmp_path):
    files = _filled(tmp_path, rounds=1)
    killed = subprocess.run(
        [sys.executable, "-c", CRASH_BEFORE_HEAD, str(tmp_path)], capture_output=True, timeout=120
    )
    assert killed.returncode == -9, killed.stderr
    assert json.loads(files.head.read_text())["seq"] == 1  # one behind the ledger
    with files.locked() as ledger:
        assert [e["seq"] for e in ledger.entries] == [0, 1, 2]  # the crashed round counts
        assert ledger.epsilon("train", DELTA, "rdp") == pytest.approx(_opacus([SPEND] * 2))
    assert json.loads(files.head.read_text())["seq"] == 2


def test_a_second_lock_holder_waits_then_gives_up_naming_the_lock_file(tmp_path):
    files = Files(tmp_path)
    with files.locked(), pytest.raises(LedgerError, match="H.jsonl.lock"), files.locked(0.2):
        pass


def _hospital_process(root, budget, barrier, results):
    barrier.wait()  # every process reaches the budget check at once
    entry = _spend_if_within_budget(Files(root), budget, pause_s=0.2)
    results.put(entry["epsilon_after"] if entry else None)


def _concurrently(root, budget, processes):
    context = multiprocessing.get_context("fork")  # real fork: separate processes, one ledger
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_hospital_process, args=(root, budget, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    return outcomes


@pytest.mark.slow
def test_concurrent_processes_cannot_both_pass_the_budget_check(tmp_path):
    """Today's bug: the lock covered only the write, so two processes each recorded the ε of
    one spend (7.90) while the ledger composed both (11.02). Under `locked` the check and the
    write are one critical section: exactly the spends that fit are committed, in a chain."""
    files = Files(tmp_path)
    with files.locked():
        pass
    budget = (_opacus([SPEND] * 2) + _opacus([SPEND] * 3)) / 2  # room for two spends, not three
    outcomes = _concurrently(tmp_path, budget, processes=4)
    recorded = sorted(e for e in outcomes if e is not None)
    assert recorded == pytest.approx([_opacus([SPEND]), _opacus([SPEND] * 2)], abs=1e-9)
    assert verify_ledger(files.ledger, trusted_key_for(files.ledger)).valid
    assert ledger_epsilon(files.ledger) == pytest.approx(recorded[-1], abs=1e-9)
    assert recorded[-1] <= budget


def test_a_ledger_from_before_head_files_adopts_one_once(tmp_path):
    """Ledgers written before head files (no `format`, no `stream`) still verify and open;
    the first open writes their head file, and from then on a missing head is refused."""
    files = Files(tmp_path)
    key = load_or_create_signing_key(files.keys, "H")
    public = files.keys.joinpath("H.ed25519.pub").read_text().strip()
    header = {"type": "header", "hospital": "H", "public_key": public}
    entries, previous = [], GENESIS
    for seq, fields in enumerate([header, LEGACY_ROUND, LEGACY_ROUND]):
        entry = {"seq": seq, "time": 0.0, **fields, "prev_hash": previous}
        if seq > 0:
            entry["epsilon_after"] = _opacus([SPEND] * seq)
        entry["hash"] = entry_hash(entry)
        entry["signature"] = sign(key, entry["hash"].encode())
        entries.append(entry)
        previous = entry["hash"]
    files.ledger.parent.mkdir(parents=True)
    files.ledger.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert verify_ledger(files.ledger, trusted_key_for(files.ledger)).valid
    with files.locked() as ledger:
        assert ledger.epsilon("train", DELTA, "rdp") == pytest.approx(_opacus([SPEND] * 2))
        ledger.commit(_plan(*SPEND))
    assert json.loads(files.head.read_text())["seq"] == 3
    files.head.unlink()
    _refused(files, files.head)


MOVES = st.one_of(
    st.just(("spend",)),
    st.sampled_from([("truncate",), ("empty",), ("delete",), ("restore_old",)]),
    st.tuples(st.just("concurrent"), st.integers(2, 3)),
)


def _damage(files, move, oldest):
    """Apply an operator's mistake; True when the ledger changed (and so must be refused)."""
    before = files.ledger.read_bytes()
    if move == "truncate":
        files.ledger.write_bytes(before.splitlines(keepends=True)[0])
    elif move == "empty":
        files.ledger.write_bytes(b"")
    elif move == "delete":
        files.ledger.unlink()
    else:
        files.ledger.write_bytes(oldest)
    return not files.ledger.exists() or files.ledger.read_bytes() != before


@pytest.mark.slow
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moves=st.lists(MOVES, min_size=1, max_size=7), spends_allowed=st.integers(1, 5))
def test_budget_is_never_exceeded_whatever_the_operator_does(
    tmp_path_factory, moves, spends_allowed
):
    """Spends, concurrent spenders, and truncating, emptying, deleting or restoring an older
    copy of the ledger in any order: every damage is refused until the newest copy is put
    back, every spend is serialised, and no spend is ever lost or made twice."""
    files = Files(tmp_path_factory.mktemp("moves"))
    budget = (_opacus([SPEND] * spends_allowed) + _opacus([SPEND] * (spends_allowed + 1))) / 2
    committed, attempts, oldest = [], 0, None  # epsilon_after of every entry any process wrote
    with files.locked():
        pass
    for move in moves:
        if move[0] == "spend":
            entry = _spend_if_within_budget(files, budget)
            committed += [entry["epsilon_after"]] if entry else []
            attempts += 1
        elif move[0] == "concurrent":
            committed += [e for e in _concurrently(files.root, budget, move[1]) if e is not None]
            attempts += move[1]
        else:
            newest = files.ledger.read_bytes()
            if _damage(files, move[0], oldest or newest):
                with pytest.raises(LedgerError):
                    _spend_if_within_budget(files, budget)
                files.ledger.write_bytes(newest)  # the fix the error names
        if oldest is None and committed:
            oldest = files.ledger.read_bytes()  # the copy a later "restore_old" puts back
    entries = [json.loads(line) for line in files.ledger.read_text().splitlines()][1:]
    assert len(entries) == len(committed) == min(spends_allowed, attempts)
    assert sorted(committed) == [e["epsilon_after"] for e in entries]  # none lost, none twice
    for number, entry in enumerate(entries, start=1):
        assert entry["epsilon_after"] == pytest.approx(_opacus([SPEND] * number), abs=1e-9)
    assert verify_ledger(files.ledger, trusted_key_for(files.ledger)).valid
    assert ledger_epsilon(files.ledger) <= budget

"""A hospital killed (SIGKILL) after training but before replying: the ledger verifies,
counts those steps, its head file names the last entry, and a restarted hospital continues
the chain (reusing the dataset's released label counts)."""

import json
import subprocess
import sys
import textwrap

import pytest

from medfed.shared.privacy.verify import ledger_epsilon, trusted_key_for, verify_ledger

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from medfed.client.hospital import HospitalSettings, train_round
    from medfed.shared.config import RunConfig
    from medfed.shared.data import load_federation
    from medfed.shared.instruction import RoundInstruction, instruction_record
    from medfed.shared.models import build_model

    directory, server_round, kill = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "kill"
    hospital = next(h for h in load_federation(RunConfig().data, 0) if h.name == "Hungary")
    settings = HospitalSettings("Hungary", 1.0, directory / "Hungary.jsonl", directory / "keys")
    run = RunConfig(rounds=3)
    record = dict(instruction_record(run, "crash-run"))
    record["server-round"] = server_round
    weights = build_model(run.model, (13,), 2).state_dict()
    result = train_round(hospital, settings, RoundInstruction.model_validate(record), weights)
    if kill:
        os.kill(os.getpid(), signal.SIGKILL)  # trained, ledger written, reply never sent
    print(result.training.epsilon)
    """
)


def _hospital_process(directory, server_round, mode):
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(directory), str(server_round), mode],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_sigkill_after_training_leaves_a_verifying_ledger_that_counts_the_steps(tmp_path):
    killed = _hospital_process(tmp_path, 1, "kill")
    assert killed.returncode == -9
    ledger = tmp_path / "Hungary.jsonl"
    assert verify_ledger(ledger, trusted_key_for(ledger)).valid
    entries = [json.loads(line) for line in ledger.read_text().splitlines()]
    types = [e["type"] for e in entries]
    assert types[0] == "header" and types.count("count") == 1 and types[-1] == "round"
    assert entries[-1]["steps"] > 0
    head = json.loads((tmp_path / "keys" / "Hungary.head").read_text())
    assert (head["seq"], head["hash"]) == (entries[-1]["seq"], entries[-1]["hash"])
    spent_before_restart = ledger_epsilon(ledger)
    assert spent_before_restart > 0

    restarted = _hospital_process(tmp_path, 2, "reply")
    assert restarted.returncode == 0, restarted.stderr
    after = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert after[: len(entries)] == entries and [e["seq"] for e in after] == list(range(len(after)))
    assert after[len(entries)]["prev_hash"] == entries[-1]["hash"]
    types = [e["type"] for e in after]
    assert types.count("count") == 1 and types.count("round") == 2  # counts released once
    assert verify_ledger(ledger, trusted_key_for(ledger)).valid
    assert float(restarted.stdout.strip().splitlines()[-1]) == pytest.approx(ledger_epsilon(ledger))
    assert ledger_epsilon(ledger) > spent_before_restart

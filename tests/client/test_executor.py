"""The hospital's warm executor: its private secret, its start-up checks, and task requests
that only it can make (a real SuperNode in Flower's process-isolation mode)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from flwr.app import ConfigRecord, Context, RecordDict

from medfed.client.client_app import answer
from medfed.client.executor import ExecutorProcess, acquire, runtime_client
from medfed.client.hospital import HospitalSettings
from medfed.client.policy import HospitalPolicy
from medfed.shared.config import RunConfig
from medfed.shared.crypto.identity import create_hospital_identity
from medfed.shared.data import load_federation
from medfed.shared.errors import HospitalUnavailable
from medfed.shared.flower_internals import AcquireTaskRequest, TaskType
from medfed.shared.instruction import instruction_record
from medfed.shared.models import build_model
from medfed.shared.privacy.verify import ledger_epsilon
from medfed.shared.processes import free_port, stop_process
from medfed.shared.protocol import ARRAYS, CONFIG, EVALUATION, OUTCOME, Outcome, state_to_arrays

RUN = RunConfig()
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def hungary():
    return next(h for h in load_federation(RUN.data, 0) if h.name == "Hungary")


def _evaluate_content(run=RUN):
    weights = build_model(run.model, (13,), 2).state_dict()
    config = dict(instruction_record(run, "run1"))
    config["server-round"] = 1
    return RecordDict({ARRAYS: state_to_arrays(weights), CONFIG: ConfigRecord(config)})


def _outcome(content):
    return Outcome.from_record(content.config_records[OUTCOME])


def _context(node_config):
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config={})


def _loader(data, settings):
    return lambda context: (data, settings)


def test_secret_file_and_folder_are_private(tmp_path):
    process = ExecutorProcess(tmp_path / "executor.log", "127.0.0.1:9", tmp_path / "n.toml", {})
    try:
        assert process.folder.stat().st_mode & 0o777 == 0o700
        assert process.secret_file.stat().st_mode & 0o777 == 0o600
        assert len(process.secret_file.read_bytes()) == 32
    finally:
        process.stop()
    assert not process.folder.exists()


def test_an_executor_that_cannot_load_the_data_fails_start_naming_its_log(tmp_path):
    node_config = tmp_path / "node-config.toml"
    node_config.write_text(
        f'name = "Hungary"\ndata-path = "{tmp_path / "missing.csv"}"\n'
        f'cache-dir = "{tmp_path / "cache"}"\nledger-dir = "{tmp_path / "ledger"}"\n'
        f'head-dir = "{tmp_path / "head"}"\ndata = \'{{"dataset": "heart_disease"}}\'\n'
        "max-epsilon = 1.0\n"
    )
    process = ExecutorProcess(
        tmp_path / "executor.log", "127.0.0.1:9", node_config, dict(os.environ)
    )
    try:
        with pytest.raises(HospitalUnavailable, match="executor.log"):
            process.start(timeout_s=120)
    finally:
        process.stop()
    assert "missing.csv not found" in (tmp_path / "executor.log").read_text()


@pytest.mark.slow
def test_only_the_executor_can_take_the_supernodes_tasks(tmp_path):
    port = free_port()
    process = ExecutorProcess(tmp_path / "executor.log", "unused", tmp_path / "unused", {})
    command = [str(BIN / "flower-supernode"), "--insecure", "--superlink", "127.0.0.1:9"]
    command += ["--isolation", "process", "--port", str(port)]
    command += ["--superexec-auth-secret-file", str(process.secret_file)]
    node = subprocess.Popen(
        command,
        env={"FLWR_HOME": str(tmp_path / "flwr"), "PATH": str(BIN)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = f"127.0.0.1:{port}"
    body = AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP]).SerializeToString()
    try:
        deadline = time.monotonic() + 120
        while True:  # the Runtime API is up before the (unreachable) SuperLink answers
            try:
                refused = httpx.post(
                    f"http://{address}/v1/runtime/acquire-task",
                    content=body,
                    headers={"Content-Type": "application/protobuf"},
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "SuperNode Runtime API never came up"
                time.sleep(0.5)
        assert refused.status_code == 401  # no secret: refused
        assert acquire(runtime_client(address, process.secret_file.read_bytes())) is None
    finally:
        stop_process(node)
        process.stop()


def test_secure_aggregation_state_stays_in_the_node_context(hungary, tmp_path):
    key_path, peers_file, _ = create_hospital_identity(tmp_path / "identity", "Hungary")
    settings = HospitalSettings(
        "Hungary",
        1.0,
        tmp_path / "Hungary.jsonl",
        tmp_path / "keys",
        identity_key=key_path,
        peers_file=peers_file,  # a federation of one is enough to advertise
    )
    context = _context({})
    setup = RecordDict({"secagg.setup": ConfigRecord({"run-id": "run1"})})
    reply = answer("query", setup, context, _loader(hungary, settings))
    assert _outcome(reply).status == "ok" and "secagg.setup" in reply.config_records
    assert context.state.config_records or context.state.array_records
    unknown = answer("query", RecordDict(), context, _loader(hungary, settings))
    assert _outcome(unknown).code == "protocol_error"


def test_evaluation_reply_is_a_dp_release_on_the_test_stream(hungary, tmp_path):
    settings = HospitalSettings("Hungary", 1.0, tmp_path / "Hungary.jsonl", tmp_path / "keys")
    reply = answer("evaluate", _evaluate_content(), _context({}), _loader(hungary, settings))
    assert _outcome(reply) == Outcome("Hungary", "ok")
    released = reply.config_records[EVALUATION]
    assert released["num_examples"] != len(hungary.y_test)  # a noisy count, not the exact one
    assert 0 < released["evaluation_epsilon"] <= settings.max_evaluation_epsilon
    assert ledger_epsilon(settings.ledger_path, stream="test") == released["evaluation_epsilon"]


def test_final_evaluation_checks_the_policy(hungary, tmp_path):
    policy = HospitalPolicy(allowed_models=("mlp",))
    settings = HospitalSettings(
        "Hungary", 1.0, tmp_path / "Hungary.jsonl", tmp_path / "keys", policy=policy
    )
    reply = answer("evaluate", _evaluate_content(), _context({}), _loader(hungary, settings))
    assert _outcome(reply).code == "policy_violation" and EVALUATION not in reply.config_records

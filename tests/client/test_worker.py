"""The warm worker and the relay ClientApp's hand-off to it (one process, a served thread)."""

import threading
from multiprocessing.connection import Client, Listener

import pytest
from flwr.app import ConfigRecord, Context, RecordDict

from medfed.client.client_app import answer
from medfed.client.deployed_app import AUTHKEY_KEY, SOCKET_KEY, ask_worker
from medfed.client.hospital import HospitalSettings
from medfed.client.policy import HospitalPolicy
from medfed.client.worker import WorkerProcess, serve
from medfed.shared.config import RunConfig
from medfed.shared.data import load_federation
from medfed.shared.errors import HospitalUnavailable
from medfed.shared.instruction import instruction_record
from medfed.shared.models import build_model
from medfed.shared.protocol import ARRAYS, CONFIG, EVALUATION, OUTCOME, Outcome, state_to_arrays

RUN = RunConfig()


@pytest.fixture(scope="module")
def hungary():
    return next(h for h in load_federation(RUN.data, 0) if h.name == "Hungary")


class CountingLoader:
    """Hands out one hospital's data and settings; counts the calls."""

    def __init__(self, data, settings):
        self.data, self.settings, self.calls = data, settings, 0

    def __call__(self, context):
        self.calls += 1
        return self.data, self.settings


def _evaluate_content(run=RUN):
    weights = build_model(run.model, (13,), 2).state_dict()
    config = dict(instruction_record(run, "run1"))
    config["server-round"] = 1
    return RecordDict({ARRAYS: state_to_arrays(weights), CONFIG: ConfigRecord(config)})


def _outcome(content):
    return Outcome.from_record(content.config_records[OUTCOME])


@pytest.fixture
def worker(tmp_path, hungary):
    """A served worker thread; yields (node_config, loader)."""
    process = WorkerProcess(tmp_path / "worker.log")  # only its private socket + key files
    settings = HospitalSettings("Hungary", 1.0, tmp_path / "Hungary.jsonl", tmp_path / "keys")
    loader = CountingLoader(hungary, settings)
    listener = Listener(
        str(process.socket), family="AF_UNIX", authkey=process.key_file.read_bytes()
    )
    threading.Thread(target=serve, args=(listener, loader), daemon=True).start()
    node_config = {SOCKET_KEY: str(process.socket), AUTHKEY_KEY: str(process.key_file)}
    yield node_config, loader
    listener.close()
    process.stop()


def _context(node_config):
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config={})


def test_key_file_and_folder_are_private(tmp_path):
    process = WorkerProcess(tmp_path / "worker.log")
    try:
        assert process.folder.stat().st_mode & 0o777 == 0o700
        assert process.key_file.stat().st_mode & 0o777 == 0o600
        assert len(process.key_file.read_bytes()) == 32
    finally:
        process.stop()
    assert not process.folder.exists()


def test_relay_gets_the_same_reply_as_an_in_process_answer(worker, hungary):
    node_config, loader = worker
    content = _evaluate_content()
    relayed = ask_worker("evaluate", content, _context(node_config))
    local = answer("evaluate", content, _context(node_config), loader)
    assert _outcome(relayed) == Outcome("Hungary", "ok")
    assert dict(relayed.metric_records[EVALUATION]) == dict(local.metric_records[EVALUATION])
    assert relayed.metric_records[EVALUATION]["num_examples"] == len(hungary.y_test)


def test_node_state_written_by_the_worker_comes_back_to_the_relay(worker):
    node_config, _ = worker
    context = _context(node_config)
    setup = RecordDict({"secagg.setup": ConfigRecord({})})
    reply = ask_worker("query", setup, context)  # fresh secure-aggregation keys, kept in state
    assert _outcome(reply).status == "ok" and "secagg.setup" in reply.config_records
    assert context.state.config_records or context.state.array_records
    unknown = ask_worker("query", RecordDict(), context)
    assert _outcome(unknown).code == "protocol_error"


def test_a_wrong_key_is_refused_and_the_worker_keeps_serving(worker, tmp_path):
    node_config, loader = worker
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(b"x" * 32)
    with pytest.raises(HospitalUnavailable, match="not answering"):
        ask_worker("evaluate", _evaluate_content(), _context({**node_config, AUTHKEY_KEY: wrong}))
    assert loader.calls == 0
    reply = ask_worker("evaluate", _evaluate_content(), _context(node_config))
    assert _outcome(reply).status == "ok" and loader.calls == 1


def test_a_malformed_request_gets_a_protocol_refusal(worker):
    node_config, loader = worker
    authkey = open(node_config[AUTHKEY_KEY], "rb").read()
    with Client(node_config[SOCKET_KEY], family="AF_UNIX", authkey=authkey) as connection:
        connection.send(("train", "not a RecordDict"))
        reply, state = connection.recv()
    assert _outcome(reply).code == "protocol_error" and state is None and loader.calls == 0


def test_no_worker_is_a_typed_error_naming_the_fix(tmp_path):
    node_config = {SOCKET_KEY: str(tmp_path / "none.sock"), AUTHKEY_KEY: str(tmp_path / "k")}
    (tmp_path / "k").write_bytes(b"k" * 32)
    with pytest.raises(HospitalUnavailable, match="restart medfed-client"):
        ask_worker("train", RecordDict(), _context(node_config))
    with pytest.raises(HospitalUnavailable, match="medfed-client"):
        ask_worker("train", RecordDict(), _context({}))


def test_final_evaluation_checks_the_policy(hungary, tmp_path):
    policy = HospitalPolicy(allowed_models=("mlp",))
    settings = HospitalSettings(
        "Hungary", 1.0, tmp_path / "Hungary.jsonl", tmp_path / "keys", policy=policy
    )
    reply = answer("evaluate", _evaluate_content(), _context({}), CountingLoader(hungary, settings))
    assert _outcome(reply).code == "policy_violation" and EVALUATION not in reply.metric_records

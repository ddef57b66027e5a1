"""Write-ahead under power loss: whatever a hospital has released (a reply) or started to
spend (training) is in the part of its ledger that was fsync'd, so a crash at any point can
only over-count. The ledger fsyncs a lock block's commits together when the block ends; these
tests record every fsync'd file image and check what a power loss would leave."""

import json
import os
from pathlib import Path

import pytest
from flwr.app import ConfigRecord, Context, RecordDict

import medfed.client.hospital as hospital_module
from medfed.client.client_app import answer
from medfed.client.hospital import HospitalSettings
from medfed.shared.config import RunConfig
from medfed.shared.crypto.signing import load_or_create_signing_key, public_key_text
from medfed.shared.data import load_federation
from medfed.shared.instruction import instruction_record
from medfed.shared.models import build_model
from medfed.shared.privacy.ledger import LedgerPlan, PrivacyLedger
from medfed.shared.privacy.verify import stream_epsilon, verify_entries
from medfed.shared.protocol import ARRAYS, CONFIG, state_to_arrays
from medfed.shared.secagg import SecureAggregationConfig

RUN = RunConfig(rounds=3)


class DiskImage:
    """Each file's bytes as of its last fsync (what survives a power loss), in fsync order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.durable: dict[Path, bytes] = {}
        self.order: list[tuple[Path, bytes]] = []
        real_fsync = os.fsync

        def fsync(descriptor: int) -> None:
            real_fsync(descriptor)
            path = Path(os.readlink(f"/proc/self/fd/{descriptor}"))
            if path.is_file():
                self.durable[path] = path.read_bytes()
                self.order.append((path, self.durable[path]))

        monkeypatch.setattr(os, "fsync", fsync)

    def entries(self, ledger: Path) -> list[dict]:
        """The ledger's entries a power loss now would leave."""
        return [json.loads(line) for line in self.durable.get(ledger.resolve(), b"").splitlines()]


@pytest.fixture(scope="module")
def hungary():
    return next(h for h in load_federation(RUN.data, 0) if h.name == "Hungary")


def _train(hungary, settings, server_round):
    config = dict(instruction_record(RUN, "run1"))
    config["server-round"] = server_round
    weights = build_model(RUN.model, (13,), 2).state_dict()
    content = RecordDict({ARRAYS: state_to_arrays(weights), CONFIG: ConfigRecord(config)})
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    reply = answer("train", content, context, lambda _context: (hungary, settings))
    assert reply.config_records["outcome"]["status"] == "ok"
    return dict(reply.config_records["training"]), dict(reply.config_records["evaluation"])


def test_a_power_loss_at_any_point_of_a_round_cannot_under_count_what_left(
    hungary, tmp_path, monkeypatch
):
    plain = SecureAggregationConfig(enabled=False)
    settings = HospitalSettings(
        "Hungary", 3.0, tmp_path / "Hungary.jsonl", tmp_path / "keys", secure_aggregation=plain
    )
    image = DiskImage(monkeypatch)
    at_training_start = []
    real_train = hospital_module.train_locally

    def train_locally(*args, **kwargs):
        at_training_start.append(image.entries(settings.ledger_path))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(hospital_module, "train_locally", train_locally)
    for server_round in (1, 2):  # a first participation (header, counts) and a steady one
        training, evaluation = _train(hungary, settings, server_round)
        key = load_or_create_signing_key(settings.key_dir, "Hungary").public_key()
        durable = image.entries(settings.ledger_path)
        assert verify_entries(durable, public_key_text(key)).valid
        # Everything the reply released is in what a power loss after it would leave.
        assert stream_epsilon(durable, stream="train") >= training["epsilon"] > 0
        assert stream_epsilon(durable, stream="test") >= evaluation["evaluation_epsilon"] > 0
        written = settings.ledger_path.read_text().splitlines()
        assert [json.loads(line) for line in written] == durable  # nothing left unsynced
        # The round's steps were durable before its first step was taken.
        before = at_training_start[-1]
        assert before[-1]["type"] == "round" and before[-1]["round"] == server_round
        assert stream_epsilon(before, stream="train") == pytest.approx(training["epsilon"])
    # The head file is fsync'd only after the ledger holds the entry it names.
    ledger, synced_entries, heads = settings.ledger_path.resolve(), 0, []
    for path, content in image.order:
        if path == ledger:
            synced_entries = len(content.splitlines())
        elif path.name.startswith("Hungary.head"):
            heads.append(json.loads(content)["seq"])
            assert heads[-1] < synced_entries
    assert heads[-1] == len(written) - 1


def test_commits_of_a_block_that_raises_are_made_durable_before_the_lock_is_released(
    tmp_path, monkeypatch
):
    image = DiskImage(monkeypatch)
    path = tmp_path / "H.jsonl"
    plan = LedgerPlan("round", "run", 1, "f" * 64, 4.0, 1.0, 2, 1.0, 1e-5, "rdp")
    locked = PrivacyLedger.locked(path, tmp_path / "keys", tmp_path / "H.head", "H", "f" * 64)
    with pytest.raises(RuntimeError, match="after the commit"), locked as ledger:
        ledger.commit(plan)
        assert image.entries(path) == []  # written, not yet fsync'd: nothing sent yet
        raise RuntimeError("the caller failed after the commit")
    assert [e["type"] for e in image.entries(path)] == ["header", "round"]
    assert json.loads((tmp_path / "H.head").read_text())["seq"] == 1

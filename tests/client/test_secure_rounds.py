"""A coordinator written to cheat cannot get one hospital's update out of secure aggregation.

Each test drives four hospitals through `answer(...)` with real SecAgg+ messages built with
the shared coordinator classes; the cheating coordinator keeps copies of its own session to
get past its own checks, as a malicious operator would.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flwr.app import ConfigRecord, Context, RecordDict

from medfed.client import secure
from medfed.client.client_app import answer
from medfed.client.hospital import HospitalSettings
from medfed.shared.config import RunConfig
from medfed.shared.crypto.identity import KEY_SUFFIX, create_hospital_identity, file_stem
from medfed.shared.data import load_federation
from medfed.shared.errors import SecureAggregationError
from medfed.shared.instruction import instruction_record
from medfed.shared.models import build_model
from medfed.shared.privacy.verify import verify_ledger
from medfed.shared.protocol import (
    ARRAYS,
    CONFIG,
    OUTCOME,
    SECAGG_SETUP,
    SECAGG_UNMASK,
    SECAGG_UPLOAD,
    Outcome,
    state_to_arrays,
)
from medfed.shared.secagg import SecAggCoordinator, SecureAggregationConfig, keys
from medfed.shared.secagg.authentication import advertisement_payload
from medfed.shared.secagg.records import from_records, to_records

RUN = RunConfig(rounds=4)
RUN_ID = "run1"
CONFIG_ON = SecureAggregationConfig()


@pytest.fixture(scope="module")
def hospitals_data():
    return load_federation(RUN.data, 0)


class Hospitals:
    """Four hospitals (node ids 1..4), each with its own Context, ledger and settings."""

    def __init__(self, data, tmp_path, enabled: bool = True) -> None:
        config = SecureAggregationConfig(enabled=enabled)
        self.data = {node: d for node, d in enumerate(data, start=1)}
        self.identity_dir, self.peers_file = tmp_path / "identity", tmp_path / "peers.toml"
        entries = [
            create_hospital_identity(self.identity_dir, d.name)[1].read_text()
            for d in self.data.values()
        ]
        self.peers_file.write_text("\n".join(entries))  # what the hospitals pinned
        self.settings = {
            node: HospitalSettings(
                d.name,
                5.0,
                tmp_path / f"{node}.jsonl",
                tmp_path / "keys",
                secure_aggregation=config,
                identity_key=self.identity_dir / f"{file_stem(d.name)}{KEY_SUFFIX}",
                peers_file=self.peers_file,
            )
            for node, d in self.data.items()
        }
        self.contexts = {node: self._fresh(node) for node in self.data}
        self.weights = build_model(RUN.model, (13,), 2).state_dict()

    @staticmethod
    def _fresh(node: int) -> Context:
        return Context(run_id=1, node_id=node, node_config={}, state=RecordDict(), run_config={})

    def restart(self, node: int) -> None:
        """The hospital's process restarts: its Context is gone, its disk is not."""
        self.contexts[node] = self._fresh(node)

    def send(self, node: int, message_type: str, content: RecordDict) -> RecordDict:
        settings = self.settings[node]
        loader = lambda _context: (self.data[node], settings)  # noqa: E731
        return answer(message_type, content, self.contexts[node], loader)

    def training_content(self, server_round: int, attempt: int, roster=None) -> RecordDict:
        config = dict(instruction_record(RUN, RUN_ID))
        config["server-round"] = server_round
        config["secagg-attempt"] = attempt
        content = RecordDict({ARRAYS: state_to_arrays(self.weights), CONFIG: ConfigRecord(config)})
        for name, record in (roster or RecordDict()).items():
            content[name] = record
        return content

    def ledger_entries(self, node: int) -> int:
        path = self.settings[node].ledger_path
        return verify_ledger(path).entries if path.exists() else 0

    def true_update(self, node: int, server_round: int) -> np.ndarray:
        kept = secure.pending_update(self.contexts[node], server_round)
        assert kept is not None
        return kept[0].copy()


def outcome(reply: RecordDict) -> Outcome:
    return Outcome.from_record(reply.config_records[OUTCOME])


class CheatingCoordinator:
    """Real SecAgg+ messages; keeps a copy of its session to compute as many sums as it likes."""

    def __init__(self, hospitals: Hospitals) -> None:
        self.hospitals = hospitals
        self.session = SecAggCoordinator(RUN_ID, CONFIG_ON)
        self.fixed: dict | None = None

    def setup(self, nodes=(1, 2, 3, 4)) -> dict[int, Outcome]:
        content = RecordDict({SECAGG_SETUP: ConfigRecord({"request": "keys", "run-id": RUN_ID})})
        outcomes = {}
        for node in nodes:
            reply = self.hospitals.send(node, "query", content)
            outcomes[node] = outcome(reply)
            if outcomes[node].status == "ok":
                self.session.add_advertisement(from_records(reply, SECAGG_SETUP))
        if len(self.session._advertisements) >= 3:
            self.session.roster()
            self.fixed = self.session.state_dict()
        return outcomes

    def roster_records(self) -> RecordDict:
        return to_records(self.session.roster().to_dict(), "secagg.roster")

    def train(self, server_round: int, attempt: int, nodes) -> dict[int, RecordDict]:
        content = self.hospitals.training_content(server_round, attempt, self.roster_records())
        return {node: self.hospitals.send(node, "train", content) for node in nodes}

    def sum_of(self, server_round: int, attempt: int, replies: dict[int, RecordDict]):
        """Σ w·x over the uploads in `replies` (the weighted average × total weight)."""
        session = SecAggCoordinator.from_state_dict(self.fixed)  # a fresh copy: no own checks
        session.begin_round(server_round, attempt)
        for reply in replies.values():
            session.receive_upload(from_records(reply, SECAGG_UPLOAD))
        for request in session.unmask_requests():
            message = to_records(request.to_dict(), SECAGG_UNMASK)
            reply = self.hospitals.send(request.hospital_id, "query", message)
            if outcome(reply).status == "ok":
                session.receive_unmask_response(from_records(reply, SECAGG_UNMASK))
        aggregate = session.aggregate()
        return aggregate.weighted_average * aggregate.total_weight, aggregate.total_weight


def test_enabled_hospital_refuses_a_training_request_without_a_roster(hospitals_data, tmp_path):
    hospitals = Hospitals(hospitals_data, tmp_path)
    reply = hospitals.send(1, "train", hospitals.training_content(1, 0))
    assert outcome(reply).status == "refused"
    assert outcome(reply).code == "secure_aggregation_required"
    assert ARRAYS not in reply.array_records and "training" not in reply.config_records
    assert hospitals.ledger_entries(1) == 0  # nothing trained, nothing spent


def test_disabled_hospital_trains_in_plain_mode(hospitals_data, tmp_path):
    hospitals = Hospitals(hospitals_data, tmp_path, enabled=False)
    reply = hospitals.send(1, "train", hospitals.training_content(1, 0))
    assert outcome(reply).status == "ok" and ARRAYS in reply.array_records


def test_plaintext_replay_of_a_masked_round_yields_nothing(hospitals_data, tmp_path):
    hospitals = Hospitals(hospitals_data, tmp_path)
    coordinator = CheatingCoordinator(hospitals)
    coordinator.setup()
    replies = coordinator.train(1, 0, (1, 2, 3, 4))
    assert all(outcome(r).status == "ok" for r in replies.values())
    true = hospitals.true_update(1, 1)
    entries = hospitals.ledger_entries(1)
    plain = hospitals.send(1, "train", hospitals.training_content(1, 0))  # same request, no roster
    assert outcome(plain).code == "secure_aggregation_required"
    assert ARRAYS not in plain.array_records and hospitals.ledger_entries(1) == entries
    # Even a hospital whose operator then turns secure aggregation off trains afresh.
    off = SecureAggregationConfig(enabled=False)
    hospitals.settings[1] = dataclasses.replace(hospitals.settings[1], secure_aggregation=off)
    plain = hospitals.send(1, "train", hospitals.training_content(1, 0))
    assert outcome(plain).status == "ok"
    released = plain.array_records[ARRAYS]
    flat = np.concatenate(
        [
            released[k].numpy().astype(np.float64).ravel() - v.double().numpy().ravel()
            for k, v in hospitals.weights.items()
        ]
    )
    assert np.max(np.abs(flat - true)) > 1e-3
    assert hospitals.ledger_entries(1) > entries  # its own ledger entry


def _recovered(first, second) -> np.ndarray:
    (sum_all, weight_all), (sum_rest, weight_rest) = first, second
    return (sum_all - sum_rest) / (weight_all - weight_rest)


def test_retry_after_an_answered_unmask_is_trained_afresh_and_two_sums_reveal_nothing(
    hospitals_data, tmp_path
):
    hospitals = Hospitals(hospitals_data, tmp_path)
    coordinator = CheatingCoordinator(hospitals)
    coordinator.setup()
    victim = 1
    replies = coordinator.train(1, 0, (1, 2, 3, 4))
    true = hospitals.true_update(victim, 1)
    first = coordinator.sum_of(1, 0, replies)  # everyone answers attempt 0's unmask
    entries = {node: hospitals.ledger_entries(node) for node in (2, 3, 4)}
    # "Unmasking failed, retry": attempt 1 without the victim, the others asked to re-mask.
    retried = coordinator.train(1, 1, (2, 3, 4))
    assert all(outcome(r).status == "ok" for r in retried.values())
    assert all(hospitals.ledger_entries(n) > entries[n] for n in (2, 3, 4))  # fresh rounds
    second = coordinator.sum_of(1, 1, retried)
    recovered = _recovered(first, second)
    assert np.max(np.abs(recovered - true)) > 1e-2


def test_second_setup_in_a_run_is_refused(hospitals_data, tmp_path):
    hospitals = Hospitals(hospitals_data, tmp_path)
    coordinator = CheatingCoordinator(hospitals)
    coordinator.setup()
    replies = coordinator.train(1, 0, (1, 2, 3, 4))
    coordinator.sum_of(1, 0, replies)
    again = CheatingCoordinator(hospitals).setup()
    assert all(o.status == "refused" for o in again.values()), again
    assert {o.code for o in again.values()} == {"secure_aggregation_setup_repeated"}


def test_restarted_hospital_refuses_a_second_setup_and_a_lost_session(hospitals_data, tmp_path):
    hospitals = Hospitals(hospitals_data, tmp_path)
    coordinator = CheatingCoordinator(hospitals)
    coordinator.setup()
    replies = coordinator.train(1, 0, (1, 2, 3, 4))
    coordinator.sum_of(1, 0, replies)
    for node in (1, 2, 3, 4):
        hospitals.restart(node)
    entries = hospitals.ledger_entries(2)
    again = CheatingCoordinator(hospitals).setup()
    assert {o.code for o in again.values()} == {"secure_aggregation_setup_repeated"}
    retried = coordinator.train(1, 1, (2, 3, 4))  # the old roster, sessions gone
    assert {outcome(r).code for r in retried.values()} == {"secure_aggregation_session_lost"}
    assert hospitals.ledger_entries(2) == entries
    assert not any(SECAGG_UPLOAD in r.config_records for r in retried.values())  # no second sum


def test_retry_without_an_answered_unmask_re_masks_the_kept_update_at_no_cost(
    hospitals_data, tmp_path
):
    hospitals = Hospitals(hospitals_data, tmp_path)
    coordinator = CheatingCoordinator(hospitals)
    coordinator.setup()
    coordinator.train(1, 0, (1, 2, 3, 4))  # a hospital vanished; nobody was asked to unmask
    kept = hospitals.true_update(2, 1)
    entries = hospitals.ledger_entries(2)
    retried = coordinator.train(1, 1, (2, 3, 4))
    assert all(outcome(r).status == "ok" for r in retried.values())
    assert hospitals.ledger_entries(2) == entries
    assert np.array_equal(hospitals.true_update(2, 1), kept)


def test_a_roster_that_does_not_check_out_is_refused_before_any_training(hospitals_data, tmp_path):
    hospitals = Hospitals(hospitals_data, tmp_path)
    coordinator = CheatingCoordinator(hospitals)
    coordinator.setup()
    lowered = {**coordinator.session.roster().to_dict(), "threshold": 1}
    content = hospitals.training_content(1, 0, to_records(lowered, "secagg.roster"))
    reply = hospitals.send(1, "train", content)
    assert (
        outcome(reply).code == "secure_aggregation_error" and "threshold" in outcome(reply).message
    )
    assert SECAGG_UPLOAD not in reply.config_records and hospitals.ledger_entries(1) == 0


def _forged_roster(coordinator: CheatingCoordinator, victim_peer: int) -> dict:
    """The roster with the coordinator's own keys in place of one peer's, signed by its key."""
    roster = coordinator.session.roster().to_dict()
    position = roster["hospital_ids"].index(victim_peer)
    forged = {k: list(v) if isinstance(v, list) else v for k, v in roster.items()}
    forged["mask_public_keys"][position] = keys.public_key(keys.generate_private_key())
    forged["share_public_keys"][position] = keys.public_key(keys.generate_private_key())
    payload = advertisement_payload(
        RUN_ID,
        forged["hospital_names"][position],
        victim_peer,
        forged["mask_public_keys"][position],
        forged["share_public_keys"][position],
    )
    forged["signatures"][position] = Ed25519PrivateKey.generate().sign(payload)
    return forged


def test_a_roster_with_one_substituted_key_is_refused_before_any_training(hospitals_data, tmp_path):
    hospitals = Hospitals(hospitals_data, tmp_path)
    coordinator = CheatingCoordinator(hospitals)
    coordinator.setup()
    content = hospitals.training_content(
        1, 0, to_records(_forged_roster(coordinator, 2), "secagg.roster")
    )
    reply = hospitals.send(1, "train", content)
    assert outcome(reply).status == "refused"
    assert outcome(reply).code == "secure_aggregation_roster_unauthenticated"
    assert SECAGG_UPLOAD not in reply.config_records and hospitals.ledger_entries(1) == 0
    honest = coordinator.train(1, 0, (1,))[1]  # the genuine roster is still accepted
    assert outcome(honest).status == "ok" and SECAGG_UPLOAD in honest.config_records


def test_two_hospitals_given_different_rosters_detect_it_and_no_sum_is_recovered(
    hospitals_data, tmp_path
):
    hospitals = Hospitals(hospitals_data, tmp_path)
    coordinator = CheatingCoordinator(hospitals)
    coordinator.setup()
    other = {**coordinator.session.roster().to_dict(), "run_seed": bytes(16)}
    replies = coordinator.train(1, 0, (2, 3, 4))
    content = hospitals.training_content(1, 0, to_records(other, "secagg.roster"))
    replies[1] = hospitals.send(1, "train", content)  # each roster alone checks out
    assert all(outcome(r).status == "ok" for r in replies.values())
    session = SecAggCoordinator.from_state_dict(coordinator.fixed)
    session.begin_round(1, 0)
    for reply in replies.values():
        session.receive_upload(from_records(reply, SECAGG_UPLOAD))
    for request in session.unmask_requests():
        message = to_records(request.to_dict(), SECAGG_UNMASK)
        answer_ = hospitals.send(request.hospital_id, "query", message)
        assert outcome(answer_).status == "refused"
        assert outcome(answer_).code == "secure_aggregation_roster_inconsistent"
        assert SECAGG_UNMASK not in answer_.config_records
    with pytest.raises(SecureAggregationError):
        session.aggregate()  # no shares came back: nothing is unmasked


def test_a_hospital_without_an_identity_key_refuses_setup_with_a_config_error(
    hospitals_data, tmp_path
):
    hospitals = Hospitals(hospitals_data, tmp_path)
    hospitals.settings[1] = dataclasses.replace(hospitals.settings[1], identity_key=None)
    outcomes = CheatingCoordinator(hospitals).setup(nodes=(1,))
    assert outcomes[1].status == "error" and outcomes[1].code == "config_error"
    assert str(tmp_path) not in outcomes[1].message  # the paths stay in the hospital's log


def test_answering_the_unmask_drops_the_kept_update_from_the_context(hospitals_data, tmp_path):
    hospitals = Hospitals(hospitals_data, tmp_path)
    coordinator = CheatingCoordinator(hospitals)
    coordinator.setup()
    replies = coordinator.train(1, 0, (1, 2, 3, 4))
    assert all(secure.pending_update(hospitals.contexts[n], 1) is not None for n in (1, 2, 3, 4))
    coordinator.sum_of(1, 0, replies)
    for node in (1, 2, 3, 4):  # it could never be re-masked: the Context need not carry it
        assert secure.pending_update(hospitals.contexts[node], 1) is None
        assert secure.PENDING_UPDATE not in hospitals.contexts[node].state.array_records

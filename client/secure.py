"""The hospital's side of secure aggregation, on the ClientApp's persistent context state.

Setup (once per run, journalled on disk so a second one is refused even after a restart)
creates fresh X25519 keys and advertises them, signed with the hospital's identity key; a
roster is joined only if every peer's keys verify against the hospital's pinned peers file
(`medfed.shared.secagg.authentication`). Each training reply carries only the masked update;
an unmask request is answered from the saved session and journalled before the answer
leaves. The trained update is kept in the Context so a retried attempt re-masks it without
training again, but only while no unmask request involving it was answered: after one was,
a retry gets a freshly trained update (see `reusable_update`), and answering the unmask drops
the kept update from the Context. A session missing from the
Context of a run that had its setup (a restarted hospital) is refused, never re-created: its
keys are gone and the old round could be masked again under new ones.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict

from medfed.client.hospital import HospitalSettings
from medfed.client.secagg_journal import RunJournal, SecAggJournal
from medfed.client.secagg_session import identity_of, load_session, save_session
from medfed.shared.errors import ProtocolError, SecureAggregationError, SecureAggregationRefused
from medfed.shared.hospital_report import EvaluationReport, TrainingReport
from medfed.shared.instruction import RoundInstruction
from medfed.shared.protocol import SECAGG_ROSTER, SECAGG_SETUP, SECAGG_UNMASK, SECAGG_UPLOAD
from medfed.shared.secagg import Roster, SecAggHospital, UnmaskRequest
from medfed.shared.secagg.authentication import HospitalIdentity
from medfed.shared.secagg.records import array_values, from_records, to_array, to_records

PENDING_UPDATE, PENDING_META = "medfed.secagg.pending.update", "medfed.secagg.pending.meta"


def _setup_run_id(content: RecordDict) -> str:
    run_id = content.config_records[SECAGG_SETUP].get("run-id")
    if not isinstance(run_id, str) or not run_id:
        raise ProtocolError("secure-aggregation setup request lacks its 'run-id'")
    return run_id


def setup(
    context: Context, settings: HospitalSettings, content: RecordDict, journal: SecAggJournal
) -> RecordDict:
    """Fresh keys for this run (journalled first); the reply advertises the public halves,
    signed with the hospital's identity key.

    Raises:
        SecureAggregationRefused: the run already had its setup at this hospital.
    """
    run_id = _setup_run_id(content)
    identity = identity_of(settings)
    if journal.load(run_id).setup:
        raise SecureAggregationRefused(
            f"run '{run_id}' already had its secure-aggregation setup at this hospital; a "
            "second one (new keys for the same rounds) is refused; start a new run",
            code="secure_aggregation_setup_repeated",
        )
    config = settings.secure_aggregation
    session = SecAggHospital(context.node_id, config, run_id=run_id, identity=identity)
    journal.save(run_id, RunJournal(setup=True))
    save_session(context, session, run_id)
    _forget_update(context)
    return to_records(session.advertise().to_dict(), SECAGG_SETUP)


def join(
    context: Context,
    content: RecordDict,
    instruction: RoundInstruction,
    journal: SecAggJournal,
    identity: HospitalIdentity,
) -> SecAggHospital:
    """The run's session, joined to the request's roster and ready to mask this attempt.

    Checked before any training, so a request that cannot be masked spends no privacy.

    Raises:
        SecureAggregationError: the roster is invalid, for another run or not signed by the
            pinned peers, or the attempt is not after the last upload.
        SecureAggregationRefused: the session is lost (see `load_session`).
    """
    roster = Roster.from_dict(from_records(content, SECAGG_ROSTER))
    if roster.run_id != instruction.run_id:
        raise SecureAggregationError(
            f"roster is for run '{roster.run_id}', the training request for '{instruction.run_id}'"
        )
    session = load_session(context, journal, instruction.run_id, identity)
    session.join(roster)
    session.check_later(instruction.server_round, instruction.secagg_attempt)
    save_session(context, session, instruction.run_id)
    return session


def _values(tensor: torch.Tensor) -> np.ndarray:
    """A flat numpy view of a CPU tensor (a float64 copy for dtypes numpy lacks, e.g. bf16)."""
    flat = tensor.detach().cpu().reshape(-1)
    try:
        return flat.numpy()
    except TypeError:
        return flat.double().numpy()


def flatten_update(new: dict[str, torch.Tensor], old: dict[str, torch.Tensor]) -> np.ndarray:
    """new − old in float64, flattened in the global model's key order.

    One pass into one preallocated vector: numpy subtracts in float64 without temporaries.
    """
    sizes = [old[key].numel() for key in old]
    update = np.empty(sum(sizes), dtype=np.float64)
    offset = 0
    for key, size in zip(old, sizes, strict=True):
        part = update[offset : offset + size]
        np.subtract(_values(new[key]), _values(old[key]), out=part, dtype=np.float64)
        offset += size
    return update


def pending_update(
    context: Context, server_round: int
) -> tuple[np.ndarray, TrainingReport, EvaluationReport | None] | None:
    """The update kept for `server_round` and its reports, if any."""
    arrays = context.state.array_records.get(PENDING_UPDATE)
    meta = context.state.config_records.get(PENDING_META)
    if arrays is None or meta is None or int(meta["round"]) != server_round:
        return None
    reports = json.loads(str(meta["reports"]))
    evaluation = reports["evaluation"]
    return (
        array_values(arrays["update"]),
        TrainingReport(**reports["training"]),
        None if evaluation is None else EvaluationReport(**evaluation),
    )


def reusable_update(
    context: Context, journal: SecAggJournal, run_id: str, server_round: int
) -> tuple[np.ndarray, TrainingReport, EvaluationReport | None] | None:
    """The kept update of `server_round`, if it may be masked again for a retried attempt.

    Only while the hospital has answered no unmask request of an attempt that masked it:
    once it has, the coordinator may hold that attempt's sum, and a second sum with the same
    update over other survivors would give it this hospital's update by subtraction. Then
    the retry is trained afresh (its own ledger entry), so every unmask this hospital answers
    involves a distinct update, and no two sums differ by one hospital's update alone (the
    hospitals that answered an attempt all contribute fresh updates to later attempts).
    """
    meta = context.state.config_records.get(PENDING_META)
    if meta is None or str(meta.get("run_id", "")) != run_id:
        return None
    kept = pending_update(context, server_round)
    if kept is None:
        return None
    if journal.load(run_id).answered_attempt(server_round) >= int(meta["attempt"]):
        _forget_update(context)
        return None
    return kept


def _forget_update(context: Context) -> None:
    context.state.array_records.pop(PENDING_UPDATE, None)
    context.state.config_records.pop(PENDING_META, None)


def keep_update(
    context: Context,
    instruction: RoundInstruction,
    update: np.ndarray,
    training: TrainingReport,
    evaluation: EvaluationReport | None,
) -> None:
    """Remember this round's update (and the attempt it was first masked for)."""
    context.state[PENDING_UPDATE] = ArrayRecord({"update": to_array(update)})
    reports = json.dumps(
        {
            "training": training.as_dict(),
            "evaluation": None if evaluation is None else evaluation.as_dict(),
        }
    )
    context.state[PENDING_META] = ConfigRecord(
        {
            "run_id": instruction.run_id,
            "round": instruction.server_round,
            "attempt": instruction.secagg_attempt,
            "reports": reports,
        }
    )


def masked_reply(
    context: Context,
    session: SecAggHospital,
    instruction: RoundInstruction,
    update: np.ndarray,
    weight: int,
) -> RecordDict:
    """Mask `update` × `weight` for this attempt and save the session."""
    server_round, attempt = instruction.server_round, instruction.secagg_attempt
    upload = session.mask_update(update, weight, server_round, attempt)
    save_session(context, session, instruction.run_id)
    return to_records(upload.to_dict(), SECAGG_UPLOAD)


def unmask(
    context: Context, content: RecordDict, journal: SecAggJournal, identity: HospitalIdentity
) -> RecordDict:
    """Answer an unmask request (refusing inconsistent ones, and any whose survivors did not
    all confirm our roster), save the session and journal the answered attempt before the
    answer is returned."""
    request = UnmaskRequest.from_dict(from_records(content, SECAGG_UNMASK))
    session = load_session(context, journal, request.run_id, identity)
    response = session.unmask(request)
    save_session(context, session, request.run_id)
    run = journal.load(request.run_id)
    server_round = request.round_number
    run.answered[server_round] = max(run.answered_attempt(server_round), request.attempt)
    journal.save(request.run_id, run)
    # The kept update can never be re-masked now (see `reusable_update`): drop it, so the
    # Context (which travels with every message) no longer carries a model-sized vector.
    meta = context.state.config_records.get(PENDING_META)
    kept_for = None if meta is None else (int(meta["round"]), int(meta["attempt"]))
    if kept_for is not None and kept_for <= (server_round, request.attempt):
        _forget_update(context)
    return to_records(response.to_dict(), SECAGG_UNMASK)

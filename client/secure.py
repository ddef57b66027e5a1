"""The hospital's side of secure aggregation, on the ClientApp's persistent context state.

Setup (once per run) creates fresh X25519 keys and advertises them; each training reply
carries only the masked update; an unmask request is answered from the saved session. The
trained update is kept until the round completes so a retried attempt re-masks it without
training (and spending privacy) again.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, RecordDict

from medfed.shared.errors import SecureAggregationError
from medfed.shared.hospital_report import EvaluationReport, TrainingReport
from medfed.shared.protocol import SECAGG_ROSTER, SECAGG_SETUP, SECAGG_UNMASK, SECAGG_UPLOAD
from medfed.shared.secagg import Roster, SecAggHospital, SecureAggregationConfig, UnmaskRequest
from medfed.shared.secagg.records import from_records, to_records

SESSION = "medfed.secagg.session"
PENDING_UPDATE, PENDING_META = "medfed.secagg.pending.update", "medfed.secagg.pending.meta"


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__bytes__"}:
            return base64.b64decode(value["__bytes__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def save_session(context: Context, session: SecAggHospital) -> None:
    blob = json.dumps(_encode(session.state_dict())).encode()
    context.state[SESSION] = ConfigRecord({"state": blob})


def load_session(context: Context) -> SecAggHospital:
    """The hospital's session of this run.

    Raises:
        SecureAggregationError: no setup happened in this run (the coordinator skipped it).
    """
    record = context.state.config_records.get(SESSION)
    if record is None:
        raise SecureAggregationError("no secure-aggregation setup for this run; expected one first")
    return SecAggHospital.from_state_dict(_decode(json.loads(bytes(record["state"]))))


def setup(context: Context, config: SecureAggregationConfig) -> RecordDict:
    """Fresh keys for this run; the reply advertises the public halves."""
    session = SecAggHospital(context.node_id, config)
    save_session(context, session)
    context.state.array_records.pop(PENDING_UPDATE, None)
    return to_records(session.advertise().to_dict(), SECAGG_SETUP)


def flatten_update(new: dict[str, torch.Tensor], old: dict[str, torch.Tensor]) -> np.ndarray:
    """new − old, flattened in the global model's key order (float64)."""
    return np.concatenate([(new[k].double() - old[k].double()).reshape(-1).numpy() for k in old])


def pending_update(
    context: Context, server_round: int
) -> tuple[np.ndarray, TrainingReport, EvaluationReport | None] | None:
    """The update trained for `server_round` and its reports, if a retry re-asks for it."""
    arrays = context.state.array_records.get(PENDING_UPDATE)
    meta = context.state.config_records.get(PENDING_META)
    if arrays is None or meta is None or int(meta["round"]) != server_round:
        return None
    reports = json.loads(str(meta["reports"]))
    evaluation = reports["evaluation"]
    return (
        arrays["update"].numpy(),
        TrainingReport(**reports["training"]),
        None if evaluation is None else EvaluationReport(**evaluation),
    )


def keep_update(
    context: Context,
    server_round: int,
    update: np.ndarray,
    training: TrainingReport,
    evaluation: EvaluationReport | None,
) -> None:
    """Remember this round's update so a retried attempt re-masks it instead of retraining."""
    context.state[PENDING_UPDATE] = ArrayRecord({"update": Array(update)})
    reports = json.dumps(
        {
            "training": training.as_dict(),
            "evaluation": None if evaluation is None else evaluation.as_dict(),
        }
    )
    context.state[PENDING_META] = ConfigRecord({"round": server_round, "reports": reports})


def masked_reply(
    context: Context,
    content: RecordDict,
    update: np.ndarray,
    weight: int,
    server_round: int,
    attempt: int,
) -> RecordDict:
    """Join the roster (first round), mask `update` × `weight`, save the session."""
    session = load_session(context)
    session.join(Roster.from_dict(from_records(content, SECAGG_ROSTER)))
    upload = session.mask_update(update, weight, server_round, attempt)
    save_session(context, session)
    return to_records(upload.to_dict(), SECAGG_UPLOAD)


def unmask(context: Context, content: RecordDict) -> RecordDict:
    """Answer an unmask request (refusing inconsistent ones) and save the session."""
    session = load_session(context)
    response = session.unmask(UnmaskRequest.from_dict(from_records(content, SECAGG_UNMASK)))
    save_session(context, session)
    return to_records(response.to_dict(), SECAGG_UNMASK)

"""Sorting hospital replies: accepted updates, refusals, errors, rejected updates."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ArrayRecord, Message, MessageType, Metadata, MetricRecord, RecordDict

from medfed.server.identities import HospitalIdentities
from medfed.shared.errors import ProtocolError
from medfed.shared.hospital_report import EvaluationReport, TrainingReport
from medfed.shared.protocol import (
    ARRAYS,
    EVALUATION,
    OUTCOME,
    SECAGG_UPLOAD,
    TRAINING,
    WEIGHT_KEY,
    Outcome,
)

log = logging.getLogger("medfed.server")


@dataclass
class SortedReplies:
    """One round's replies by kind; `updates` are the accepted replies, trimmed in place to
    the update and its weight for a Flower strategy."""

    updates: list[Message] = field(default_factory=list)
    evaluation: dict[str, dict[str, float]] = field(default_factory=dict)
    training: dict[str, dict[str, float]] = field(default_factory=dict)
    refused: dict[str, Outcome] = field(default_factory=dict)
    training_refused: dict[str, dict[str, float]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)  # node id → its bound hospital
    identity: dict[str, str] = field(default_factory=dict)  # hospital → the name it claimed
    uploads: dict[int, RecordDict] = field(default_factory=dict)  # masked (secure aggregation)


def as_reply(content: RecordDict, node: int, run_id: int = 0) -> Message:
    """A reply-shaped Message holding `content` from `node`, for tests and benchmarks that
    stand in for hospitals without a grid (the coordinator itself never makes one)."""
    metadata = Metadata(
        run_id=run_id,
        message_id="",
        src_node_id=node,
        dst_node_id=0,
        reply_to_message_id="",
        group_id="",
        created_at=time.time(),
        ttl=3600.0,
        message_type=MessageType.TRAIN,
    )
    return Message(metadata=metadata, content=content)


def update_problem(
    update: ArrayRecord, reference: ArrayRecord, max_norm: float | None = None
) -> str | None:
    """Why an update cannot be aggregated (keys, shapes, non-finite values, an L2 distance
    from the global model above `max_norm`), or None."""
    if set(update.keys()) != set(reference.keys()):
        return "its parameter names differ from the global model's"
    squared = 0.0
    for key, array in update.items():
        values, expected = array.numpy(), reference[key].numpy()
        if values.shape != expected.shape:
            return f"parameter '{key}' has shape {values.shape}, expected {expected.shape}"
        if not np.isfinite(values).all():
            return f"parameter '{key}' holds NaN or Inf"
        squared += float(np.sum(np.square(values.astype(np.float64) - expected)))
    norm = squared**0.5
    if max_norm is not None and norm > max_norm:
        return (
            f"its L2 distance from the global model is {norm:.4g}, above "
            f"strategy.max_update_norm = {max_norm:g}"
        )
    return None


def _reports(content: RecordDict) -> tuple[dict, dict | None]:
    """The typed training and evaluation reports of a reply, as plain dicts.

    Raises:
        ProtocolError: a report with an undeclared field or a value of the wrong type.
    """
    training: dict = {}
    if TRAINING in content.config_records:
        training = TrainingReport.from_record(content.config_records[TRAINING]).as_dict()
    evaluation = None
    if EVALUATION in content.config_records:
        evaluation = EvaluationReport.from_record(content.config_records[EVALUATION]).metrics()
    return training, evaluation


def sort_replies(
    replies: list[Message],
    reference: ArrayRecord,
    identities: HospitalIdentities,
    max_update_norm: float | None = None,
) -> SortedReplies:
    """Classify replies, each filed under its node's bound name (`identities`), never the
    name it claims; malformed or oversized ones are recorded as failures, never raised."""
    result = SortedReplies()
    for reply in replies:
        node = reply.metadata.src_node_id
        if reply.has_error():
            result.failed[f"node {node}"] = f"no reply: {reply.error.reason}"
            continue
        content = reply.content
        if OUTCOME not in content.config_records:
            result.failed[f"node {node}"] = "reply without an outcome record"
            continue
        outcome = Outcome.from_record(content.config_records[OUTCOME])
        attribution = identities.attribute(node, outcome.hospital)
        if attribution.name is None:
            log.warning("reply from node %s ignored: %s", node, attribution.finding)
            result.failed[f"node {node}"] = f"reply ignored: {attribution.finding}"
            continue
        hospital = attribution.name
        result.names[node] = hospital
        if attribution.finding:
            result.identity[hospital] = attribution.finding
        try:
            training, evaluation = _reports(content)
        except ProtocolError as error:
            result.failed[hospital] = f"malformed reply: {error}"
            continue
        if outcome.status == "refused":
            result.refused[hospital] = outcome
            if training:
                result.training_refused[hospital] = training
            continue
        if outcome.status != "ok":
            result.failed[hospital] = f"{outcome.code}: {outcome.message}"
            continue
        if evaluation is not None:
            result.evaluation[hospital] = evaluation
        if SECAGG_UPLOAD in content.config_records:
            result.uploads[node] = content
            result.training[hospital] = training
            continue
        if ARRAYS not in content.array_records:
            continue  # evaluate-only reply
        problem = update_problem(content.array_records[ARRAYS], reference, max_update_norm)
        if problem is None and training.get("num_examples", 0) <= 0:
            problem = "its 'num_examples' is not positive"
        if problem is not None:
            log.warning("update from %s rejected: %s", hospital, problem)
            result.failed[hospital] = f"update rejected: {problem}"
            continue
        result.training[hospital] = training
        # The reply itself, trimmed to what a Flower strategy aggregates (its reports are read).
        reply.content = RecordDict(
            {
                ARRAYS: content.array_records[ARRAYS],
                "metrics": MetricRecord({WEIGHT_KEY: training["num_examples"]}),
            }
        )
        result.updates.append(reply)
    return result

"""The hospital's answers to coordinator messages, and the Flower ClientApp that gives them.

`answer` turns one message's content into the reply's content: the simulation's ClientApp
calls it in-process; a deployed hospital runs the same app (`medfed.client.deployed_app`) in
forks of its warm executor. Every failure becomes a typed outcome in the reply (code + safe
message); tracebacks stay in the hospital's log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp

from medfed.client import secure
from medfed.client.hospital import HospitalSettings, RoundResult, evaluate_round, train_round
from medfed.client.replay import PLAIN, RoundMemory, request_digest
from medfed.client.secagg_journal import SecAggJournal
from medfed.client.secagg_session import identity_of
from medfed.shared.data.base import HospitalData
from medfed.shared.errors import (
    MedfedError,
    PrivacyBudgetExceeded,
    ProtocolError,
    SecureAggregationRefused,
)
from medfed.shared.hospital_report import TrainingReport
from medfed.shared.instruction import RoundInstruction
from medfed.shared.protocol import (
    ARRAYS,
    CONFIG,
    SECAGG_ROSTER,
    SECAGG_SETUP,
    SECAGG_UNMASK,
    Outcome,
    arrays_to_state,
    reply_content,
)

log = logging.getLogger("medfed.client")

HospitalLoader = Callable[[Context], tuple[HospitalData, HospitalSettings]]
Handler = Callable[[RecordDict, Context, HospitalData, HospitalSettings], RecordDict]


def _instruction_and_weights(content: RecordDict) -> tuple[RoundInstruction, dict]:
    if CONFIG not in content.config_records or ARRAYS not in content.array_records:
        raise ProtocolError("coordinator message lacks its 'config' or 'arrays' record")
    instruction = RoundInstruction.from_record(content.config_records[CONFIG])
    return instruction, arrays_to_state(content.array_records[ARRAYS])


def refusal(name: str, error: MedfedError) -> RecordDict:
    """The reply content for a typed failure (budget figures included for a refusal)."""
    spent = None
    if isinstance(error, PrivacyBudgetExceeded):
        spent = TrainingReport(epsilon=error.spent_epsilon, max_epsilon=error.max_epsilon)
    return reply_content(Outcome.from_error(name, error), training=spent)


def _trained(
    data: HospitalData,
    settings: HospitalSettings,
    instruction: RoundInstruction,
    weights: dict,
) -> RoundResult:
    """A plain round's result: the one already released for an identical plain request (a
    resumed coordinator re-sending it), else freshly trained under the ledger."""
    memory = RoundMemory(settings.ledger_path.with_suffix(".rounds"))
    digest = request_digest(instruction, weights, PLAIN)
    result = memory.recall(instruction.run_id, digest)
    if result is None:
        result = train_round(data, settings, instruction, weights)
        memory.remember(instruction.run_id, digest, result)
    return result


def journal_of(settings: HospitalSettings) -> SecAggJournal:
    """The hospital's secure-aggregation journal, beside its ledger."""
    return SecAggJournal(settings.ledger_path.with_suffix(".secagg"))


def _secure_training(
    content: RecordDict, context: Context, data: HospitalData, settings: HospitalSettings
) -> RecordDict:
    """Train (or re-mask this round's update on a retried attempt, while that is safe) and
    reply masked.

    A masked round never goes through the round memory: its update is never released in
    plaintext, not even to a later plain request for the same round (that one trains afresh).
    """
    instruction, weights = _instruction_and_weights(content)
    journal = journal_of(settings)
    identity = identity_of(settings)
    session = secure.join(context, content, instruction, journal, identity)
    kept = None
    if instruction.secagg_attempt > 0:
        kept = secure.reusable_update(
            context, journal, instruction.run_id, instruction.server_round
        )
    if kept is None:
        result = train_round(data, settings, instruction, weights)
        update = secure.flatten_update(result.state_dict, weights)
        training, evaluation = result.training, result.evaluation
        secure.keep_update(context, instruction, update, training, evaluation)
    else:
        update, training, evaluation = kept
    weight = int(training.num_examples or 1)  # the released (DP) size, a whole number
    masked = secure.masked_reply(context, session, instruction, update, weight)
    reply = reply_content(Outcome(settings.name, "ok"), None, training, evaluation)
    for name, record in masked.items():
        reply[name] = record
    return reply


def _train(
    content: RecordDict, context: Context, data: HospitalData, settings: HospitalSettings
) -> RecordDict:
    """A masked reply to a request with a roster; a plain one only if this hospital's own
    `secure_aggregation.enabled` is false (the coordinator's word does not decide)."""
    if SECAGG_ROSTER in content.config_records:
        return _secure_training(content, context, data, settings)
    if settings.secure_aggregation.enabled:
        raise SecureAggregationRefused(
            f"hospital '{settings.name}': the training request carries no secure-aggregation "
            "roster, and this hospital's secure_aggregation.enabled = true; it releases only "
            "masked updates (or its operator sets [secure_aggregation] enabled = false)",
            code="secure_aggregation_required",
        )
    instruction, weights = _instruction_and_weights(content)
    result = _trained(data, settings, instruction, weights)
    outcome = Outcome(settings.name, "ok")
    return reply_content(outcome, result.state_dict, result.training, result.evaluation)


def _evaluate(
    content: RecordDict, _context: Context, data: HospitalData, settings: HospitalSettings
) -> RecordDict:
    instruction, weights = _instruction_and_weights(content)
    evaluation = evaluate_round(data, settings, instruction, weights)
    return reply_content(Outcome(settings.name, "ok"), evaluation=evaluation)


def _secure_aggregation(
    content: RecordDict, context: Context, _data: HospitalData, settings: HospitalSettings
) -> RecordDict:
    journal = journal_of(settings)
    if SECAGG_SETUP in content.config_records:
        records = secure.setup(context, settings, content, journal)
    elif SECAGG_UNMASK in content.config_records:
        records = secure.unmask(context, content, journal, identity_of(settings))
    else:
        raise ProtocolError("query is neither a secure-aggregation setup nor an unmask")
    reply = reply_content(Outcome(settings.name, "ok"))
    for name, record in records.items():
        reply[name] = record
    return reply


HANDLERS: dict[str, Handler] = {
    "train": _train,
    "evaluate": _evaluate,
    "query": _secure_aggregation,
}


def answer(
    message_type: str, content: RecordDict, context: Context, load_hospital: HospitalLoader
) -> RecordDict:
    """The reply content to one coordinator message; never raises."""
    name = str(context.node_config.get("name", f"node {context.node_id}"))
    try:
        data, settings = load_hospital(context)
        name = settings.name
        handler = HANDLERS.get(message_type.split(".")[0])
        if handler is None:
            raise ProtocolError(f"unsupported message type '{message_type}'")
        return handler(content, context, data, settings)
    except MedfedError as error:
        log.warning("hospital %s: %s", name, error)
        return refusal(name, error)
    except Exception:  # noqa: BLE001 - a hospital never crashes on a coordinator message
        log.exception("hospital %s: unexpected failure", name)
        message = "the hospital failed to process the round; see its log"
        return reply_content(Outcome(name, "error", "internal_error", message))


def build_client_app(load_hospital: HospitalLoader) -> ClientApp:
    """A ClientApp whose hospital data and settings come from `load_hospital(context)`."""
    app = ClientApp()

    def reply(msg: Message, context: Context) -> Message:
        content = answer(msg.metadata.message_type, msg.content, context, load_hospital)
        return Message(content, reply_to=msg)

    app.train()(reply)
    app.evaluate()(reply)
    app.query()(reply)
    return app

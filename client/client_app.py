"""The hospital's Flower ClientApp: Message in → plain function call → Message out.

Every failure becomes a typed outcome in the reply (code + safe message); tracebacks stay in
the hospital's log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp

from medfed.client import secure
from medfed.client.hospital import HospitalSettings, evaluate, model_for, train_round
from medfed.shared.data.base import HospitalData
from medfed.shared.errors import MedfedError, PrivacyBudgetExceeded, ProtocolError
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


def _instruction_and_weights(msg: Message) -> tuple[RoundInstruction, dict]:
    if CONFIG not in msg.content.config_records or ARRAYS not in msg.content.array_records:
        raise ProtocolError("coordinator message lacks its 'config' or 'arrays' record")
    instruction = RoundInstruction.from_record(msg.content.config_records[CONFIG])
    return instruction, arrays_to_state(msg.content.array_records[ARRAYS])


def _refusal(msg: Message, name: str, error: MedfedError) -> Message:
    spent = None
    if isinstance(error, PrivacyBudgetExceeded):
        spent = {"epsilon": error.spent_epsilon, "max_epsilon": error.max_epsilon}
    content = reply_content(Outcome.from_error(name, error), train_metrics=spent)
    return Message(content, reply_to=msg)


def _answer(msg: Message, name: str, work: Callable[[], Message]) -> Message:
    try:
        return work()
    except MedfedError as error:
        log.warning("hospital %s: %s", name, error)
        return _refusal(msg, name, error)
    except Exception:  # noqa: BLE001 - a hospital never crashes on a coordinator message
        log.exception("hospital %s: unexpected failure", name)
        message = "the hospital failed to process the round; see its log"
        outcome = Outcome(name, "error", "internal_error", message)
        return Message(reply_content(outcome), reply_to=msg)


def _secure_training(
    msg: Message, context: Context, data: HospitalData, settings: HospitalSettings
) -> RecordDict:
    """Train (or reuse this round's update on a retried attempt) and reply masked."""
    instruction, weights = _instruction_and_weights(msg)
    attempt, server_round = instruction.secagg_attempt, instruction.server_round
    kept = secure.pending_update(context, server_round) if attempt > 0 else None
    if kept is None:
        result = train_round(data, settings, instruction, weights)
        update = secure.flatten_update(result.state_dict, weights)
        train_metrics, evaluation = result.train_metrics, result.evaluation
        secure.keep_update(context, server_round, update, train_metrics, evaluation)
    else:
        update, train_metrics, evaluation = kept
    masked = secure.masked_reply(
        context, msg.content, update, data.num_train, server_round, attempt
    )
    content = reply_content(Outcome(settings.name, "ok"), None, train_metrics, evaluation)
    for name, record in masked.items():
        content[name] = record
    return content


def build_client_app(load_hospital: HospitalLoader) -> ClientApp:
    """A ClientApp whose hospital data and settings come from `load_hospital(context)`."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        data, settings = load_hospital(context)

        def work() -> Message:
            if SECAGG_ROSTER in msg.content.config_records:
                return Message(_secure_training(msg, context, data, settings), reply_to=msg)
            instruction, weights = _instruction_and_weights(msg)
            result = train_round(data, settings, instruction, weights)
            outcome = Outcome(settings.name, "ok")
            content = reply_content(
                outcome, result.state_dict, result.train_metrics, result.evaluation
            )
            return Message(content, reply_to=msg)

        return _answer(msg, settings.name, work)

    @app.evaluate()
    def evaluate_final(msg: Message, context: Context) -> Message:
        data, settings = load_hospital(context)

        def work() -> Message:
            instruction, weights = _instruction_and_weights(msg)
            metrics = evaluate(model_for(instruction, data, weights), data, settings.torch_device())
            content = reply_content(Outcome(settings.name, "ok"), evaluation=metrics)
            return Message(content, reply_to=msg)

        return _answer(msg, settings.name, work)

    @app.query()
    def secure_aggregation(msg: Message, context: Context) -> Message:
        data, settings = load_hospital(context)

        def work() -> Message:
            if SECAGG_SETUP in msg.content.config_records:
                records = secure.setup(context, settings.secure_aggregation)
            elif SECAGG_UNMASK in msg.content.config_records:
                records = secure.unmask(context, msg.content)
            else:
                raise ProtocolError("query is neither a secure-aggregation setup nor an unmask")
            content = reply_content(Outcome(settings.name, "ok"))
            for name, record in records.items():
                content[name] = record
            return Message(content, reply_to=msg)

        return _answer(msg, settings.name, work)

    return app

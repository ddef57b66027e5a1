"""The hospital's Flower ClientApp: Message in → plain function call → Message out.

Every failure becomes a typed outcome in the reply (code + safe message); tracebacks stay in
the hospital's log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp
from medfed.client.hospital import HospitalSettings, PrivacyState, evaluate, model_for, train_round
from medfed.shared.data.base import HospitalData
from medfed.shared.errors import MedfedError, ProtocolError
from medfed.shared.instruction import RoundInstruction
from medfed.shared.protocol import ARRAYS, CONFIG, Outcome, arrays_to_state, reply_content

log = logging.getLogger("medfed.client")
PRIVACY_STATE = "medfed.privacy"

HospitalLoader = Callable[[Context], tuple[HospitalData, HospitalSettings]]


def _instruction_and_weights(msg: Message) -> tuple[RoundInstruction, dict]:
    if CONFIG not in msg.content.config_records or ARRAYS not in msg.content.array_records:
        raise ProtocolError("coordinator message lacks its 'config' or 'arrays' record")
    return RoundInstruction.from_record(msg.content.config_records[CONFIG]), arrays_to_state(
        msg.content.array_records[ARRAYS]
    )


def _privacy_state(context: Context) -> PrivacyState:
    record = context.state.config_records.get(PRIVACY_STATE)
    return PrivacyState.from_state_dict(dict(record)) if record is not None else PrivacyState()


def _answer(msg: Message, name: str, work: Callable[[], Message]) -> Message:
    try:
        return work()
    except MedfedError as error:
        log.warning("hospital %s: %s", name, error)
        return Message(reply_content(Outcome.from_error(name, error)), reply_to=msg)
    except Exception:  # noqa: BLE001 - a hospital never crashes on a coordinator message
        log.exception("hospital %s: unexpected failure", name)
        outcome = Outcome(
            name, "error", "internal_error", "the hospital failed to process the round; see its log"
        )
        return Message(reply_content(outcome), reply_to=msg)


def build_client_app(load_hospital: HospitalLoader) -> ClientApp:
    """A ClientApp whose hospital data and settings come from `load_hospital(context)`."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        data, settings = load_hospital(context)

        def work() -> Message:
            instruction, weights = _instruction_and_weights(msg)
            privacy = _privacy_state(context)
            try:
                result = train_round(data, settings, instruction, weights, privacy, context.run_id)
            finally:  # whatever was spent stays counted, even if the round fails later
                context.state[PRIVACY_STATE] = ConfigRecord(privacy.state_dict())
            outcome = Outcome(settings.name, "ok")
            return Message(
                reply_content(outcome, result.state_dict, result.train_metrics, result.evaluation),
                reply_to=msg,
            )

        return _answer(msg, settings.name, work)

    @app.evaluate()
    def evaluate_final(msg: Message, context: Context) -> Message:
        data, settings = load_hospital(context)

        def work() -> Message:
            instruction, weights = _instruction_and_weights(msg)
            model = model_for(instruction, data, weights)
            metrics = evaluate(model, data, settings.torch_device())
            return Message(
                reply_content(Outcome(settings.name, "ok"), evaluation=metrics), reply_to=msg
            )

        return _answer(msg, settings.name, work)

    return app

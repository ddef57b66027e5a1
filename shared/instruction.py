"""The coordinator's per-round instruction, as sent in a message's ConfigRecord.

Keys are the run-config names (`training.batch_size`), plus Flower's `server-round` and
FedProx's `proximal-mu`. The hospital validates every field before acting on it.
"""

from __future__ import annotations

from typing import Literal

from flwr.app import ConfigRecord
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medfed.shared.config.models import RunConfig
from medfed.shared.errors import ProtocolError


class RoundInstruction(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    server_round: int = Field(ge=1, alias="server-round")
    run_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", alias="run-id")
    rounds: int = Field(ge=1)
    seed: int = 0
    model_name: str = Field(alias="model.name")
    hidden_size: int = Field(ge=1, le=4096, alias="model.hidden_size")
    num_layers: int = Field(ge=1, le=16, alias="model.num_layers")
    local_epochs: int = Field(ge=1, le=1000, alias="training.local_epochs")
    batch_size: int = Field(ge=1, alias="training.batch_size")
    learning_rate: float = Field(gt=0, le=100, alias="training.learning_rate")
    optimizer: Literal["sgd", "adam"] = Field(alias="training.optimizer")
    momentum: float = Field(ge=0, lt=1, alias="training.momentum")
    class_weighted: bool = Field(alias="training.class_weighted")
    # Not ghost: its second backward pass cannot drop a record whose gradient is not finite.
    grad_sample_mode: Literal["auto", "hooks"] = Field(alias="training.grad_sample_mode")
    target_epsilon: float = Field(gt=0, alias="privacy.target_epsilon")
    max_grad_norm: float = Field(gt=0, alias="privacy.max_grad_norm")
    proximal_mu: float = Field(default=0.0, ge=0, alias="proximal-mu")
    secagg_attempt: int = Field(default=0, ge=0, le=1000, alias="secagg-attempt")

    @classmethod
    def from_record(cls, record: ConfigRecord) -> RoundInstruction:
        """Parse a coordinator's ConfigRecord.

        Raises:
            ProtocolError: a key is missing or has a bad value (named in the message).
        """
        try:
            return cls.model_validate(dict(record))
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            raise ProtocolError(f"coordinator instruction: '{key}': {first['msg']}") from None


def instruction_record(run: RunConfig, run_id: str) -> ConfigRecord:
    """The instruction fields of `run` (the strategy adds `server-round`/`proximal-mu`)."""
    return ConfigRecord(
        {
            "run-id": run_id,
            "rounds": run.rounds,
            "seed": run.seed,
            "model.name": run.model.name,
            "model.hidden_size": run.model.hidden_size,
            "model.num_layers": run.model.num_layers,
            "training.local_epochs": run.training.local_epochs,
            "training.batch_size": run.training.batch_size,
            "training.learning_rate": run.training.learning_rate,
            "training.optimizer": run.training.optimizer,
            "training.momentum": run.training.momentum,
            "training.class_weighted": run.training.class_weighted,
            "training.grad_sample_mode": run.training.grad_sample_mode,
            "privacy.target_epsilon": run.privacy.target_epsilon,
            "privacy.max_grad_norm": run.privacy.max_grad_norm,
        }
    )

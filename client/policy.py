"""The hospital's policy guard: what a coordinator may ask of this hospital, checked per message.

`[policy]` in hospital.toml; every instruction is checked before any data is touched, and a
breach is a `PolicyViolation` (a refusal the coordinator records, never a crash). Limits are
facts the hospital can check itself (its own ledger, the instruction's own numbers), never
labels the coordinator chooses: a new run id does not reset any allowance.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from medfed.shared.errors import PolicyViolation
from medfed.shared.instruction import RoundInstruction


class HospitalPolicy(BaseModel):
    """Limits a hospital sets for every run; `None` / empty means no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_models: tuple[str, ...] = Field(
        default=(), description="model names this hospital trains; empty = any"
    )
    max_local_epochs: int | None = Field(default=None, ge=1)
    min_noise_multiplier: float | None = Field(default=None, ge=0)
    max_epsilon_per_window: float | None = Field(
        default=None,
        gt=0,
        description="ε the training split may spend within any `window_days` (all runs)",
    )
    window_days: float = Field(default=30.0, gt=0)
    max_rounds: int | None = Field(default=None, ge=1)


def check_instruction(policy: HospitalPolicy, instruction: RoundInstruction, hospital: str) -> None:
    """Refuse an instruction that breaks `policy`.

    Raises:
        PolicyViolation: the first breached limit, naming the policy key and both values.
    """
    where = f"hospital '{hospital}' policy"
    if instruction.server_round > instruction.rounds:
        raise PolicyViolation(
            f"{where}: server round {instruction.server_round} is past the run's "
            f"{instruction.rounds} planned rounds (the noise was calibrated for those)"
        )
    if policy.allowed_models and instruction.model_name not in policy.allowed_models:
        allowed = ", ".join(policy.allowed_models)
        raise PolicyViolation(
            f"{where}: model '{instruction.model_name}' is not in allowed_models ({allowed})"
        )
    if policy.max_local_epochs is not None and instruction.local_epochs > policy.max_local_epochs:
        raise PolicyViolation(
            f"{where}: local_epochs = {instruction.local_epochs} exceeds max_local_epochs = "
            f"{policy.max_local_epochs}"
        )
    if policy.max_rounds is not None and instruction.rounds > policy.max_rounds:
        raise PolicyViolation(
            f"{where}: the run plans {instruction.rounds} rounds, more than max_rounds = "
            f"{policy.max_rounds}"
        )
    window = policy.max_epsilon_per_window
    if window is not None and instruction.target_epsilon > window:
        raise PolicyViolation(
            f"{where}: target_epsilon = {instruction.target_epsilon} exceeds "
            f"max_epsilon_per_window = {window}"
        )


def check_window(policy: HospitalPolicy, window_epsilon: float, hospital: str) -> None:
    """Refuse a round after which the training split's ε over the last `window_days`
    (every entry in that window composed with the planned round) would pass the cap.

    Raises:
        PolicyViolation: `window_epsilon` > `max_epsilon_per_window`.
    """
    cap = policy.max_epsilon_per_window
    if cap is not None and window_epsilon > cap:
        raise PolicyViolation(
            f"hospital '{hospital}' policy: this round would bring ε over the last "
            f"{policy.window_days:g} days to {window_epsilon:.4f}, above "
            f"max_epsilon_per_window = {cap} (wait, or ask for a smaller target_epsilon)"
        )


def check_noise(policy: HospitalPolicy, noise_multiplier: float, hospital: str) -> None:
    """Refuse a round whose calibrated noise is below the policy's floor.

    Raises:
        PolicyViolation: `noise_multiplier` < `min_noise_multiplier`.
    """
    floor = policy.min_noise_multiplier
    if floor is not None and noise_multiplier < floor:
        raise PolicyViolation(
            f"hospital '{hospital}' policy: the run's budget needs noise_multiplier = "
            f"{noise_multiplier:.4f}, below min_noise_multiplier = {floor} "
            "(ask for a smaller target_epsilon or fewer rounds/epochs)"
        )

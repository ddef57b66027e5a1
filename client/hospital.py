"""One hospital's round: release what it must under DP, plan within budget, train.

Plain functions over plain data, so tests call them without Flower. The round follows one
shape: under the ledger's exclusive lock the hospital plans (`medfed.client.planning`, pure)
and commits each release to its signed ledger before drawing on the data for it; then it
trains outside the lock and reports (`medfed.shared.hospital_report`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from medfed.client.counts import ReleasedCounts, exact_counts
from medfed.client.planning import plan_training, window_epsilon
from medfed.client.policy import HospitalPolicy, check_instruction, check_noise, check_window
from medfed.client.randomness import SecureRandom
from medfed.client.releases import evaluate_privately, exact_evaluation, released_counts
from medfed.client.trainer import LocalTraining, train_locally
from medfed.shared.config.models import ModelConfig
from medfed.shared.data.base import HospitalData
from medfed.shared.errors import EvaluationBudgetExceeded
from medfed.shared.hospital_report import EvaluationReport, TrainingReport
from medfed.shared.instruction import RoundInstruction
from medfed.shared.models import model_spec
from medfed.shared.models.fit import model_with_weights
from medfed.shared.privacy.calibrate import NoiseCalibrator
from medfed.shared.privacy.ledger import PrivacyLedger
from medfed.shared.secagg.config import SecureAggregationConfig


@dataclass(frozen=True)
class HospitalSettings:
    """What the hospital decides for itself, whatever the coordinator asks."""

    name: str
    max_epsilon: float
    ledger_path: Path
    key_dir: Path
    delta: float = 1e-5
    accountant: str = "rdp"
    privacy_enabled: bool = True
    max_noise_multiplier: float = 20.0
    count_noise_multiplier: float = 10.0
    max_evaluation_epsilon: float = 3.0
    max_evaluations: int = 30
    device: str = "auto"
    secure_aggregation: SecureAggregationConfig = field(default_factory=SecureAggregationConfig)
    # This hospital's Ed25519 identity key and the federation's pinned peers file (SecAgg).
    identity_key: Path | None = None
    peers_file: Path | None = None
    policy: HospitalPolicy | None = None
    # The signed ledger head, kept apart from the ledger (default: beside the signing key).
    witness_path: Path | None = None
    # Simulation only: sampling and every DP noise drawn from a key derived from the run's seed
    # (reproducible, so not secret). A deployed hospital draws a fresh 256-bit key per release.
    seeded_noise: bool = False
    # Answers repeated noise-calibration questions from its cache: whoever builds settings per
    # message (a loader) passes its own long-lived one.
    calibrator: NoiseCalibrator = field(default_factory=NoiseCalibrator, compare=False, repr=False)

    def torch_device(self) -> torch.device:
        wants_cuda = self.device == "cuda" or (self.device == "auto" and torch.cuda.is_available())
        return torch.device("cuda" if wants_cuda else "cpu")

    def locked_ledger(self, fingerprint: str) -> AbstractContextManager[PrivacyLedger]:
        """The hospital's ledger, verified and exclusively locked for the `with` block."""
        witness = self.witness_path or self.key_dir / f"{self.ledger_path.stem}.head"
        return PrivacyLedger.locked(self.ledger_path, self.key_dir, witness, self.name, fingerprint)

    def randomness(
        self, instruction: RoundInstruction, fingerprint: str, purpose: str, sequence: int
    ) -> SecureRandom:
        """The cryptographic stream for one release (seeded only in simulations). `sequence`
        is the release's ledger position, so no two releases of a seeded run share a key."""
        if self.seeded_noise:
            if instruction.secagg_attempt:  # a retrained attempt must not repeat the update
                purpose = f"{purpose}/attempt {instruction.secagg_attempt}"
            parts = (instruction.seed, instruction.server_round, fingerprint, purpose, sequence)
            return SecureRandom.from_seed(*parts)  # not the run id: a seed reruns exactly
        return SecureRandom.fresh()


@dataclass(frozen=True)
class RoundResult:
    state_dict: dict[str, torch.Tensor]
    training: TrainingReport
    evaluation: EvaluationReport | None


def model_for(
    instruction: RoundInstruction, data: HospitalData, global_state: dict[str, torch.Tensor]
) -> torch.nn.Module:
    """The instructed architecture loaded with the coordinator's weights.

    Raises:
        ModelMismatch: the coordinator's model does not fit this hospital's data.
    """
    config = ModelConfig(
        name=instruction.model_name,
        hidden_size=instruction.hidden_size,
        num_layers=instruction.num_layers,
    )
    return model_with_weights(config, data.input_shape, data.num_classes, global_state)


def evaluate_round(
    data: HospitalData,
    settings: HospitalSettings,
    instruction: RoundInstruction,
    global_state: dict[str, torch.Tensor],
) -> EvaluationReport:
    """Score the coordinator's model on the test split (DP, within the hospital's cap).

    Raises:
        EvaluationBudgetExceeded, PolicyViolation, LedgerError.
    """
    if settings.policy is not None:
        check_instruction(settings.policy, instruction, settings.name)
    model = model_for(instruction, data, global_state)
    if not settings.privacy_enabled:
        return exact_evaluation(model, data, settings.torch_device())
    with settings.locked_ledger(data.fingerprint) as ledger:
        return evaluate_privately(ledger, model, data, settings, instruction)


def _local_training(instruction: RoundInstruction, counts: ReleasedCounts) -> LocalTraining:
    mode = instruction.grad_sample_mode
    return LocalTraining(
        local_epochs=instruction.local_epochs,
        batch_size=instruction.batch_size,
        learning_rate=instruction.learning_rate,
        optimizer=instruction.optimizer,
        momentum=instruction.momentum,
        class_weights=counts.class_weights() if instruction.class_weighted else None,
        proximal_mu=instruction.proximal_mu,
        grad_sample_mode=model_spec(instruction.model_name).grad_sample_mode
        if mode == "auto"
        else mode,
    )


def train_round(
    data: HospitalData,
    settings: HospitalSettings,
    instruction: RoundInstruction,
    global_state: dict[str, torch.Tensor],
) -> RoundResult:
    """Evaluate the received model (DP, while the hospital's cap allows), then train on it.

    Every release (label counts once per dataset, this evaluation, this round's DP-SGD steps)
    is signed into the ledger, fsync'd when the ledger's lock is released: before training
    starts and before anything leaves, so a crash can only over-count.

    Raises:
        PrivacyBudgetExceeded: the round would push ε over `settings.max_epsilon`.
        PolicyViolation: the instruction (or the noise it needs) breaks the hospital's policy.
        LedgerError: the hospital's ledger does not verify, or was rolled back.
        ModelMismatch: the instructed model does not fit this hospital's data.
    """
    if settings.policy is not None:
        check_instruction(settings.policy, instruction, settings.name)
    device = settings.torch_device()
    model = model_for(instruction, data, global_state)
    if not settings.privacy_enabled:
        return _train_without_privacy(model, data, settings, instruction)
    with settings.locked_ledger(data.fingerprint) as ledger:
        counts = released_counts(ledger, data, settings, instruction)
        plan = plan_training(settings, ledger, instruction, counts.size, data.fingerprint)
        if settings.policy is not None:
            check_noise(settings.policy, plan.noise.noise_multiplier, settings.name)
            window = window_epsilon(ledger, plan.ledger, settings.policy.window_days)
            check_window(settings.policy, window, settings.name)
        try:
            evaluation = evaluate_privately(ledger, model, data, settings, instruction)
        except EvaluationBudgetExceeded:
            evaluation = None  # training goes on; the reply says nothing about the test split
        entry = ledger.commit(plan.ledger)
        start = ledger.epsilon_before_run(instruction.run_id, settings.delta, settings.accountant)
        total_steps = sum(int(e["steps"]) for e in ledger.entries if e.get("type") == "round")
        test_epsilon = ledger.epsilon("test", settings.delta, settings.accountant)
    randomness = settings.randomness(instruction, data.fingerprint, "train", int(entry["seq"]))
    training = _local_training(instruction, counts)
    outcome = train_locally(
        model, data.x_train, data.y_train, training, plan.noise, [], device, randomness
    )
    counted = sum(n for _, _, n in outcome.history)  # Opacus's own count of this round
    if counted > entry["steps"]:  # cannot happen with planned Poisson steps; never under-count
        raise RuntimeError(f"took {counted} DP steps but the ledger holds {entry['steps']}")
    report = TrainingReport(
        num_examples=counts.size,
        steps=float(outcome.steps),
        epsilon=float(entry["epsilon_after"]),
        epsilon_at_run_start=start,
        max_epsilon=settings.max_epsilon,
        delta=settings.delta,
        accountant=settings.accountant,
        noise_multiplier=float(entry["noise_multiplier"]),
        max_grad_norm=float(entry["max_grad_norm"]),
        sample_rate=float(entry["sample_rate"]),
        total_steps=float(total_steps),
        evaluation_epsilon=test_epsilon,
        max_evaluation_epsilon=settings.max_evaluation_epsilon,
    )
    return RoundResult(outcome.state_dict, report, evaluation)


def _train_without_privacy(
    model: torch.nn.Module,
    data: HospitalData,
    settings: HospitalSettings,
    instruction: RoundInstruction,
) -> RoundResult:
    """privacy.enabled = false: exact counts and metrics, no ledger (the report flags it)."""
    device = settings.torch_device()
    evaluation = exact_evaluation(model, data, device)
    counts = ReleasedCounts(tuple(exact_counts(data.y_train, data.num_classes)))
    randomness = settings.randomness(instruction, data.fingerprint, "train", 0)
    outcome = train_locally(
        model,
        data.x_train,
        data.y_train,
        _local_training(instruction, counts),
        None,
        [],
        device,
        randomness,
    )
    report = TrainingReport(
        num_examples=float(data.num_train), steps=float(outcome.steps), privacy="off"
    )
    return RoundResult(outcome.state_dict, report, evaluation)

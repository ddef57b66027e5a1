"""Noise for a budget: the smallest σ whose steps keep ε at or under a target, found cheaply.

Each accountant evaluation is slow (Opacus's RDP series at sampling rates near 1 converges
slowly), so the search counts them. `NoiseCalibrator` answers a repeated question (the same
history, target, rate and steps) from its cache and starts a new search from a hint (the
previous round's σ, or the last σ it found): log ε is close to linear in log σ, so a secant
step in log-log space lands near the answer in two or three evaluations, safeguarded by a
bracket (a step outside it bisects). Every σ it returns was evaluated by the Opacus
accountant and lies within `tolerance` under the target: never above it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from medfed.shared.privacy import accounting

Epsilon = Callable[[Sequence[tuple[float, float, int]], float, str], float]
MAX_EVALUATIONS = 60  # a search that has not converged by then keeps its feasible end
DEFAULT_START = 1.0


@dataclass(frozen=True)
class Question:
    """Everything σ depends on: the cache key (history as tuples, so it hashes)."""

    history: tuple[tuple[float, float, int], ...]
    target_epsilon: float
    delta: float
    sample_rate: float
    steps: int
    accountant: str
    max_noise_multiplier: float
    tolerance: float


class NoiseCalibrator:
    """σ for a budget, with a cache keyed by every calibration input and a count of the
    accountant evaluations it made. Create one per process (a hospital's loader holds it) and
    pass it in; `epsilon` is the accountant (default: `accounting.epsilon_of`, Opacus, looked
    up at each call), injectable so tests can count calls."""

    def __init__(self, epsilon: Epsilon | None = None) -> None:
        self.epsilon = epsilon
        self.evaluations = 0
        self.cache: dict[Question, float] = {}
        self.last_sigma: float | None = None

    def epsilon_with(self, question: Question, sigma: float) -> float:
        """ε of `question`'s history plus its steps at `sigma` (one counted evaluation)."""
        self.evaluations += 1
        step = (sigma, question.sample_rate, question.steps)
        epsilon = self.epsilon or accounting.epsilon_of
        return epsilon([*question.history, step], question.delta, question.accountant)

    def noise_for(
        self,
        history: Sequence[tuple[float, float, int]],
        target_epsilon: float,
        delta: float,
        sample_rate: float,
        steps: int,
        accountant: str,
        max_noise_multiplier: float,
        tolerance: float = 0.005,
        keep: float | None = None,
    ) -> float | None:
        """Smallest σ (to `tolerance` in ε) such that `history` plus `steps` more steps at
        `sample_rate` stays at or under `target_epsilon`; None if even `max_noise_multiplier`
        overshoots. `keep` (the run's previous σ) is returned as it is when it still fits
        (one evaluation), else the search starts from it."""
        question = Question(
            tuple((float(s), float(q), int(n)) for s, q, n in history),
            float(target_epsilon),
            float(delta),
            float(sample_rate),
            int(steps),
            accountant,
            float(max_noise_multiplier),
            float(tolerance),
        )
        if keep is not None and keep > 0:
            if self.epsilon_with(question, keep) <= question.target_epsilon:
                return keep
        if question in self.cache:
            return self.cache[question]
        found = self._search(question, keep or self.last_sigma or DEFAULT_START)
        if found is not None:
            self.cache[question], self.last_sigma = found, found
        return found

    def _search(self, question: Question, start: float) -> float | None:
        target, tolerance = question.target_epsilon, question.tolerance
        aim = math.log(target - tolerance / 2)
        largest = question.max_noise_multiplier
        feasible: float | None = None  # smallest σ seen with ε ≤ target
        infeasible: float | None = None  # largest σ seen with ε > target
        previous: tuple[float, float] | None = None  # (log σ, log ε) of the last evaluation
        sigma = min(max(start, 1e-3), largest)
        for _ in range(MAX_EVALUATIONS):
            epsilon = self.epsilon_with(question, sigma)
            if epsilon <= target:
                if target - epsilon <= tolerance:
                    return sigma
                feasible = sigma if feasible is None else min(feasible, sigma)
            elif sigma >= largest:
                return None
            else:
                infeasible = sigma if infeasible is None else max(infeasible, sigma)
            sigma, previous = _next_sigma(sigma, epsilon, previous, aim), _logs(sigma, epsilon)
            if feasible is not None and infeasible is not None:
                if not infeasible < sigma < feasible:
                    sigma = math.sqrt(infeasible * feasible)  # bisect the bracket (log scale)
            elif feasible is not None:
                sigma = min(sigma, feasible / 2)
            elif infeasible is not None:
                sigma = min(max(sigma, infeasible * 2), largest)
        return feasible

    def state_dict(self) -> dict[str, Any]:
        """The cached answers (JSON-ready), the last σ found and the evaluation count."""
        entries = [
            {**vars(q), "history": [list(h) for h in q.history], "sigma": sigma}
            for q, sigma in self.cache.items()
        ]
        return {"entries": entries, "last_sigma": self.last_sigma, "evaluations": self.evaluations}

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Any], epsilon: Epsilon | None = None
    ) -> NoiseCalibrator:
        """A calibrator holding `state`'s answers; each is checked once with the accountant
        (a state file is not trusted to keep ε under its target)."""
        calibrator = cls(epsilon)
        for entry in state.get("entries", []):
            fields = {k: v for k, v in entry.items() if k != "sigma"}
            history = tuple((float(s), float(q), int(n)) for s, q, n in fields.pop("history"))
            question = Question(history=history, **fields)
            sigma = float(entry["sigma"])
            if calibrator.epsilon_with(question, sigma) <= question.target_epsilon:
                calibrator.cache[question] = sigma
        calibrator.last_sigma = state.get("last_sigma")
        calibrator.evaluations = 0
        return calibrator


def _logs(sigma: float, epsilon: float) -> tuple[float, float] | None:
    if epsilon > 0 and math.isfinite(epsilon):
        return math.log(sigma), math.log(epsilon)
    return None


def _next_sigma(
    sigma: float, epsilon: float, previous: tuple[float, float] | None, aim: float
) -> float:
    """A secant step towards log ε = `aim` through the last two points (slope −1, ε ∝ 1/σ,
    from a single point)."""
    here = _logs(sigma, epsilon)
    if here is None:
        return sigma * 4  # ε infinite: far too little noise
    slope = -1.0
    if previous is not None and previous[0] != here[0] and previous[1] != here[1]:
        slope = (here[1] - previous[1]) / (here[0] - previous[0])
    if slope >= 0:  # a noisy accountant (PRV) can look flat or rising locally
        slope = -1.0
    return math.exp(here[0] + (aim - here[1]) / slope)


def calibrate_noise(
    history: Sequence[tuple[float, float, int]],
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str,
    max_noise_multiplier: float,
    tolerance: float = 0.005,
) -> float | None:
    """One question to a fresh `NoiseCalibrator` (see `NoiseCalibrator.noise_for`)."""
    return NoiseCalibrator().noise_for(
        history,
        target_epsilon,
        delta,
        sample_rate,
        steps,
        accountant,
        max_noise_multiplier,
        tolerance,
    )

"""The plain-language meaning of the run's privacy guarantee, for the report's readers."""

from __future__ import annotations

import math

from medfed.server.report.schema import HospitalAudit


def guarantee_text(privacy_enabled: bool, hospitals: list[HospitalAudit]) -> list[str]:
    """Paragraphs explaining what ε and δ promise here, and what they do not cover."""
    if not privacy_enabled:
        return [
            "Differential privacy was switched off for this run (privacy.enabled = false): "
            "the hospitals' updates carry no formal privacy guarantee.",
            "Evaluation metrics on the hospitals' test splits were sent exactly: they carry no "
            "privacy guarantee either.",
        ]
    spent = [(h.epsilon, h.delta, h.name) for h in hospitals if h.epsilon is not None]
    paragraphs = [
        "Each hospital's training split is protected by record-level (ε, δ)-differential "
        "privacy under add/remove adjacency (one patient record added to or removed from the "
        "split): DP-SGD (Opacus) with Poisson sampling, per-example gradient clipping and "
        "Gaussian noise, after a one-time DP release of its label counts from which every "
        "size-dependent value is derived. Preprocessing uses only each record and public "
        "constants. For a hospital with guarantee (ε, δ), an observer of everything this "
        "hospital sent cannot tell, beyond a factor e^ε (plus probability δ), whether any one "
        "patient's record was in its training split. Smaller ε is stronger.",
        "Hospitals hold disjoint patients, so each patient's guarantee is their hospital's: "
        "the ε of different hospitals do not add up.",
        "ε is composed over every optimizer step the hospital has taken on this dataset, across "
        "rounds, runs and restarts, as recorded in its signed ledger: it is the dataset's "
        "lifetime spend, not only this run's. The budget (max_epsilon) bounds that lifetime "
        "spend.",
        "The test split is a second dataset with its own budget (max_evaluation_epsilon, "
        "reported as evaluation ε): the evaluation metrics in this report are DP releases of "
        "noised score histograms and losses, and each hospital caps how many models it scores. "
        "A patient is in one split only, so their guarantee is that split's ε. The split is a "
        "fixed function of each hospital's file (FLamby's for the UCI data): the guarantee is "
        "stated for the splits as they are.",
        'Every value a hospital sends is listed in "What the coordinator sees": each is a DP '
        "release or declared there with why it is acceptable.",
    ]
    if spent:
        epsilon, delta, name = max(spent, key=lambda item: item[0] or 0.0)
        delta_text = f" and δ = {delta:g}" if delta is not None else ""
        paragraphs.insert(
            1,
            f"The weakest guarantee in this run is {name}'s: ε = {epsilon:.6f}{delta_text}, "
            f"a factor e^ε = {math.exp(epsilon):.3f}.",
        )
    return paragraphs

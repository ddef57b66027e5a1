"""Evaluation metrics of a classifier: accuracy, AUROC, sensitivity, specificity, loss."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from sklearn.metrics import roc_auc_score

METRIC_KEYS = ("accuracy", "auroc", "sensitivity", "specificity", "loss")


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, loss: float
) -> dict[str, float]:
    """Metrics for `probabilities` (N×K) against integer `labels`.

    Binary: sensitivity/specificity of class 1 and AUROC of its score. K > 2: macro averages
    (one-vs-rest). AUROC is left out when the labels hold a single class (it is undefined).
    """
    num_classes = probabilities.shape[1]
    predictions = probabilities.argmax(axis=1)
    metrics = {"accuracy": float((predictions == labels).mean()), "loss": float(loss)}
    recalls, specificities = [], []
    for cls in range(1, 2) if num_classes == 2 else range(num_classes):
        positive, negative = labels == cls, labels != cls
        if positive.any():
            recalls.append(float((predictions[positive] == cls).mean()))
        if negative.any():
            specificities.append(float((predictions[negative] != cls).mean()))
    if recalls:
        metrics["sensitivity"] = float(np.mean(recalls))
    if specificities:
        metrics["specificity"] = float(np.mean(specificities))
    if len(np.unique(labels)) > 1:
        if num_classes == 2:
            metrics["auroc"] = float(roc_auc_score(labels, probabilities[:, 1]))
        elif len(np.unique(labels)) == num_classes:
            metrics["auroc"] = float(roc_auc_score(labels, probabilities, multi_class="ovr"))
    return metrics


def weighted_means(
    per_hospital: Mapping[str, Mapping[str, float]], weight_key: str = "num_examples"
) -> dict[str, float]:
    """Example-weighted mean of each metric over the hospitals that report it."""
    keys: Iterable[str] = sorted({k for m in per_hospital.values() for k in m if k != weight_key})
    result: dict[str, float] = {}
    for key in keys:
        pairs = [
            (m[key], m.get(weight_key, 1.0))
            for m in per_hospital.values()
            if key in m and m[key] is not None and math.isfinite(m[key])
        ]
        total = sum(weight for _, weight in pairs)
        if pairs and total > 0:
            result[key] = sum(value * weight for value, weight in pairs) / total
    result[weight_key] = sum(m.get(weight_key, 0) for m in per_hospital.values())
    return result


# Metrics from (possibly noisy) counts. Rates are ratios of raw sums clipped to [0, 1], not sums of
# counts clipped at 0: clipping each of many near-empty cells at 0 adds ≈ 0.4·std per cell, which
# would swamp small test splits, while raw sums stay unbiased. So `num_examples`-weighted means
# over hospitals are ratios of unbiased sums. A rate whose denominator is below one record is left
# out (as classification_metrics leaves out a rate of an absent class).


def _rate(numerator: float, denominator: float) -> float | None:
    return None if denominator < 1 else float(np.clip(numerator / denominator, 0.0, 1.0))


def _with_rates(metrics: dict[str, float], **rates: float | None) -> dict[str, float]:
    return metrics | {key: value for key, value in rates.items() if value is not None}


def histogram_auroc(negatives: np.ndarray, positives: np.ndarray) -> float | None:
    """AUROC from histograms of the class-1 score of negatives and positives over the same
    ordered bins: P(a random positive's bin is above a random negative's), a shared bin counting
    ½ — the trapezoidal ROC through the bin edges. Negative (noisy) masses count as 0; None when
    either class has no mass."""
    negatives, positives = np.maximum(negatives, 0.0), np.maximum(positives, 0.0)
    pairs = negatives.sum() * positives.sum()
    if pairs <= 0:
        return None
    below = np.cumsum(negatives) - negatives  # negatives in strictly lower bins
    wins = float(np.dot(positives, below + 0.5 * negatives))
    return float(np.clip(wins / pairs, 0.0, 1.0))


def histogram_metrics(negatives: np.ndarray, positives: np.ndarray) -> dict[str, float]:
    """Binary metrics from per-class histograms of P(class 1) in equal bins on [0, 1]: bins in
    the upper half count as predicted 1. Sensitivity/specificity are those of class 1."""
    half = len(negatives) // 2
    true_negatives, false_positives = negatives[:half].sum(), negatives[half:].sum()
    false_negatives, true_positives = positives[:half].sum(), positives[half:].sum()
    total = max(1.0, float(negatives.sum() + positives.sum()))
    metrics = {"accuracy": float(np.clip((true_positives + true_negatives) / total, 0.0, 1.0))}
    return _with_rates(
        metrics,
        sensitivity=_rate(true_positives, true_positives + false_negatives),
        specificity=_rate(true_negatives, true_negatives + false_positives),
        auroc=histogram_auroc(negatives, positives),
    )


def confusion_metrics(confusion: np.ndarray) -> dict[str, float]:
    """Accuracy and macro one-vs-rest sensitivity/specificity from K×K counts (true × predicted),
    as classification_metrics computes them from predictions (no AUROC: no scores)."""
    total = max(1.0, float(confusion.sum()))
    metrics = {"accuracy": float(np.clip(np.trace(confusion) / total, 0.0, 1.0))}
    per_true, per_predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    recalls, specificities = [], []
    for cls in range(len(confusion)):
        negatives = confusion.sum() - per_true[cls]
        true_negatives = negatives - (per_predicted[cls] - confusion[cls, cls])
        recalls.append(_rate(confusion[cls, cls], per_true[cls]))
        specificities.append(_rate(true_negatives, negatives))
    present_recalls = [r for r in recalls if r is not None]
    present_specificities = [s for s in specificities if s is not None]
    return _with_rates(
        metrics,
        sensitivity=float(np.mean(present_recalls)) if present_recalls else None,
        specificity=float(np.mean(present_specificities)) if present_specificities else None,
    )

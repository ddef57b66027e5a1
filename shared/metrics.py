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

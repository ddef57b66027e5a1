"""95 % confidence intervals for the model card: Wilson (proportions), Hanley–McNeil (AUROC).

Wilson 1927 score interval for k successes in n trials; Hanley & McNeil 1982 (Radiology
143:29) standard error of the area under the ROC curve from n₁ positives and n₀ negatives.
Both describe sampling uncertainty of a test split, nothing about DP noise.
"""

from __future__ import annotations

import math

from scipy.stats import norm

Z = float(norm.ppf(0.975))


def wilson(proportion: float, n: float) -> tuple[float, float] | None:
    """Interval of a proportion observed on n cases (None when n < 1)."""
    if n < 1 or not math.isfinite(proportion):
        return None
    p = min(max(proportion, 0.0), 1.0)
    scale = 1 + Z**2 / n
    centre = (p + Z**2 / (2 * n)) / scale
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)


def hanley_mcneil(auroc: float, positives: float, negatives: float) -> tuple[float, float] | None:
    """Normal interval of an AUROC (None without both classes)."""
    if positives < 1 or negatives < 1 or not math.isfinite(auroc):
        return None
    a = auroc
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    variance = (a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)) / (
        positives * negatives
    )
    half = Z * math.sqrt(max(variance, 0.0))
    return max(0.0, a - half), min(1.0, a + half)

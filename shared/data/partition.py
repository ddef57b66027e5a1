"""Partitioners: split one pooled dataset's sample indices among simulated hospitals."""

from __future__ import annotations

import numpy as np

from medfed.shared.errors import DataError


def iid_partition(num_samples: int, num_hospitals: int, seed: int) -> list[np.ndarray]:
    """Shuffle and cut into `num_hospitals` near-equal parts."""
    if num_hospitals > num_samples:
        raise DataError(
            f"data.num_hospitals = {num_hospitals} exceeds the {num_samples} samples "
            "(use fewer hospitals or more samples)"
        )
    order = np.random.default_rng(seed).permutation(num_samples)
    return [np.sort(part) for part in np.array_split(order, num_hospitals)]


def dirichlet_partition(
    labels: np.ndarray, num_hospitals: int, alpha: float, seed: int, min_size: int = 2
) -> list[np.ndarray]:
    """Label skew: each class is spread over hospitals by proportions ~ Dirichlet(alpha).

    Redraws (up to 100 times) until every hospital holds at least `min_size` samples.

    Raises:
        DataError: no draw gives every hospital `min_size` samples.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(num_hospitals)]
        for label in classes:
            members = rng.permutation(np.flatnonzero(labels == label))
            shares = rng.dirichlet(np.full(num_hospitals, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for hospital, chunk in enumerate(np.split(members, cuts)):
                parts[hospital].extend(chunk.tolist())
        if min(len(part) for part in parts) >= min_size:
            return [np.sort(np.asarray(part, dtype=np.int64)) for part in parts]
    raise DataError(
        f"Dirichlet(alpha={alpha}) left a hospital with fewer than {min_size} samples in 100 "
        f"draws over {len(labels)} samples: raise data.dirichlet_alpha, lower "
        "data.num_hospitals or raise data.samples"
    )


def natural_partition(hospital_names: np.ndarray) -> dict[str, np.ndarray]:
    """Group sample indices by the hospital each sample came from (first-seen order)."""
    names = list(dict.fromkeys(hospital_names.tolist()))
    return {str(name): np.flatnonzero(hospital_names == name) for name in names}


def partition_indices(
    labels: np.ndarray, scheme: str, num_hospitals: int, alpha: float, seed: int
) -> list[np.ndarray]:
    """IID or Dirichlet split by name (natural splits need a hospital column instead)."""
    if scheme == "iid":
        return iid_partition(len(labels), num_hospitals, seed)
    if scheme == "dirichlet":
        return dirichlet_partition(labels, num_hospitals, alpha, seed)
    raise DataError(f"data.partition = '{scheme}' needs a hospital column (use iid or dirichlet)")

"""Datasets: one contract (`HospitalData`), loaders by name, partitioners."""

from medfed.shared.data.base import HospitalData, dataset_fingerprint
from medfed.shared.data.registry import load_federation

__all__ = ["HospitalData", "dataset_fingerprint", "load_federation"]

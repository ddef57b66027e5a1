"""Build the hospitals of a federation from a `DataConfig`."""

from __future__ import annotations

import numpy as np

from medfed.shared.config.models import DataConfig
from medfed.shared.data.base import HospitalData, split_train_test
from medfed.shared.data.breast_cancer import SPLIT_SEED, load_breast_cancer_records
from medfed.shared.data.dicom import read_dicom_folder
from medfed.shared.data.heart_disease import load_heart_disease
from medfed.shared.data.image_folder import read_image_folder
from medfed.shared.data.imaging import read_medmnist, synthetic_lesions
from medfed.shared.data.partition import natural_partition, partition_indices
from medfed.shared.data.pixels import ImageSet
from medfed.shared.data.sequences import read_vitals_csv, vitals_frame_to_grids
from medfed.shared.data.vitals_synthetic import synthetic_vitals
from medfed.shared.errors import DataError


def load_federation(data: DataConfig, seed: int) -> list[HospitalData]:
    """All hospitals of the federation, in a stable order (their partition ids).

    Raises:
        DataError: unreadable data or a partition that leaves a hospital empty.
    """
    if data.dataset == "heart_disease":
        hospitals = load_heart_disease(data.path, data.hospital_column, data.feature_bounds)
        if data.partition == "natural":
            return hospitals
        features = np.concatenate([h.x_train for h in hospitals] + [h.x_test for h in hospitals])
        labels = np.concatenate([h.y_train for h in hospitals] + [h.y_test for h in hospitals])
        return _split(features, labels, 2, data, seed, None)
    if data.dataset == "breast_cancer":  # fixed hospitals: the split ignores the run's seed
        features, labels, sites = load_breast_cancer_records(
            data.path, data.hospital_column, data.feature_bounds
        )
        return _split(features, labels, 2, data, SPLIT_SEED, sites)
    if data.dataset == "imaging":
        images = load_images(data, seed)
        return _split(
            images.images,
            images.labels,
            images.num_classes,
            data,
            seed,
            images.sites,
            images.patients,
        )
    if data.path is not None:
        features, labels, sites = read_vitals_csv(
            data.path,
            data.sequence_length,
            data.hospital_column,
            data.channel_ranges,
            data.sequence_step,
        )
    else:  # generated rows take the CSV's path; the generator names each patient's site
        frame = synthetic_vitals(
            data.samples,
            data.sequence_length,
            data.sequence_features,
            seed,
            data.num_hospitals or 1,
            data.sequence_step,
        )
        features, labels, sites = vitals_frame_to_grids(
            frame,
            "synthetic vitals",
            data.sequence_length,
            data.sequence_step,
            "hospital",
            data.channel_ranges,
        )
    return _split(features, labels, 2, data, seed, sites)  # binary: not read from the labels


def load_images(data: DataConfig, seed: int) -> ImageSet:
    """The configured images: a DICOM or PNG/JPEG folder, a MedMNIST file, or synthetic."""
    if data.image_format == "dicom":
        return read_dicom_folder(data)
    if data.image_format == "png":
        return read_image_folder(data)
    if data.path is not None:
        features, labels = read_medmnist(data.path)
        return ImageSet(features, labels, int(labels.max()) + 1)
    features, labels = synthetic_lesions(data.samples, data.image_size, data.image_channels, seed)
    return ImageSet(features, labels, 2)


def _split(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    data: DataConfig,
    seed: int,
    sites: np.ndarray | None,
    patients: np.ndarray | None = None,
) -> list[HospitalData]:
    """Hospitals, then each one's train/test split; `patients` keeps a patient in one place."""
    if data.partition == "natural":
        if sites is None:
            raise DataError(
                f"data.partition = 'natural' needs a '{data.hospital_column}' column naming each "
                "sample's hospital; this data has none (use partition = 'iid' or 'dirichlet')"
            )
        groups = natural_partition(sites)
    elif patients is None:
        parts = partition_indices(
            labels, data.partition, data.num_hospitals or 1, data.dirichlet_alpha, seed
        )
        groups = {f"hospital_{i:0{len(str(len(parts)))}d}": part for i, part in enumerate(parts)}
    else:  # partition patients (by each one's first label), then take their records
        _, first, patient_of = np.unique(patients, return_index=True, return_inverse=True)
        parts = partition_indices(
            labels[first], data.partition, data.num_hospitals or 1, data.dirichlet_alpha, seed
        )
        width = len(str(len(parts)))
        groups = {
            f"hospital_{i:0{width}d}": np.flatnonzero(np.isin(patient_of, part))
            for i, part in enumerate(parts)
        }
    return [
        split_train_test(
            name,
            features[idx],
            labels[idx],
            num_classes,
            data.test_fraction,
            seed,
            None if patients is None else patients[idx],
        )
        for name, idx in groups.items()
    ]

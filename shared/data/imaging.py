"""Images: a MedMNIST `.npz` reader and a generator of synthetic lesion-like images.

Record-local (design.md, Threat model): a pixel's value depends on that pixel alone, through a
fixed window: MedMNIST's uint8 intensities divided by 255 and clipped to [0, 1]; synthetic images
are drawn in [0, 1] and clipped there. No statistic over images (no dataset mean/std).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from medfed.shared.errors import DataError

SPLITS = ("train", "val", "test")


def read_medmnist(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pool a MedMNIST file's train/val/test into (images N×C×H×W float32 in [0,1], labels).

    Raises:
        DataError: file missing, not an npz, missing keys, or multi-label targets.
    """
    if not path.is_file():
        raise DataError(f"{path}: MedMNIST file not found (set data.path to a local .npz)")
    try:
        archive = np.load(path)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz ({exc})") from None
    with archive:
        missing = [
            f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in archive
        ]
        if missing:
            raise DataError(
                f"{path}: missing key(s) {missing} (expected MedMNIST train/val/test_images/labels)"
            )
        images = np.concatenate([archive[f"{s}_images"] for s in SPLITS])
        labels = np.concatenate([archive[f"{s}_labels"] for s in SPLITS])
    if labels.ndim == 2 and labels.shape[1] != 1:
        raise DataError(
            f"{path}: labels have {labels.shape[1]} columns; "
            "only single-label MedMNIST sets are supported"
        )
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4:
        images = images.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"{path}: images have shape {images.shape}; expected N×H×W or N×H×W×C")
    return window_uint8(images), labels.reshape(-1).astype(np.int64)


def window_uint8(images: np.ndarray) -> np.ndarray:
    """8-bit intensities onto [0, 1] (÷ 255, clipped), pixel by pixel: training's MedMNIST
    window, and serving's (medfed.serve) for uploaded images."""
    return np.clip(images.astype(np.float32) / 255.0, 0.0, 1.0)


def synthetic_lesions(
    samples: int, image_size: int, channels: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy tissue texture; label 1 images carry a bright, irregular lesion at a random place.

    Returns images N×C×H×W float32 in [0, 1] and balanced labels.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(samples) % 2).astype(np.int64)
    grid_y, grid_x = np.mgrid[0:image_size, 0:image_size].astype(np.float32)
    background = rng.normal(0.35, 0.08, size=(samples, image_size, image_size)).astype(np.float32)
    # Benign blobs appear in every image so that "bright spot" alone does not give the label.
    for blob_label in (0, 1):
        centres = rng.uniform(0.2, 0.8, size=(samples, 2)) * image_size
        radii = rng.uniform(0.06, 0.16, size=samples) * image_size
        dist = np.hypot(grid_y - centres[:, 0, None, None], grid_x - centres[:, 1, None, None])
        if blob_label == 0:  # soft round blob, all images
            background += 0.25 * np.exp(-((dist / radii[:, None, None]) ** 2))
        else:  # sharp-edged irregular lesion, positives only
            angle = np.arctan2(
                grid_y - centres[:, 0, None, None], grid_x - centres[:, 1, None, None]
            )
            wobble = 1 + 0.3 * np.sin(3 * angle + rng.uniform(0, 6.3, size=(samples, 1, 1)))
            lesion = (dist < radii[:, None, None] * wobble).astype(np.float32)
            background += 0.6 * lesion * labels[:, None, None]
    images = np.clip(background, 0, 1)[:, None].repeat(channels, axis=1)
    return images.astype(np.float32), labels

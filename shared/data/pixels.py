"""One image's pixels into the model's fixed shape: channels, resize, and a stack of them.

Record-local (design.md, Threat model): every step uses that image and public constants from
the config (size, channel count, the luminance weights below), never a statistic over images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medfed.shared.errors import DataError

LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 RGB → grey


@dataclass(frozen=True)
class ImageSet:
    """Images N×C×H×W in [0, 1], class indices, and per image its patient and (optional) site.

    `patients` keeps a patient's images on one side of every split; None: each image is its
    own patient (MedMNIST, synthetic).
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    patients: np.ndarray | None = None
    sites: np.ndarray | None = None


def to_channels(pixels: np.ndarray, channels: int, source: Path) -> np.ndarray:
    """H×W or H×W×{1,3,4} in [0, 1] → C×H×W with `channels` (grey repeated, or RGB → grey).

    Raises:
        DataError: a shape that is not one image.
    """
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        rgb = pixels[..., :3]  # a fourth (alpha) channel is not image content
        if channels == 1:
            return (rgb @ LUMINANCE)[None]
        return rgb.transpose(2, 0, 1)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim != 2:
        raise DataError(
            f"{source}: pixel array has shape {pixels.shape}; expected one 2-D image "
            "(grey or RGB; export volumes as one file per slice)"
        )
    return np.repeat(pixels[None], channels, axis=0)


def resized(image: np.ndarray, size: int) -> np.ndarray:
    """C×H×W → C×size×size, bilinear with antialiasing when shrinking (aspect not kept)."""
    if image.shape[1:] == (size, size):
        return image
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    out = F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True)
    return out[0].clamp(0.0, 1.0).numpy()


def stack_images(
    images: list[np.ndarray], sources: list[Path], size: int, resize: bool
) -> np.ndarray:
    """Resize each C×H×W image to size×size (or, with `resize` off, require one common size).

    Raises:
        DataError: no images, or (`resize` off) an image whose size differs from the first's.
    """
    if not images:
        raise DataError("no images to load (the folder and the labels sheet have none in common)")
    if resize:
        return np.stack([resized(image, size) for image in images]).astype(np.float32)
    first = images[0].shape[1:]
    for image, source in zip(images, sources, strict=True):
        if image.shape[1:] != first:
            raise DataError(
                f"{source}: image is {image.shape[2]}×{image.shape[1]} pixels but "
                f"{sources[0]} is {first[1]}×{first[0]}; set data.resize = true (resizes every "
                f"image to data.image_size) or export images of one size"
            )
    return np.stack(images).astype(np.float32)

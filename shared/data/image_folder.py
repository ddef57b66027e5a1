"""A folder of PNG/JPEG exports plus a labels CSV naming each file, its patient and label.

Pixels use a fixed window by bit depth: 8-bit values divided by 255, 16-bit by 65535 (record-
local: a public constant, no statistic over images). The sheet drives what is read: a row's
file must exist; files without a row are ignored. The split keeps a patient's files together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medfed.shared.config.models import DataConfig
from medfed.shared.data.label_sheet import labelled_images, read_label_sheet
from medfed.shared.data.pixels import ImageSet, to_channels
from medfed.shared.errors import DataError

SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}  # Pillow's modes for 16-bit grey PNGs


def read_image_file(path: Path) -> np.ndarray:
    """One PNG/JPEG as H×W (grey) or H×W×3 (colour) float32 in [0, 1].

    Raises:
        DataError: missing, unreadable or not an image.
    """
    if not path.is_file():
        raise DataError(f"{path}: image file not found (named in the labels CSV)")
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in SIXTEEN_BIT:
                return np.clip(np.asarray(image, dtype=np.float32) / 65535.0, 0.0, 1.0)
            grey = image.mode in {"L", "LA", "1"}
            converted = image.convert("L" if grey else "RGB")
            return np.asarray(converted, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable PNG/JPEG image ({exc})") from None


def read_image_folder(data: DataConfig) -> ImageSet:
    """The images the labels CSV (`data.labels_path`) names under `data.path`.

    Raises:
        DataError: missing folder, a file outside the folder, an unreadable image, a bad
            sheet, or mixed sizes without resize.
    """
    folder = data.path
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found (set data.path)")
    sheet = read_label_sheet(
        data.labels_path,
        data.file_column,
        data.label_column,
        data.classes,
        patient_column=data.id_column,
        site_column=data.hospital_column,
    )
    root = folder.resolve()
    images, sources = [], []
    for name in sheet:
        source = (folder / name).resolve()
        if not source.is_relative_to(root):
            raise DataError(
                f"{data.labels_path}: file '{name}' is outside {folder} (name files relative "
                "to data.path)"
            )
        images.append(to_channels(read_image_file(source), data.image_channels, source))
        sources.append(source)
    return labelled_images(
        images, sources, list(sheet.values()), len(data.classes), data.image_size, data.resize
    )

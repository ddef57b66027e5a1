"""A hospital's DICOM folder (studies/series, one image a file) plus a labels CSV.

Each file's pixels go through its own modality transform (RescaleSlope, RescaleIntercept)
and then a FIXED window from the config (`window_center`, `window_width`): value v maps to
clip((v − (c − w/2)) / w, 0, 1), inverted for MONOCHROME1. Record-local (design.md, Threat
model): no statistic over images, and not the files' own display-window tags either, so every
image of a federation sees the same public window. The labels CSV is keyed by patient or study
(`id_attribute`); the split keeps each PatientID's images on one side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from medfed.shared.config.models import DataConfig
from medfed.shared.data.label_sheet import LabelRow, labelled_images, read_label_sheet
from medfed.shared.data.pixels import ImageSet, to_channels
from medfed.shared.errors import DataError

# Files in an export folder that are not images: skipped, not reported as unreadable.
NOT_IMAGES = {".csv", ".txt", ".json", ".md", ".xml", ".html", ".pdf", ".zip", ".png", ".jpg"}


def dicom_files(folder: Path) -> list[Path]:
    """Every candidate DICOM file under `folder`, sorted (DICOMDIR and hidden files skipped).

    Raises:
        DataError: `folder` is not a directory.
    """
    if not folder.is_dir():
        raise DataError(f"{folder}: DICOM folder not found (set data.path to the export folder)")
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.name.upper() != "DICOMDIR"
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.suffix.lower() not in NOT_IMAGES
    )


def windowed(dataset: pydicom.Dataset, center: float, width: float, source: Path) -> np.ndarray:
    """The file's pixels in [0, 1]: modality rescale, then the fixed window (H×W or H×W×3).

    Raises:
        DataError: no pixel data, pixel data that cannot be decoded, or several frames.
    """
    if not any(key in dataset for key in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DataError(
            f"{source}: no pixel data (SOP class {dataset.get('SOPClassUID', 'unknown')}); "
            "remove non-image objects (reports, presentation states) from the folder"
        )
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        raise DataError(
            f"{source}: {dataset.NumberOfFrames} frames in one file; export one image per file"
        )
    try:
        pixels = dataset.pixel_array.astype(np.float64)
    except Exception as exc:  # pydicom raises many types for codecs and malformed data
        raise DataError(f"{source}: pixel data cannot be decoded ({exc})") from None
    slope = float(dataset.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(dataset.get("RescaleIntercept", 0.0) or 0.0)
    values = pixels * slope + intercept
    window = np.clip((values - (center - width / 2)) / width, 0.0, 1.0)
    if str(dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        window = 1.0 - window  # MONOCHROME1: low values are bright
    return window.astype(np.float32)


def read_dicom_folder(data: DataConfig) -> ImageSet:
    """Every DICOM image under `data.path`, labelled from `data.labels_path`.

    Raises:
        DataError: an unreadable file, one without pixel data, PatientID or the keyed id, an
            id missing from the labels sheet, a bad sheet, or mixed sizes without resize.
    """
    folder = data.path
    sheet = read_label_sheet(
        data.labels_path,
        data.id_column,
        data.label_column,
        data.classes,
        site_column=data.hospital_column,
    )
    images, sources, rows = [], [], []
    for source in dicom_files(folder):
        try:
            dataset = pydicom.dcmread(source)
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            raise DataError(
                f"{source}: not a readable DICOM file ({exc}); remove it or re-export"
            ) from None
        patient = str(dataset.get("PatientID", "")).strip()
        key = str(dataset.get(data.id_attribute, "")).strip()
        if not patient or not key:
            missing = "PatientID" if not patient else data.id_attribute
            raise DataError(f"{source}: no {missing} (needed for labels and the patient split)")
        if key not in sheet:
            raise DataError(
                f"{source}: {data.id_attribute} '{key}' is not in {data.labels_path} column "
                f"'{data.id_column}' (add its label, or remove the file)"
            )
        pixels = windowed(dataset, data.window_center, data.window_width, source)
        images.append(to_channels(pixels, data.image_channels, source))
        sources.append(source)
        rows.append(LabelRow(sheet[key].label, patient, sheet[key].site))
    if not images:
        raise DataError(f"{folder}: no DICOM files found (set data.path to the export folder)")
    return labelled_images(images, sources, rows, len(data.classes), data.image_size, data.resize)

"""Write synthetic lesion images as a hospital's DICOM export: to try, and test, the DICOM path.

The layout is what an export tool writes: PATIENT/STUDY/SERIES/IMAGE.dcm, CT-like 16-bit
values with RescaleSlope 1 and RescaleIntercept −1024, and a labels CSV with one row per
patient. Reading it back with `window_center = WINDOW_CENTER` and `window_width =
WINDOW_WIDTH` gives the generator's intensities up to 1/WINDOW_WIDTH rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medfed.shared.data.imaging import synthetic_lesions

WINDOW_CENTER, WINDOW_WIDTH = 40.0, 400.0  # a soft-tissue CT window, in HU
INTERCEPT = -1024.0
CLASSES = ("normal", "lesion")


def ct_image(pixels: np.ndarray, patient: str, study: str, series: str, number: int) -> Dataset:
    """One CT image object: `pixels` in [0, 1] stored so the window above maps them back."""
    hounsfield = WINDOW_CENTER - WINDOW_WIDTH / 2 + pixels * WINDOW_WIDTH
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    image = Dataset()
    image.file_meta = meta
    image.SOPClassUID = CTImageStorage
    image.Modality = "CT"
    image.PatientID, image.StudyInstanceUID, image.SeriesInstanceUID = patient, study, series
    image.InstanceNumber = number
    image.RescaleSlope, image.RescaleIntercept = 1, INTERCEPT
    stored = np.round(hounsfield - INTERCEPT).astype(np.uint16)
    image.set_pixel_data(stored, "MONOCHROME2", 12)
    image.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    return image


def write_dicom_folder(
    folder: Path, samples: int, image_size: int, seed: int, images_per_patient: int = 2
) -> Path:
    """`samples` synthetic images under `folder` (a patient's images share its label), and
    the labels sheet `folder/labels.csv` (columns patient_id, label). Returns the sheet's path."""
    images, labels = synthetic_lesions(samples, image_size, 1, seed)
    rows = []
    for label in (0, 1):
        members = np.flatnonzero(labels == label)
        for start in range(0, len(members), images_per_patient):
            patient = f"P{len(rows):05d}"
            study, series = generate_uid(), generate_uid()
            where = folder / patient / f"study_{len(rows):05d}" / "series_1"
            where.mkdir(parents=True, exist_ok=True)
            for number, index in enumerate(members[start : start + images_per_patient], 1):
                image = ct_image(images[index, 0], patient, study, series, number)
                image.save_as(where / f"IM{number:04d}.dcm", enforce_file_format=True)
            rows.append({"patient_id": patient, "label": CLASSES[label]})
    sheet = folder / "labels.csv"
    pd.DataFrame(rows).to_csv(sheet, index=False)
    return sheet

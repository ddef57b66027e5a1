"""DICOM folders: fixed window after the modality rescale, labels from a sheet, patient split.

Files are built with pydicom in the test (and pydicom's bundled test files); expected pixels
are computed here with numpy or pydicom's own modality LUT, not by medfed's code.
"""

import shutil
from collections import Counter

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medfed.shared.config import DataConfig
from medfed.shared.data import load_federation
from medfed.shared.data.registry import load_images
from medfed.shared.errors import DataError
from medfed.simulations.synthetic_dicom import WINDOW_CENTER, WINDOW_WIDTH, write_dicom_folder

CLASSES = ["normal", "lesion"]


def ct_file(path, stored, patient="P1", slope=1.0, intercept=-1024.0, photometric="MONOCHROME2"):
    """A CT image with `stored` (uint16 rows×columns) pixel values."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    image = Dataset()
    image.file_meta = meta
    image.SOPClassUID, image.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    image.PatientID, image.StudyInstanceUID = patient, f"1.2.3.{abs(hash(patient)) % 10**6}"
    image.RescaleSlope, image.RescaleIntercept = slope, intercept
    image.set_pixel_data(np.asarray(stored, dtype=np.uint16), photometric, 16)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save_as(path, enforce_file_format=True)
    return image


def sheet(path, rows, id_column="patient_id"):
    pd.DataFrame(rows, columns=[id_column, "label"]).to_csv(path, index=False)
    return path


def config(folder, labels, **changes) -> DataConfig:
    fields = {
        "dataset": "imaging",
        "image_format": "dicom",
        "path": folder,
        "labels_path": labels,
        "classes": CLASSES,
        "window_center": 40.0,
        "window_width": 400.0,
    }
    return DataConfig(**(fields | changes))


def test_rescale_then_fixed_window_maps_hounsfield_units_to_unit_interval(tmp_path):
    # HU = stored·slope + intercept; window 40/400 spans HU −160 … 240.
    stored = np.array([[0, 592, 1024], [1064, 1264, 4000]])  # HU −1024, −432, 0, 40, 240, 2976
    ct_file(tmp_path / "scans" / "a.dcm", stored)
    labels = sheet(tmp_path / "labels.csv", [("P1", "lesion")])
    images = load_images(config(tmp_path / "scans", labels, image_size=8, resize=False), 0)
    hounsfield = stored - 1024.0
    expected = np.clip((hounsfield - (40 - 200)) / 400, 0, 1)
    np.testing.assert_allclose(images.images[0, 0], expected, atol=1e-6)
    assert images.labels.tolist() == [1] and images.patients.tolist() == ["P1"]


def test_slope_and_monochrome1_are_applied(tmp_path):
    ct_file(tmp_path / "scans" / "a.dcm", [[100, 180]], slope=2.0, intercept=-160.0)
    ct_file(tmp_path / "scans" / "b.dcm", [[1064, 1264]], patient="P2", photometric="MONOCHROME1")
    labels = sheet(tmp_path / "labels.csv", [("P1", "normal"), ("P2", "lesion")])
    images = load_images(config(tmp_path / "scans", labels, image_size=8, resize=False), 0)
    np.testing.assert_allclose(images.images[0, 0], [[0.5, 0.9]], atol=1e-6)  # HU 40, 200
    np.testing.assert_allclose(images.images[1, 0], [[0.5, 0.0]], atol=1e-6)  # inverted


def test_pydicom_test_file_matches_its_own_modality_lut(tmp_path):
    source = get_testdata_file("CT_small.dcm")
    (tmp_path / "scans").mkdir()
    shutil.copy(source, tmp_path / "scans" / "ct.dcm")
    dataset = pydicom.dcmread(source)
    labels = sheet(tmp_path / "labels.csv", [(dataset.StudyInstanceUID, "lesion")], "study")
    data = config(
        tmp_path / "scans",
        labels,
        id_column="study",
        id_attribute="StudyInstanceUID",
        image_size=128,
        resize=False,
        image_channels=3,
    )
    images = load_images(data, 0)
    hounsfield = apply_modality_lut(dataset.pixel_array, dataset)
    expected = np.clip((hounsfield - (40 - 200)) / 400, 0, 1)
    assert images.images.shape == (1, 3, 128, 128)
    for channel in range(3):
        np.testing.assert_allclose(images.images[0, channel], expected, atol=1e-6)


def test_export_folder_resizes_and_keeps_the_generator_intensities(tmp_path):
    labels = write_dicom_folder(tmp_path / "export", samples=12, image_size=28, seed=3)
    data = config(tmp_path / "export", labels, window_center=WINDOW_CENTER)
    images = load_images(data.model_copy(update={"window_width": WINDOW_WIDTH}), 0)
    assert images.images.shape == (12, 1, 28, 28) and images.num_classes == 2
    assert 0.0 <= images.images.min() and images.images.max() <= 1.0
    assert len(set(images.patients.tolist())) == 6  # two images a patient
    small = load_images(data.model_copy(update={"image_size": 16}), 0)
    assert small.images.shape == (12, 1, 16, 16)


def test_split_keeps_each_patient_on_one_side_and_in_one_hospital(tmp_path):
    labels = write_dicom_folder(tmp_path / "export", 120, 16, seed=0, images_per_patient=3)
    data = config(
        tmp_path / "export", labels, partition="dirichlet", num_hospitals=3, dirichlet_alpha=1.0
    )
    patients_by_image = {
        image.tobytes(): patient
        for image, patient in zip(
            load_images(data, 0).images, load_images(data, 0).patients, strict=True
        )
    }
    hospitals = load_federation(data, seed=5)
    seen: dict[str, str] = {}
    for hospital in hospitals:
        train = {patients_by_image[x.tobytes()] for x in hospital.x_train}
        test = {patients_by_image[x.tobytes()] for x in hospital.x_test}
        assert train and test and not train & test
        for patient in train | test:
            assert seen.setdefault(patient, hospital.name) == hospital.name
    assert len(seen) == 40
    again = load_federation(data, seed=5)
    assert all(np.array_equal(a.x_train, b.x_train) for a, b in zip(hospitals, again, strict=True))
    other = load_federation(data, seed=6)
    assert any(
        a.x_train.shape != b.x_train.shape or not np.array_equal(a.x_train, b.x_train)
        for a, b in zip(hospitals, other, strict=True)
    )


def test_adding_an_image_changes_no_other_image(tmp_path):
    labels = write_dicom_folder(tmp_path / "export", 8, 16, seed=1)
    before = Counter(
        x.tobytes() for x in load_images(config(tmp_path / "export", labels), 0).images
    )
    ct_file(tmp_path / "export" / "new" / "x.dcm", np.full((16, 16), 4000), patient="NEW")
    frame = pd.read_csv(labels)
    frame.loc[len(frame)] = ["NEW", "lesion"]
    frame.to_csv(labels, index=False)
    after = Counter(x.tobytes() for x in load_images(config(tmp_path / "export", labels), 0).images)
    assert after - before != Counter() and not before - after


@pytest.fixture
def one_image_folder(tmp_path):
    ct_file(tmp_path / "scans" / "P1" / "a.dcm", np.zeros((8, 8)))
    return tmp_path / "scans", sheet(tmp_path / "labels.csv", [("P1", "normal")])


def test_unreadable_file_is_named(one_image_folder):
    folder, labels = one_image_folder
    (folder / "P1" / "broken.dcm").write_text("not dicom")
    with pytest.raises(DataError, match=r"broken\.dcm: not a readable DICOM file"):
        load_images(config(folder, labels), 0)


def test_file_without_pixel_data_is_named(one_image_folder):
    folder, labels = one_image_folder
    image = pydicom.dcmread(folder / "P1" / "a.dcm")
    del image.PixelData
    image.save_as(folder / "P1" / "report.dcm")
    with pytest.raises(DataError, match=r"report\.dcm: no pixel data"):
        load_images(config(folder, labels), 0)


def test_truncated_pixel_data_is_named(tmp_path):
    (tmp_path / "scans").mkdir()
    shutil.copy(get_testdata_file("MR_truncated.dcm"), tmp_path / "scans" / "mr.dcm")
    labels = sheet(tmp_path / "labels.csv", [("4MR1", "normal")])
    with pytest.raises(DataError, match=r"mr\.dcm: pixel data cannot be decoded"):
        load_images(config(tmp_path / "scans", labels), 0)


def test_patient_missing_from_the_sheet_is_named(one_image_folder):
    folder, labels = one_image_folder
    ct_file(folder / "P2" / "b.dcm", np.zeros((8, 8)), patient="P2")
    with pytest.raises(DataError, match=r"b\.dcm: PatientID 'P2' is not in .*labels\.csv"):
        load_images(config(folder, labels), 0)


def test_label_outside_the_declared_classes_is_named(one_image_folder):
    folder, _ = one_image_folder
    labels = sheet(folder.parent / "labels.csv", [("P1", "tumour")])
    with pytest.raises(DataError, match=r"labels\.csv: line 2: label 'tumour' .*data\.classes"):
        load_images(config(folder, labels), 0)


def test_mixed_sizes_without_resize_are_named(one_image_folder):
    folder, labels = one_image_folder
    ct_file(folder / "P1" / "big.dcm", np.zeros((12, 10)))
    with pytest.raises(DataError, match=r"is 10×12 pixels but .* is 8×8; set data\.resize"):
        load_images(config(folder, labels, resize=False), 0)
    assert load_images(config(folder, labels, image_size=8), 0).images.shape == (2, 1, 8, 8)


def test_sheet_without_the_id_column_is_named(one_image_folder):
    folder, labels = one_image_folder
    with pytest.raises(DataError, match=r"no column 'StudyID'.*patient_id, label"):
        load_images(config(folder, labels, id_column="StudyID"), 0)


def test_config_names_what_a_dicom_folder_needs(tmp_path):
    with pytest.raises(ValueError, match="needs data.window_center, data.window_width"):
        DataConfig(
            dataset="imaging",
            image_format="dicom",
            path=tmp_path,
            labels_path=tmp_path / "l.csv",
            classes=CLASSES,
        )

"""A deployed hospital's own imaging folder: hospital.toml keys, loading, cache, refusals."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medfed.client.hospital_config import HospitalDataConfig, load_hospital_config
from medfed.client.node_hospital import cached_data
from medfed.shared.config.models import DataConfig
from medfed.shared.data.imaging import synthetic_lesions
from medfed.shared.data.registry import load_images
from medfed.shared.errors import ConfigError
from medfed.simulations.synthetic_dicom import WINDOW_CENTER, WINDOW_WIDTH, write_dicom_folder

# What only a simulation needs: how it splits a pooled dataset into hospitals, or generates one.
SIMULATION_ONLY = {
    "partition",
    "hospital_column",
    "num_hospitals",
    "dirichlet_alpha",
    "samples",
    "sequence_features",
}

HOSPITAL = """name = "North"
[connection]
superlink = "127.0.0.1:9"
insecure = true
[data]
{data}
[privacy]
max_epsilon = 1.0
[secure_aggregation]
enabled = false
"""

DICOM_DATA = f"""dataset = "imaging"
image_format = "dicom"
path = "export"
labels_path = "export/labels.csv"
classes = ["normal", "lesion"]
window_center = {WINDOW_CENTER}
window_width = {WINDOW_WIDTH}
image_size = 16
"""


def write_hospital(folder, data=DICOM_DATA):
    path = folder / "hospital.toml"
    path.write_text(HOSPITAL.format(data=data), encoding="utf-8")
    return path


@pytest.fixture
def dicom_hospital(tmp_path):
    write_dicom_folder(tmp_path / "export", 40, 16, 0)
    return load_hospital_config(write_hospital(tmp_path))


def test_every_data_key_of_the_simulate_config_means_the_same_in_hospital_toml():
    ours, theirs = HospitalDataConfig.model_fields, DataConfig.model_fields
    assert set(theirs) - set(ours) == SIMULATION_ONLY
    for key in set(theirs) - SIMULATION_ONLY - {"dataset", "path"}:
        assert ours[key].default == theirs[key].default, key
        assert ours[key].annotation == theirs[key].annotation, key
        assert ours[key].description == theirs[key].description, key


def test_hospital_toml_resolves_the_folder_and_sheet_and_passes_every_key(dicom_hospital, tmp_path):
    data = dicom_hospital.data
    assert data.path == (tmp_path / "export").resolve()
    assert data.labels_path == (tmp_path / "export" / "labels.csv").resolve()
    loader = data.loader_config()
    assert loader.dataset == "imaging" and loader.image_format == "dicom"
    for key in HospitalDataConfig.model_fields:
        assert getattr(loader, key) == getattr(data, key), key


def test_a_dicom_folder_loads_with_a_patient_level_split(dicom_hospital, tmp_path):
    hospital = cached_data(dicom_hospital.data.loader_config(), "North", tmp_path / "cache")
    assert hospital.input_shape == (1, 16, 16) and hospital.num_classes == 2
    # Whose image is whose: the same shared loader, read independently of the cache.
    images = load_images(dicom_hospital.data.loader_config(), 0)
    patient_of = {
        image.tobytes(): patient
        for image, patient in zip(images.images, images.patients, strict=True)
    }
    train = {patient_of[image.tobytes()] for image in hospital.x_train}
    test = {patient_of[image.tobytes()] for image in hospital.x_test}
    assert train and test and not train & test
    assert len(hospital.y_train) + len(hospital.y_test) == 40


def test_an_added_image_is_a_new_cache_entry_never_a_stale_one(dicom_hospital, tmp_path):
    cache = tmp_path / "cache"
    first = cached_data(dicom_hospital.data.loader_config(), "North", cache)
    write_dicom_folder(tmp_path / "more", 4, 16, 1)  # its patients are named P00000, ... too
    extra = next((tmp_path / "more").rglob("*.dcm"))
    target = tmp_path / "export" / "P00000" / "extra.dcm"
    target.write_bytes(extra.read_bytes())  # one more image of a patient the sheet labels
    grown = cached_data(dicom_hospital.data.loader_config(), "North", cache)
    assert len(grown.y_train) + len(grown.y_test) == 41
    target.unlink()
    again = cached_data(dicom_hospital.data.loader_config(), "North", cache)
    assert again.fingerprint == first.fingerprint
    assert len(again.y_train) + len(again.y_test) == 40
    assert len(list(cache.glob("*.npz"))) == 2


PNG_DATA = """dataset = "imaging"
image_format = "png"
path = "images"
labels_path = "labels.csv"
file_column = "image"
id_column = "patient"
label_column = "finding"
classes = ["normal", "lesion"]
image_size = 16
image_channels = 3
"""


def write_png_folder(folder, count=20):
    images, labels = synthetic_lesions(count, 16, 1, 0)
    rows = []
    (folder / "images").mkdir()
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        name = f"img{index:02d}.png"
        Image.fromarray((image[0] * 255).astype(np.uint8)).save(folder / "images" / name)
        rows.append((name, f"P{index // 2}", ["normal", "lesion"][label]))
    sheet = pd.DataFrame(rows, columns=["image", "patient", "finding"])
    sheet.to_csv(folder / "labels.csv", index=False)


def test_a_png_folder_loads_with_the_same_keys(tmp_path):
    write_png_folder(tmp_path)
    config = load_hospital_config(write_hospital(tmp_path, PNG_DATA))
    hospital = cached_data(config.data.loader_config(), "North", tmp_path / "state")
    assert hospital.input_shape == (3, 16, 16)
    assert len(hospital.y_train) + len(hospital.y_test) == 20


def test_state_inside_the_image_folder_is_refused(tmp_path):
    # The cache and ledger would change the folder they are computed from, at every round.
    write_png_folder(tmp_path)
    text = write_hospital(tmp_path, PNG_DATA).read_text()
    (tmp_path / "hospital.toml").write_text('state_dir = "images/state"\n' + text)
    with pytest.raises(ConfigError, match=r"state_dir: .*images/state is inside data\.path"):
        load_hospital_config(tmp_path / "hospital.toml")


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ('dataset = "imaging"\npath = "export"\n', "data.image_format"),
        (
            'dataset = "imaging"\nimage_format = "dicom"\npath = "export"\n'
            'labels_path = "labels.csv"\nclasses = ["a", "b"]\n',
            "data.window_center",
        ),
    ],
)
def test_an_incomplete_data_table_names_the_key(tmp_path, data, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_hospital_config(write_hospital(tmp_path, data))

"""PNG/JPEG folders with a labels sheet: fixed window by bit depth, channels, named errors."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medfed.shared.config import DataConfig
from medfed.shared.data import load_federation
from medfed.shared.data.registry import load_images
from medfed.shared.errors import DataError

CLASSES = ["normal", "lesion"]


def write_png(path, pixels, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels), mode=mode).save(path)


def labels_sheet(path, rows):
    pd.DataFrame(rows, columns=["file", "patient_id", "label"]).to_csv(path, index=False)
    return path


def config(folder, labels, **changes) -> DataConfig:
    fields = {
        "dataset": "imaging",
        "image_format": "png",
        "path": folder,
        "labels_path": labels,
        "classes": CLASSES,
    }
    return DataConfig(**(fields | changes))


def test_eight_and_sixteen_bit_pngs_use_a_fixed_window(tmp_path):
    grey = np.array([[0, 51], [204, 255]], dtype=np.uint8)
    deep = np.array([[0, 13107], [52428, 65535]], dtype=np.uint16)
    write_png(tmp_path / "img" / "a.png", grey)
    write_png(tmp_path / "img" / "b.png", deep)
    labels = labels_sheet(
        tmp_path / "l.csv", [("a.png", "p1", "normal"), ("b.png", "p2", "lesion")]
    )
    images = load_images(config(tmp_path / "img", labels, image_size=8, resize=False), 0)
    expected = np.array([[0.0, 0.2], [0.8, 1.0]])
    np.testing.assert_allclose(images.images[0, 0], expected, atol=1e-6)
    np.testing.assert_allclose(images.images[1, 0], expected, atol=1e-6)
    assert images.labels.tolist() == [0, 1] and images.patients.tolist() == ["p1", "p2"]


def test_colour_jpeg_becomes_grey_or_three_channels(tmp_path):
    colour = np.zeros((16, 16, 3), dtype=np.uint8)
    colour[..., 0] = 200  # red
    write_png(tmp_path / "img" / "red.jpg", colour)
    labels = labels_sheet(tmp_path / "l.csv", [("red.jpg", "p1", "lesion")])
    grey = load_images(config(tmp_path / "img", labels, image_size=8), 0).images
    rgb = load_images(config(tmp_path / "img", labels, image_size=8, image_channels=3), 0).images
    assert grey.shape == (1, 1, 8, 8) and rgb.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(grey[0, 0], 0.299 * rgb[0, 0] + 0.587 * rgb[0, 1], atol=0.02)
    assert abs(rgb[0, 0].mean() - 200 / 255) < 0.02 and rgb[0, 1:].max() < 0.05


def test_patients_stay_on_one_side_of_the_split(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for number in range(60):
        patient, label = f"p{number // 3}", CLASSES[(number // 3) % 2]
        write_png(tmp_path / "img" / f"{number}.png", rng.integers(0, 256, (8, 8), np.uint8))
        rows.append((f"{number}.png", patient, label))
    data = config(tmp_path / "img", labels_sheet(tmp_path / "l.csv", rows), image_size=8)
    data = data.model_copy(update={"partition": "iid", "num_hospitals": 2})
    images = load_images(data, 0)
    patient_of = {x.tobytes(): p for x, p in zip(images.images, images.patients, strict=True)}
    for hospital in load_federation(data, seed=0):
        train = {patient_of[x.tobytes()] for x in hospital.x_train}
        test = {patient_of[x.tobytes()] for x in hospital.x_test}
        assert train and test and not train & test


def test_missing_file_is_named(tmp_path):
    write_png(tmp_path / "img" / "a.png", np.zeros((8, 8), np.uint8))
    labels = labels_sheet(
        tmp_path / "l.csv", [("a.png", "p1", "normal"), ("gone.png", "p2", "lesion")]
    )
    with pytest.raises(DataError, match=r"gone\.png: image file not found"):
        load_images(config(tmp_path / "img", labels), 0)


def test_unreadable_image_is_named(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "bad.png").write_bytes(b"\x89PNG but not really")
    labels = labels_sheet(tmp_path / "l.csv", [("bad.png", "p1", "normal")])
    with pytest.raises(DataError, match=r"bad\.png: not a readable PNG/JPEG image"):
        load_images(config(tmp_path / "img", labels), 0)


def test_unknown_label_is_named(tmp_path):
    write_png(tmp_path / "img" / "a.png", np.zeros((8, 8), np.uint8))
    labels = labels_sheet(tmp_path / "l.csv", [("a.png", "p1", "maybe")])
    with pytest.raises(DataError, match=r"l\.csv: line 2: label 'maybe' of 'a\.png'"):
        load_images(config(tmp_path / "img", labels), 0)


def test_mixed_sizes_without_resize_are_named(tmp_path):
    write_png(tmp_path / "img" / "a.png", np.zeros((8, 8), np.uint8))
    write_png(tmp_path / "img" / "b.png", np.zeros((9, 8), np.uint8))
    labels = labels_sheet(
        tmp_path / "l.csv", [("a.png", "p1", "normal"), ("b.png", "p2", "lesion")]
    )
    with pytest.raises(DataError, match=r"b\.png: image is 8×9 pixels .*set data\.resize"):
        load_images(config(tmp_path / "img", labels, resize=False), 0)


def test_file_outside_the_folder_is_refused(tmp_path):
    write_png(tmp_path / "secret.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "img").mkdir()
    labels = labels_sheet(tmp_path / "l.csv", [("../secret.png", "p1", "normal")])
    with pytest.raises(DataError, match=r"'\.\./secret\.png' is outside"):
        load_images(config(tmp_path / "img", labels), 0)

"""Hospitals train a CNN on their own DICOM folders through medfed-server and medfed-client.

Three registered hospitals each keep a small synthetic DICOM export (16×16 CT-like images, a
labels CSV) and run two rounds over TLS with node authentication; a fourth reads its folder as
3-channel images, which the coordinator's 1-channel model does not fit: it refuses by name,
spends nothing, and the run goes on without it.
"""

import json

import pytest

from medfed.shared.privacy.verify import verify_ledger
from medfed.simulations.synthetic_dicom import WINDOW_CENTER, WINDOW_WIDTH, write_dicom_folder

pytestmark = pytest.mark.slow
HOSPITALS = ["North", "South", "East"]
MISMATCHED = "West"
IMAGE_SIZE = 16

IMAGING_DATA = f"""[data]
dataset = "imaging"
image_format = "dicom"
path = "{{name}}-export"
labels_path = "{{name}}-export/labels.csv"
classes = ["normal", "lesion"]
window_center = {WINDOW_CENTER}
window_width = {WINDOW_WIDTH}
image_size = {IMAGE_SIZE}
image_channels = {{channels}}
"""


def _imaging_federation(deployment, registered):
    """The test federation, with the coordinator's model a CNN for 1×16×16 images."""
    path = deployment.write_federation(registered, rounds=2, expected=len(registered))
    text = path.read_text(encoding="utf-8")
    text = text.replace('[model]\nname = "logistic"\n', '[model]\nname = "cnn"\nhidden_size = 4\n')
    text = text.replace("learning_rate = 2.0", "learning_rate = 1.0")
    text = text.replace(
        "[deployment]\n", f"[deployment]\ninput_shape = [1, {IMAGE_SIZE}, {IMAGE_SIZE}]\n"
    )
    path.write_text(text, encoding="utf-8")


def _imaging_hospital(deployment, name, seed, channels=1):
    """A hospital whose data is its own DICOM export (and whose policy allows the CNN)."""
    write_dicom_folder(deployment.root / f"{name}-export", 48, IMAGE_SIZE, seed)
    path = deployment.write_hospital(name)
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        f'[data]\npath = "{name}.csv"\n', IMAGING_DATA.format(name=name, channels=channels)
    )
    text = text.replace('allowed_models = ["logistic"]', 'allowed_models = ["cnn"]')
    path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def finished(deployment_in):
    deployment = deployment_in("imaging")
    registered = [*HOSPITALS, MISMATCHED]
    deployment.make_certs(registered)
    _imaging_federation(deployment, registered)
    for seed, name in enumerate(HOSPITALS):
        _imaging_hospital(deployment, name, seed)
    _imaging_hospital(deployment, MISMATCHED, 9, channels=3)
    server = deployment.start_server()
    for name in registered:
        deployment.start_hospital(name)
    assert deployment.wait_for(lambda: server.poll() is not None, 420), "run did not finish"
    deployment.server_code = server.returncode
    return deployment


def test_three_hospitals_train_a_cnn_on_their_own_dicom_folders(finished):
    assert finished.server_code == 0, finished.output("server.out")
    lines = finished.metrics()
    assert [(line["round"], line["phase"]) for line in lines] == [
        (1, "train"),
        (2, "train"),
        (2, "final"),
    ]
    for line in lines:
        assert set(line["hospitals"]) == set(HOSPITALS)
        for metrics in line["hospitals"].values():
            assert metrics["num_examples"] > 0  # a DP release of the test split's size
            assert 0 <= metrics.get("auroc", 0.5) <= 1  # absent when a DP histogram is empty
    privacy = json.loads((finished.root / "run" / "privacy.json").read_text())
    for name in HOSPITALS:
        assert privacy[name]["status"] == "active"
        assert 0 < privacy[name]["epsilon"] <= 1.0
        assert verify_ledger(finished.root / "state" / name / "ledger" / f"{name}.jsonl").valid
        # Preprocessed once, from the folder, into the hospital's own cache.
        assert len(list((finished.root / "state" / name / "cache").glob("*.npz"))) == 1


def test_a_hospital_whose_images_the_model_does_not_fit_refuses_by_name(finished):
    reason = finished.metrics()[0]["skipped"][MISMATCHED]
    assert reason.startswith("model_mismatch:") and "Traceback" not in reason
    assert "deployment.input_shape = [3, 16, 16]" in reason and "'0.weight'" in reason
    entry = json.loads((finished.root / "run" / "privacy.json").read_text())[MISMATCHED]
    assert entry["status"] == "refused"
    assert not (finished.root / "state" / MISMATCHED / "ledger" / f"{MISMATCHED}.jsonl").exists()
    assert "Traceback" not in finished.output(f"{MISMATCHED}.out")

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def _check(folder: Path) -> subprocess.CompletedProcess:
    """`medfed-client --config hospital.toml --check` run in `folder`."""
    return subprocess.run(
        [str(BIN / "medfed-client"), "--config", "hospital.toml", "--check"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_client_reports_every_problem_on_its_own_line_before_connecting(tmp_path):
    (tmp_path / "hospital.toml").write_text(
        'name = "Cleveland"\n'
        "[connection]\n"
        'superlink = "127.0.0.1:9"\n'
        'root_certificates = "missing/ca.crt"\n'
        'private_key = "missing/Cleveland"\n'
        "[data]\n"
        'path = "missing.csv"\n'
        "[privacy]\n"
        "max_epsilon = 1.0\n"
    )
    done = _check(tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 4, done.stderr
    assert "connection.root_certificates" in lines[0]
    assert "connection.private_key" in lines[1] and "medfed certs node" in lines[1]
    assert "data.path" in lines[2] and "missing.csv" in lines[2]
    assert "secure_aggregation.identity_key" in lines[3]  # secure aggregation is on by default
    assert "medfed certs hospital-identity" in lines[3]
    assert "Traceback" not in done.stderr + done.stdout


def test_client_names_an_unknown_key(tmp_path):
    (tmp_path / "hospital.toml").write_text('name = "X"\nmax_epsilon = 1\n')
    done = _check(tmp_path)
    assert done.returncode == 2
    assert "hospital.toml" in done.stderr and "Traceback" not in done.stderr


def test_client_check_names_a_peers_file_whose_fingerprint_does_not_match(tmp_path):
    from medfed.shared.crypto.identity import create_hospital_identity

    _, entry, printed = create_hospital_identity(tmp_path / "identity", "Cleveland")
    (tmp_path / "peers.toml").write_text(entry.read_text().replace(printed, "SHA256:00"))
    (tmp_path / "hospital.toml").write_text(
        'name = "Cleveland"\n'
        "[connection]\n"
        'superlink = "127.0.0.1:9"\n'
        "insecure = true\n"
        "[data]\n"
        'path = "missing.csv"\n'
        "[privacy]\n"
        "max_epsilon = 1.0\n"
        "[secure_aggregation]\n"
        'identity_key = "identity/Cleveland.identity.key"\n'
        'peers_file = "peers.toml"\n'
    )
    done = _check(tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr  # the data file, then the peers file
    assert "peers.toml" in lines[1] and "('Cleveland'): fingerprint SHA256:00" in lines[1]


IMAGING_HOSPITAL = """name = "North"
[connection]
superlink = "127.0.0.1:9"
insecure = true
[data]
dataset = "imaging"
image_format = "dicom"
path = "export"
labels_path = "export/labels.csv"
label_column = "{label_column}"
classes = ["normal", "lesion"]
window_center = 40
window_width = 400
image_size = 16
[privacy]
max_epsilon = 1.0
[secure_aggregation]
enabled = false
"""


def _imaging_check(folder: Path, problem: str) -> list[str]:
    """--check on a small DICOM export with one `problem`; the error lines."""
    from medfed.simulations.synthetic_dicom import write_dicom_folder

    write_dicom_folder(folder / "export", 8, 16, 0)
    label_column = "diagnosis" if problem == "column" else "label"
    if problem == "folder":
        (folder / "export").rename(folder / "elsewhere")
    if problem == "unreadable":
        next((folder / "export").rglob("*.dcm")).write_bytes(b"not a DICOM file")
    text = IMAGING_HOSPITAL.format(label_column=label_column)
    (folder / "hospital.toml").write_text(text, encoding="utf-8")
    done = _check(folder)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    return done.stderr.strip().splitlines()


def test_client_check_names_a_missing_image_folder(tmp_path):
    [line] = _imaging_check(tmp_path, "folder")
    assert "data.path" in line and str(tmp_path / "export") in line


def test_client_check_names_a_labels_column_the_sheet_lacks(tmp_path):
    [line] = _imaging_check(tmp_path, "column")
    assert "labels.csv" in line and "'diagnosis'" in line and "data.label_column" in line


def test_client_check_names_an_unreadable_dicom_file(tmp_path):
    [line] = _imaging_check(tmp_path, "unreadable")
    assert "IM0001.dcm" in line and "not a readable DICOM file" in line and "re-export" in line

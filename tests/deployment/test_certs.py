import ipaddress
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID
from flwr.cli.supernode.register import try_load_public_key

from medfed.shared.crypto.certs import create_ca, create_node_keys, create_server_certificate
from medfed.shared.errors import ConfigError


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_server_certificate_is_signed_by_the_ca_and_names_its_addresses(tmp_path):
    ca_path = create_ca(tmp_path)
    server_path = create_server_certificate(tmp_path, tmp_path, ["127.0.0.1", "coord.example"])
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    server = x509.load_pem_x509_certificate(server_path.read_bytes())
    server.verify_directly_issued_by(ca)  # raises if the signature or issuer is wrong
    sans = server.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert sans.get_values_for_type(x509.DNSName) == ["coord.example"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_private_keys_are_written_owner_only(tmp_path):
    create_ca(tmp_path)
    create_server_certificate(tmp_path, tmp_path, ["127.0.0.1"])
    pair = create_node_keys(tmp_path / "nodes", "Cleveland")
    for key in (tmp_path / "ca.key", tmp_path / "server.key", pair.private_key):
        assert _mode(key) == 0o600


def test_node_keys_are_in_the_format_flower_reads(tmp_path):
    pair = create_node_keys(tmp_path, "Hungary")
    private = serialization.load_ssh_private_key(pair.private_key.read_bytes(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    # Flower's own `flwr supernode register` loader accepts the public key.
    assert try_load_public_key(pair.public_key)
    public = serialization.load_ssh_public_key(pair.public_key.read_bytes())
    assert public.public_numbers() == private.public_key().public_numbers()


def test_existing_keys_are_never_overwritten(tmp_path):
    create_node_keys(tmp_path, "Hungary")
    before = (tmp_path / "Hungary").read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        create_node_keys(tmp_path, "Hungary")
    assert (tmp_path / "Hungary").read_bytes() == before


def test_server_certificate_without_a_ca_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="medfed certs init"):
        create_server_certificate(tmp_path, tmp_path, ["127.0.0.1"])


def test_certs_cli_creates_the_whole_set(tmp_path):
    binary = str(Path(sys.executable).parent / "medfed")
    for args in (
        ["init", "--out", str(tmp_path)],
        ["server", "--ca", str(tmp_path), "--name", "127.0.0.1", "--name", "localhost"],
        ["node", "Cleveland", "--out", str(tmp_path / "nodes")],
    ):
        done = subprocess.run([binary, "certs", *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    again = subprocess.run(
        [binary, "certs", "node", "Cleveland", "--out", str(tmp_path / "nodes")],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2 and "already exists" in again.stdout
    assert (tmp_path / "nodes" / "Cleveland.pub").is_file()

"""TLS certificates and hospital node keys for a deployed federation (all from `cryptography`).

A coordinator makes a CA once, a server certificate signed by it (SANs = the addresses the
hospitals dial), and one EC P-384 key pair per hospital in the OpenSSH format Flower's
SuperNode authentication reads. Private keys are written 0600 and never overwritten.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from medfed.shared.errors import ConfigError

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"
NODE_CURVE = ec.SECP384R1()


@dataclass(frozen=True)
class NodeKeyPair:
    private_key: Path
    public_key: Path


def write_private(path: Path, data: bytes) -> None:
    """Create `path` 0600; refuse to replace an existing key (that would orphan certificates)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path}: key already exists (delete it to make a new one)") from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "medfed"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)


def create_ca(out_dir: Path, common_name: str = "medfed CA", days: int = 3650) -> Path:
    """Write OUT/ca.crt and OUT/ca.key (0600); returns the certificate path.

    Raises:
        ConfigError: OUT/ca.key already exists.
    """
    key = ec.generate_private_key(NODE_CURVE)
    not_before, not_after = _validity(days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA384())
    )
    write_private(out_dir / CA_KEY, _pem_key(key))
    (out_dir / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out_dir / CA_CERT


def _load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = ca_dir / CA_CERT, ca_dir / CA_KEY
    if not cert_path.is_file() or not key_path.is_file():
        raise ConfigError(f"{ca_dir}: no {CA_CERT}/{CA_KEY} (run `medfed certs init` first)")
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except ValueError as exc:
        raise ConfigError(f"{ca_dir}: unreadable CA certificate or key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{key_path}: not an EC private key")
    return cert, key


def _san(entry: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(entry))
    except ValueError:
        return x509.DNSName(entry)


def create_server_certificate(
    ca_dir: Path, out_dir: Path, names: list[str], days: int = 825
) -> Path:
    """Write OUT/server.crt and OUT/server.key (0600) signed by the CA in `ca_dir`.

    `names` are the host names / IP addresses hospitals connect to (subject alternative names).

    Raises:
        ConfigError: no CA, no names, or OUT/server.key already exists.
    """
    if not names:
        raise ConfigError("certs server: give at least one --name (e.g. 127.0.0.1, localhost)")
    ca_cert, ca_key = _load_ca(ca_dir)
    key = ec.generate_private_key(NODE_CURVE)
    not_before, not_after = _validity(days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA384())
    )
    write_private(out_dir / SERVER_KEY, _pem_key(key))
    (out_dir / SERVER_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out_dir / SERVER_CERT


def create_node_keys(out_dir: Path, hospital: str) -> NodeKeyPair:
    """Write OUT/HOSPITAL (OpenSSH EC P-384 private key, 0600) and OUT/HOSPITAL.pub, the
    formats `flower-supernode --auth-supernode-private-key` and `flwr supernode register` read.

    Raises:
        ConfigError: a bad hospital name, or the key already exists.
    """
    if not hospital or "/" in hospital or hospital.startswith("."):
        raise ConfigError(f"certs node: '{hospital}' is not a usable file name for a hospital")
    key = ec.generate_private_key(NODE_CURVE)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    private_path, public_path = out_dir / hospital, out_dir / f"{hospital}.pub"
    write_private(private_path, private)
    public_path.write_bytes(public + f" {hospital}\n".encode())
    return NodeKeyPair(private_path, public_path)

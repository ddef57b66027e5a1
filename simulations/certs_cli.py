"""`medfed certs ...`: the CA, the coordinator's TLS certificate, hospital node keys, and the
hospital identity keys whose fingerprints the hospitals pin for secure aggregation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)

certs = typer.Typer(
    add_completion=False,
    help="TLS certificates, node keys and hospital identity keys for a deployed federation.",
)


@certs.command("init")
def certs_init(
    out: Annotated[Path, typer.Option("--out", help="folder for ca.crt / ca.key")] = Path("certs"),
    common_name: Annotated[str, typer.Option("--name", help="the CA's common name")] = "medfed CA",
) -> None:
    """Create the federation's certificate authority (ca.crt, ca.key 0600)."""
    from medfed.shared.crypto.certs import create_ca

    console.print(f"wrote {create_ca(out, common_name)} and {out / 'ca.key'} (keep it offline)")


@certs.command("server")
def certs_server(
    names: Annotated[
        list[str], typer.Option("--name", help="host name or IP hospitals dial (repeatable)")
    ],
    ca: Annotated[Path, typer.Option("--ca", help="folder holding ca.crt / ca.key")] = Path(
        "certs"
    ),
    out: Annotated[Path | None, typer.Option("--out", help="default: the CA folder")] = None,
) -> None:
    """Create the coordinator's TLS certificate (server.crt, server.key 0600) signed by the CA."""
    from medfed.shared.crypto.certs import create_server_certificate

    console.print(f"wrote {create_server_certificate(ca, out or ca, names)}")


@certs.command("node")
def certs_node(
    hospital: Annotated[str, typer.Argument(help="hospital name (the key's file name)")],
    out: Annotated[Path, typer.Option("--out", help="folder for the key pair")] = Path(
        "certs/nodes"
    ),
) -> None:
    """Create a hospital's SuperNode authentication key pair (OpenSSH EC P-384)."""
    from medfed.shared.crypto.certs import create_node_keys

    pair = create_node_keys(out, hospital)
    console.print(
        f"wrote {pair.private_key} (stays at the hospital) and {pair.public_key} "
        "(goes into the coordinator's federation.toml)"
    )


@certs.command("hospital-identity")
def certs_hospital_identity(
    name: Annotated[str, typer.Option("--name", help="the hospital's name, as in hospital.toml")],
    out: Annotated[Path, typer.Option("--out", help="folder for the key and its entry")] = Path(
        "identity"
    ),
) -> None:
    """Run at the hospital: its Ed25519 identity key (stays here, 0600) and the peers-file
    entry to send to the other hospitals, with the fingerprint to read out to them."""
    from medfed.shared.crypto.identity import create_hospital_identity

    key_path, entry_path, printed = create_hospital_identity(out, name)
    console.print(
        f"wrote {key_path} (never leaves this hospital) and {entry_path} (send it to the other "
        f"hospitals for their peers file)\nfingerprint of '{name}': {printed}\n(read it out to "
        "the other hospitals by phone or in person; they compare it before pinning the key)",
        markup=False,
    )


@certs.command("fingerprints")
def certs_fingerprints(
    peers_file: Annotated[Path, typer.Argument(help="a peers.toml to check and print")],
) -> None:
    """Check every entry's fingerprint against its key, then print name and fingerprint, to
    compare with each hospital out of band."""
    from medfed.shared.crypto.identity import fingerprint, load_peers

    for name, raw in load_peers(peers_file, str(peers_file)).items():
        console.print(f"{fingerprint(raw)}  {name}", markup=False)

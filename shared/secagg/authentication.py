"""Authenticated rosters: signed setup advertisements and the roster consistency check.

Each hospital signs its advertisement (run, name, id, both X25519 public keys) with its
Ed25519 identity key, which every other hospital pinned out of band. A hospital accepts a
roster only if every entry is signed by the pinned key of the name it carries, so a
coordinator cannot put keys of its own in place of a peer's. Then, as in Bonawitz et al.
2017's consistency check, each hospital signs a digest of the roster it accepted; the
coordinator echoes the survivors' signed digests in every unmask request, and a hospital
answers only if all of them match its own, so hospitals given different rosters find out
before any secret leaves them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medfed.shared.crypto.identity import fingerprint, public_bytes
from medfed.shared.errors import ConfigError, SecureAggregationError, SecureAggregationRefused
from medfed.shared.secagg.messages import (
    SIGNATURE_BYTES,
    Roster,
    SetupAdvertisement,
    UnmaskRequest,
)

ADVERTISEMENT_LABEL = "medfed/secagg/v1/advertisement"
ROSTER_LABEL = "medfed/secagg/v1/roster"
CONFIRMATION_LABEL = "medfed/secagg/v1/roster-confirmation"
UNAUTHENTICATED = "secure_aggregation_roster_unauthenticated"
INCONSISTENT = "secure_aggregation_roster_inconsistent"


def _frame(label: str, *parts: str | int | bytes) -> bytes:
    """Unambiguous bytes: the label and each part, length-prefixed (ints as 8 bytes)."""
    chunks = [label.encode()]
    for part in parts:
        if isinstance(part, bytes):
            chunks.append(part)
        elif isinstance(part, str):
            chunks.append(part.encode())
        else:
            chunks.append(int(part).to_bytes(8, "big"))
    return b"".join(len(chunk).to_bytes(4, "big") + chunk for chunk in chunks)


@dataclass(frozen=True)
class HospitalIdentity:
    """A hospital's name, its identity private key and the identity keys it pinned."""

    name: str
    private_key: Ed25519PrivateKey
    peers: Mapping[str, bytes]

    def __post_init__(self) -> None:
        own = public_bytes(self.private_key.public_key())
        if self.peers.get(self.name) != own:
            raise ConfigError(
                f"secure_aggregation.peers_file does not pin '{self.name}' to this hospital's "
                f"identity key (fingerprint {fingerprint(own)}); add its entry from "
                "NAME.peer.toml, or check secure_aggregation.identity_key"
            )

    def sign(self, payload: bytes) -> bytes:
        return self.private_key.sign(payload)

    def verifies(self, name: str, signature: bytes, payload: bytes) -> bool:
        """Whether `signature` over `payload` is by the key pinned for `name`."""
        pinned = self.peers.get(name)
        if pinned is None or len(signature) != SIGNATURE_BYTES:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(pinned).verify(signature, payload)
        except InvalidSignature:
            return False
        return True


def advertisement_payload(
    run_id: str, name: str, hospital_id: int, mask_public_key: bytes, share_public_key: bytes
) -> bytes:
    """What a setup advertisement's signature covers."""
    return _frame(ADVERTISEMENT_LABEL, run_id, name, hospital_id, mask_public_key, share_public_key)


def sign_advertisement(
    identity: HospitalIdentity,
    run_id: str,
    hospital_id: int,
    mask_public_key: bytes,
    share_public_key: bytes,
) -> SetupAdvertisement:
    """A setup advertisement of these keys, signed by `identity` for this run."""
    name = identity.name
    payload = advertisement_payload(run_id, name, hospital_id, mask_public_key, share_public_key)
    return SetupAdvertisement(
        hospital_id=hospital_id,
        name=name,
        mask_public_key=mask_public_key,
        share_public_key=share_public_key,
        signature=identity.sign(payload),
    )


def check_signed_roster(roster: Roster, identity: HospitalIdentity, where: str) -> None:
    """Every roster entry is signed for this run by the pinned key of its name.

    Raises:
        SecureAggregationError: a repeated name.
        SecureAggregationRefused: an unknown name, or a signature that does not verify (a
            substituted key, another run's advertisement, a coordinator's signature).
    """
    if len(set(roster.hospital_names)) != len(roster.hospital_names):
        raise SecureAggregationError(f"{where} lists a hospital name twice")
    entries = zip(
        roster.hospital_ids,
        roster.hospital_names,
        roster.mask_public_keys,
        roster.share_public_keys,
        roster.signatures,
        strict=True,
    )
    for hospital_id, name, mask_key, share_key, signature in entries:
        if name not in identity.peers:
            raise SecureAggregationRefused(
                f"{where} lists '{name}', which is not in this hospital's peers file",
                code=UNAUTHENTICATED,
            )
        payload = advertisement_payload(roster.run_id, name, hospital_id, mask_key, share_key)
        if not identity.verifies(name, signature, payload):
            raise SecureAggregationRefused(
                f"{where}: the keys listed for '{name}' (hospital {hospital_id}) are not signed "
                "by its pinned identity key; a substituted key is refused",
                code=UNAUTHENTICATED,
            )


def roster_digest(roster: Roster) -> bytes:
    """SHA-256 of everything a roster fixes: run, seed, parameters, members and their keys."""
    members = sorted(
        zip(
            roster.hospital_ids,
            roster.hospital_names,
            roster.mask_public_keys,
            roster.share_public_keys,
            strict=True,
        )
    )
    parts: list[str | int | bytes] = [
        roster.run_id,
        roster.run_seed,
        roster.neighbours,
        roster.threshold,
        roster.field_bits,
        roster.quantization_bits,
        float(roster.clipping_range).hex(),
        len(members),
    ]
    for member in members:
        parts.extend(member)
    return hashlib.sha256(_frame(ROSTER_LABEL, *parts)).digest()


def confirmation_payload(run_id: str, digest: bytes) -> bytes:
    """What a hospital's roster confirmation signs."""
    return _frame(CONFIRMATION_LABEL, run_id, digest)


def confirm_roster(identity: HospitalIdentity, roster: Roster) -> bytes:
    """This hospital's signature over the digest of the roster it accepted."""
    return identity.sign(confirmation_payload(roster.run_id, roster_digest(roster)))


def check_confirmations(
    roster: Roster, request: UnmaskRequest, identity: HospitalIdentity, where: str
) -> None:
    """The request carries one signed roster digest per survivor, at least t of them, and
    each is the digest of our roster signed by that survivor's pinned key.

    Raises:
        SecureAggregationRefused: a missing, forged or different confirmation (the
            coordinator gave some hospitals another roster, or withheld one).
    """
    if len(request.confirmations) != len(request.survivors):
        raise SecureAggregationRefused(
            f"{where} carries {len(request.confirmations)} roster confirmations for "
            f"{len(request.survivors)} survivors; every survivor's is needed",
            code=INCONSISTENT,
        )
    if len(request.survivors) < roster.threshold:
        raise SecureAggregationError(f"{where} has fewer than t = {roster.threshold} survivors")
    payload = confirmation_payload(roster.run_id, roster_digest(roster))
    names = dict(zip(roster.hospital_ids, roster.hospital_names, strict=True))
    for survivor, signature in zip(request.survivors, request.confirmations, strict=True):
        name = names.get(survivor)
        if name is None or not identity.verifies(name, signature, payload):
            raise SecureAggregationRefused(
                f"{where}: hospital {survivor} ({name or 'not on the roster'}) did not confirm "
                "the roster this hospital accepted (the hospitals were given different rosters, "
                "or a confirmation was forged); the unmask request is refused",
                code=INCONSISTENT,
            )

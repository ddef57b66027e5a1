from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.proto.node_pb2 import NodeInfo  # noqa: TID251 - a test builds Flower's node record

from medfed.server.identities import HospitalIdentities


def _key() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP384R1()).public_key()


class _Grid:
    """Flower's node registry as the SuperLink reports it (PEM keys, as Flower stores them)."""

    def __init__(self, nodes: dict[int, ec.EllipticCurvePublicKey]):
        self.nodes = nodes

    def get_nodes(self):
        pem = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        return [NodeInfo(node_id=n, public_key=k.public_bytes(*pem)) for n, k in self.nodes.items()]


def _openssh(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def test_a_node_is_named_by_its_authenticated_key_whatever_it_claims():
    cleveland, hungary, intruder = _key(), _key(), _key()
    grid = _Grid({11: cleveland, 22: hungary})
    keys = {"Cleveland": _openssh(cleveland), "Hungary": _openssh(hungary)}
    identities = HospitalIdentities.registered_keys(grid, keys)
    assert identities.attribute(22, "Cleveland").name == "Hungary"
    assert identities.attribute(11, "Cleveland").finding == ""
    grid.nodes[33] = intruder  # connected later, with a key nobody registered
    assert identities.attribute(33, "Cleveland").name is None


def test_a_hospital_that_connects_late_is_found_on_the_next_lookup():
    cleveland = _key()
    grid = _Grid({})
    identities = HospitalIdentities.registered_keys(grid, {"Cleveland": _openssh(cleveland)})
    assert identities.attribute(11, "Cleveland").name is None
    grid.nodes[11] = cleveland
    assert identities.attribute(11, "Cleveland").name == "Cleveland"


def test_a_hospital_that_replies_and_leaves_is_still_named():
    va = _key()
    grid = _Grid({11: va})
    identities = HospitalIdentities.registered_keys(grid, {"VA": _openssh(va)})
    identities.learn([11])  # when the run admits its members
    del grid.nodes[11]  # its node is gone (left for good) before its reply is sorted
    assert identities.attribute(11, "VA").name == "VA"

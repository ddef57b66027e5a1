"""Which hospital each node is: the one place that names the sender of a reply.

A reply says which hospital it comes from (`Outcome.hospital`), but that is the sender's word.
The coordinator files a reply under the name bound to the node that sent it (Flower's
authenticated `src_node_id`), so no hospital can write another's metrics or privacy entry or
claim its weight. Where the binding comes from:

- deployment with SuperNode authentication: the node's public key, as Flower's SuperLink
  authenticated it (`Grid.get_nodes()`), matched against the keys medfed-server registered
  for `[[deployment.hospitals]]` (`registered_keys`);
- simulation: the simulation runner's record of which partition each simulated node serves
  (there is no authentication in one process; the runner is trusted, see
  `medfed.simulations.hospitals.NodeRoster`);
- no authentication (`--insecure`, `node_authentication = false`): trust on first use — a node
  keeps the first name it claimed, and no second node can take a name already bound. This
  stops a later impersonation, not a hospital that claims a name before its owner does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from flwr.serverapp import Grid

log = logging.getLogger("medfed.server")
NodeLookup = Callable[[int], str | None]


@dataclass(frozen=True)
class Attribution:
    """Who sent a reply: `name` is None when no hospital can be named for the node."""

    name: str | None
    finding: str = ""


class HospitalIdentities:
    """Binds node ids to hospital names for a whole run; `attribute` names each reply.

    `lookup` is the authority (node id → name, None for a node it does not know); without one,
    names are bound on first use.
    """

    def __init__(self, lookup: NodeLookup | None = None) -> None:
        self.lookup = lookup
        self.bound: dict[int, str] = {}

    @classmethod
    def trust_on_first_use(cls) -> HospitalIdentities:
        return cls()

    @classmethod
    def registered_keys(cls, grid: Grid, keys: Mapping[str, bytes]) -> HospitalIdentities:
        """Names from the nodes' authenticated keys; `keys` maps each registered hospital to
        its node public key (OpenSSH or PEM bytes, as `medfed certs node` writes it)."""
        return cls(RegisteredKeys(grid, keys))

    def learn(self, nodes: Iterable[int]) -> None:
        """Name `nodes` now, while they are connected: a node that replies and then leaves
        for good is no longer listed by the grid, yet its reply must still be named."""
        if self.lookup is None:
            return
        for node in nodes:
            if node not in self.bound and (name := self.lookup(node)) is not None:
                self.bound[node] = name

    def attribute(self, node: int, claimed: str) -> Attribution:
        """The name a reply from `node` is filed under, and a finding if it claimed another."""
        name = self.bound.get(node)
        if name is None and self.lookup is not None:
            name = self.lookup(node)
            if name is None:
                return Attribution(None, f"node {node} is not a registered hospital")
        if name is None:
            holder = next((n for n, bound in self.bound.items() if bound == claimed), None)
            if holder is not None:
                return Attribution(
                    None, f"node {node} claimed '{claimed}', already bound to node {holder}"
                )
            name = claimed
        self.bound[node] = name
        if claimed == name:
            return Attribution(name)
        finding = f"node {node} ({name}) claimed to be '{claimed}'"
        log.warning("%s; its reply is filed under '%s'", finding, name)
        return Attribution(name, finding)


def _key_der(key: bytes) -> bytes | None:
    """A public key's canonical bytes (DER SubjectPublicKeyInfo), or None if unreadable."""
    for load in (serialization.load_ssh_public_key, serialization.load_pem_public_key):
        try:
            public_key = load(key)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        return public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return None


class RegisteredKeys:
    """node id → hospital name by the node's authenticated key; asks the grid again for a node
    it has not seen (a hospital that connected late)."""

    def __init__(self, grid: Grid, keys: Mapping[str, bytes]) -> None:
        self.grid = grid
        self.names = {der: name for name, key in keys.items() if (der := _key_der(key))}
        self.nodes: dict[int, str] = {}

    def _refresh(self, nodes: Iterable) -> None:  # Flower's NodeInfo messages
        for info in nodes:
            der = _key_der(bytes(info.public_key)) if info.public_key else None
            if der in self.names:
                self.nodes[int(info.node_id)] = self.names[der]

    def __call__(self, node: int) -> str | None:
        if node not in self.nodes:
            self._refresh(self.grid.get_nodes())
        return self.nodes.get(node)

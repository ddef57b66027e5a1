"""Privacy accounting on Opacus accountants: ε of a step history (noise for a budget:
`medfed.shared.privacy.calibrate`).

A history is Opacus's own format: a list of (noise_multiplier, sample_rate, steps).
"""

from __future__ import annotations

from collections.abc import Sequence

from opacus.accountants import IAccountant, PRVAccountant, RDPAccountant

from medfed.shared.errors import ConfigError

History = list[tuple[float, float, int]]
ACCOUNTANTS: dict[str, type[IAccountant]] = {"rdp": RDPAccountant, "prv": PRVAccountant}
# Opacus's orders stop at 63; heavy noise over few steps wants higher ones for a tight bound.
RDP_ORDERS = [*RDPAccountant.DEFAULT_ALPHAS, 80.0, 96.0, 128.0, 192.0, 256.0, 384.0, 512.0, 1024.0]


def make_accountant(name: str, history: Sequence[tuple[float, float, int]] = ()) -> IAccountant:
    """An Opacus accountant of kind `name` ("rdp" or "prv") holding `history`.

    Raises:
        ConfigError: unknown accountant (GDP is not offered: it is not a valid bound).
    """
    if name not in ACCOUNTANTS:
        raise ConfigError(f"privacy.accountant: unknown accountant '{name}' (use rdp or prv)")
    accountant = ACCOUNTANTS[name]()
    accountant.history = [(float(s), float(q), int(n)) for s, q, n in history if n > 0]
    return accountant


def epsilon_of(history: Sequence[tuple[float, float, int]], delta: float, accountant: str) -> float:
    """ε at `delta` of every step in `history`, composed by the named Opacus accountant.

    Steps with the same (σ, q) are pooled first: composition is order-free and the RDP/PRV
    of n identical steps is Opacus's n-step value, so this is exact and keeps long ledgers fast.
    """
    pooled: dict[tuple[float, float], int] = {}
    for sigma, rate, steps in history:
        if steps > 0:
            key = (float(sigma), float(rate))
            pooled[key] = pooled.get(key, 0) + int(steps)
    if not pooled:
        return 0.0
    composed = make_accountant(accountant, [(s, q, n) for (s, q), n in pooled.items()])
    if isinstance(composed, RDPAccountant):
        return float(composed.get_epsilon(delta=delta, alphas=RDP_ORDERS))
    return float(composed.get_epsilon(delta=delta))

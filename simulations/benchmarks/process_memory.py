"""Peak resident memory of a whole process tree (a simulation and its Ray processes).

Sampled in a thread from /proc (Linux), so processes that Ray starts and stops are counted
while they live. Two sums: RSS counts shared pages (torch's libraries, mapped by the driver and
every worker) once per process, an upper bound; PSS splits each shared page among the
processes that map it, so its sum is what the tree costs the machine.
"""

from __future__ import annotations

import threading
from pathlib import Path

PROC = Path("/proc")


def _parents() -> dict[int, int]:
    """pid → parent pid of every live process."""
    parents = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # Field 4 is the parent; the command in field 2 may hold spaces and ')'.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _rss_and_pss(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes; zeros when it is gone or unreadable."""
    try:
        rollup = (PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return 0, 0
    sizes = {}
    for line in rollup.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            sizes[key] = int(rest.split()[0]) * 1024
    return sizes.get("Rss", 0), sizes.get("Pss", 0)


def tree_memory_bytes(root: int) -> tuple[int, int]:
    """Summed (RSS, PSS) of `root` and all its descendants."""
    pairs = [_rss_and_pss(pid) for pid in _descendants(root)]
    return sum(rss for rss, _ in pairs), sum(pss for _, pss in pairs)


class PeakTreeMemory:
    """Context manager sampling `tree_memory_bytes(pid)` every `interval_s`; afterwards
    `peak_rss_bytes` and `peak_pss_bytes` hold the largest sums seen."""

    def __init__(self, pid: int, interval_s: float = 0.5) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.peak_rss_bytes = self.peak_pss_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss, pss = tree_memory_bytes(self.pid)
            self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
            self.peak_pss_bytes = max(self.peak_pss_bytes, pss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakTreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

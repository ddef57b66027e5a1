"""A Grid view of the run's members: the nodes a strategy may sample, and every exchange counted.

Flower's strategies sample from `grid.get_node_ids()`; handing them this view instead of the
grid means they only ever see the hospitals medfed's `Membership` says may take part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flwr.app import Message
from flwr.serverapp import Grid

from medfed.shared.flower_internals import Run


class DelegatingGrid(Grid):
    """A Grid that hands every call to `grid`; subclasses change what they need."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid

    def set_run(self, run: Run) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        return self.grid.run

    def create_message(self, *args, **kwargs) -> Message:  # noqa: ANN002, ANN003
        return self.grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def get_nodes(self):  # noqa: ANN201 - Flower's NodeInfo iterable
        return self.grid.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self.grid.send_and_receive(messages, timeout=timeout)


class MemberGrid(DelegatingGrid):
    """`get_node_ids` lists `nodes()`; `exchanges` counts the send-and-receive rounds of this
    view and of every view `limited_to` makes from it."""

    def __init__(self, grid: Grid, nodes: Callable[[], Iterable[int]]) -> None:
        super().__init__(grid)
        self.nodes = nodes
        self.exchanges = 0

    def limited_to(self, nodes: Iterable[int]) -> MemberGrid:
        """A view listing exactly `nodes` (a round's sample) whose exchanges count here."""
        fixed = sorted(nodes)
        return _SampleGrid(self, lambda: fixed)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.nodes())

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        self.exchanges += 1
        return self.grid.send_and_receive(messages, timeout=timeout)


class _SampleGrid(MemberGrid):
    """A view of `parent` limited to one sample; its exchanges count in `parent`."""

    def __init__(self, parent: MemberGrid, nodes: Callable[[], Iterable[int]]) -> None:
        super().__init__(parent.grid, nodes)
        self.parent = parent

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self.parent.send_and_receive(messages, timeout=timeout)

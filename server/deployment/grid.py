"""A Grid that polls for replies at a short interval, through the Grid's public methods only.

Flower's deployed Grid sleeps 3 s between pulls; a round that finishes in 1 s would wait 3.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import Message
from flwr.serverapp import Grid

from medfed.shared.flower_internals import Run


class PollingGrid(Grid):
    """Delegates to `grid`; `send_and_receive` pulls every `poll_interval_s`."""

    def __init__(self, grid: Grid, poll_interval_s: float = 0.1) -> None:
        self.grid, self.poll_interval_s = grid, poll_interval_s

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
        pending = set(self.push_messages(messages))
        deadline = time.monotonic() + (timeout if timeout is not None else 0.0)
        replies: list[Message] = []
        while pending and (timeout is None or time.monotonic() < deadline):
            pulled = list(self.pull_messages(pending))
            replies.extend(pulled)
            pending.difference_update(m.metadata.reply_to_message_id for m in pulled)
            if pending:
                time.sleep(self.poll_interval_s)
        return replies

"""A Grid that polls for replies at a short interval, through the Grid's public methods only.

Flower's deployed Grid sleeps 3 s between pulls; a round that finishes in 1 s would wait 3.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import Message
from flwr.serverapp import Grid

from medfed.server.member_grid import DelegatingGrid


class PollingGrid(DelegatingGrid):
    """Delegates to `grid`; `send_and_receive` pulls every `poll_interval_s`."""

    def __init__(self, grid: Grid, poll_interval_s: float = 0.1) -> None:
        super().__init__(grid)
        self.poll_interval_s = poll_interval_s

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

import pytest
import torch

from medfed.server.deployment.grid import PollingGrid
from medfed.server.deployment.start import last_checkpoint
from medfed.shared.errors import ConfigError


class _Metadata:
    def __init__(self, reply_to):
        self.reply_to_message_id = reply_to


class _Reply:
    def __init__(self, reply_to):
        self.metadata = _Metadata(reply_to)


class _SlowGrid:
    """Answers message `a` on the 2nd pull and `b` on the 4th."""

    def __init__(self):
        self.pulls = 0

    def push_messages(self, messages):
        return ["a", "b"]

    def pull_messages(self, message_ids):
        self.pulls += 1
        ready = {2: ["a"], 4: ["b"]}.get(self.pulls, [])
        return [_Reply(i) for i in ready if i in set(message_ids)]


def test_polling_grid_collects_every_reply_at_its_own_interval():
    inner = _SlowGrid()
    grid = PollingGrid(inner, poll_interval_s=0.01)
    replies = grid.send_and_receive([object(), object()], timeout=5)
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["a", "b"]
    assert inner.pulls == 4


def test_polling_grid_gives_up_at_the_timeout():
    inner = _SlowGrid()
    replies = PollingGrid(inner, poll_interval_s=0.05).send_and_receive([object()], timeout=0.06)
    assert len(replies) <= 1


def test_resume_picks_the_last_checkpointed_round(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoints"):
        last_checkpoint(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    for n in (0, 2, 10):
        torch.save({}, tmp_path / "checkpoints" / f"round_{n}.pt")
    (tmp_path / "checkpoints" / "round_x.pt").write_text("")
    assert last_checkpoint(tmp_path) == 10

"""medfed's coordinator as a Flower strategy wrapper, in the shape of Flower's
`DifferentialPrivacyServerSideFixedClipping(strategy)`.

`configure_train` samples (seeded, from the active members only) and adds the secure-
aggregation roster to every message; `aggregate_train` sorts the typed replies, drops
hospitals that refused, checks there are enough updates and aggregates them, or turns the
secure sum into the aggregate. Everything else is the wrapped strategy's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg, Strategy

from medfed.server.identities import HospitalIdentities
from medfed.server.member_grid import MemberGrid
from medfed.server.membership import Membership, RunStopped, training_sample
from medfed.server.replies import SortedReplies, sort_replies
from medfed.server.round_log import record_privacy
from medfed.server.secure import SecureAggregator
from medfed.shared.config.models import RunConfig
from medfed.shared.errors import SecureAggregationError
from medfed.shared.protocol import ARRAYS, WEIGHT_KEY
from medfed.shared.secagg import UnmaskIncomplete

log = logging.getLogger("medfed.server")


class MedfedStrategy(Strategy):
    """Wraps `strategy` (built to take every node it is shown: `build_strategy`)."""

    def __init__(
        self,
        strategy: Strategy,
        run: RunConfig,
        membership: Membership,
        identities: HospitalIdentities,
        secure: SecureAggregator | None = None,
        privacy: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.strategy, self.run, self.membership = strategy, run, membership
        self.identities, self.secure = identities, secure
        self.privacy = privacy if privacy is not None else {}  # privacy.json's entries
        self.current_arrays = ArrayRecord()
        self.attempt = 0  # secure aggregation: fresh masks for each retry of a round
        self.replies = SortedReplies()  # the last round's replies, for its metrics line

    def __repr__(self) -> str:
        return f"medfed coordinator around {self.strategy!r}"

    def summary(self) -> None:
        log.info(
            "medfed: seeded sampling of active hospitals, typed replies, secure=%s",
            bool(self.secure),
        )
        self.strategy.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: MemberGrid
    ) -> Iterable[Message]:
        """One training message per sampled active hospital, each with its own content.

        Raises:
            TooFewHospitals: fewer than `strategy.min_hospitals` active within `timeout_s`.
        """
        self.replies = SortedReplies()
        self.membership.await_rejoining()
        active = self.membership.await_quorum(server_round)
        strategy = self.run.strategy
        sample = training_sample(
            active, strategy.fraction_train, strategy.min_hospitals, self.run.seed, server_round
        )
        self.current_arrays = arrays
        messages = list(
            self.strategy.configure_train(server_round, arrays, config, grid.limited_to(sample))
        )
        roster = dict(self.secure.roster_records.items()) if self.secure is not None else {}
        for message in messages:  # Flower's strategies share one RecordDict across messages
            message.content = RecordDict({**dict(message.content.items()), **roster})
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The new global model from the accepted updates (or their secure sum).

        Raises:
            RunStopped: fewer accepted updates than `strategy.min_hospitals`, or secure
                aggregation cannot complete safely.
            UnmaskIncomplete: a survivor vanished while unmasking; retry the round.
        """
        strategy = self.run.strategy
        self.replies = sort_replies(
            list(replies), self.current_arrays, self.identities, strategy.max_update_norm
        )
        names = self.replies.names
        self.membership.drop(node for node, name in names.items() if name in self.replies.refused)
        record_privacy(self.privacy, self.replies, self.run.privacy)
        contributors = len(self.replies.updates) + len(self.replies.uploads)
        if contributors < strategy.min_hospitals:
            raise RunStopped(
                f"round {server_round}: {contributors} hospital update(s), fewer than "
                f"strategy.min_hospitals = {strategy.min_hospitals}; the run ends here"
            )
        if self.secure is None:
            return self.strategy.aggregate_train(server_round, self.replies.updates)
        try:
            arrays, weight = self.secure.aggregate(
                server_round, self.attempt, self.replies.uploads, self.current_arrays
            )
        except UnmaskIncomplete:
            raise
        except SecureAggregationError as error:
            raise RunStopped(f"round {server_round}: secure aggregation failed: {error}") from None
        metrics = MetricRecord({WEIGHT_KEY: float(weight)})
        if type(self.strategy).aggregate_train is FedAvg.aggregate_train:
            return arrays, metrics  # the secure sum is FedAvg's weighted mean already
        # A server optimiser (FedAdam) steps from the mean: hand it the mean as one update.
        content = RecordDict({ARRAYS: arrays, "metrics": metrics})
        mean = Message(content, dst_node_id=0, message_type=MessageType.TRAIN)
        return self.strategy.aggregate_train(server_round, [mean])

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: MemberGrid
    ) -> Iterable[Message]:
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, replies)

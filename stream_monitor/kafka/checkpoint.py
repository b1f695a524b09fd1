"""Committing an instance's progress, in order, with one error type for each step that fails.

For the input partitions this instance owns, after the caller evaluated
(judged windows and queued drift events, or published partials):

1. write each partition's state that changed, with the offset it reflects, to
   the changelog topic (:mod:`stream_monitor.kafka.changelog`);
2. wait briefly for dead letters in flight (they never hold back a commit);
3. flush the producer and confirm delivery of everything produced: the drift
   events, the partials and the state; nothing is committed otherwise
   (:class:`StateNotDelivered`);
4. commit the offsets of the messages processed (:class:`OffsetsNotCommitted`).

So the state stored with an offset always reflects every message before it,
and a drift event is delivered before the offsets of the messages that raised
it are committed. (The shape follows quix-streams' checkpointing.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from confluent_kafka import KafkaException, TopicPartition

from stream_monitor.kafka.changelog import ChangelogWriter
from stream_monitor.kafka.producer import DELIVERY_TIMEOUT_S, DeliveryError
from stream_monitor.state.keys import PartitionKey

if TYPE_CHECKING:
    from stream_monitor.engine import Engine
    from stream_monitor.kafka.connection import KafkaConnection

#: How long a checkpoint waits for dead letters in flight before it commits anyway.
DEAD_LETTER_WAIT_S = 2.0


class CommitError(RuntimeError):
    """A step of the commit failed; the steps after it did not run (retried next time)."""


class StateNotDelivered(CommitError):
    """The broker did not acknowledge what was produced; the state is written again in full."""


class OffsetsNotCommitted(CommitError):
    """The broker refused the offset commit; the next checkpoint commits them again."""


class Checkpoint:
    """What the next commit writes and commits, when it is due, and the commit itself."""

    def __init__(
        self,
        engine: Engine,
        connection: KafkaConnection,
        changelog: ChangelogWriter | None,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.connection = connection
        self.changelog = changelog
        self.interval_s = interval_s
        self.clock = clock
        self.started_at = clock()
        #: The offset each partition's state was last written to the changelog at.
        self._written: dict[PartitionKey, int | None] = {}
        self._judged_panes = 0

    def due(self) -> bool:
        """Whether ``interval_s`` passed since the last commit was tried."""
        return self.clock() - self.started_at >= self.interval_s

    def written(self, key: PartitionKey, next_offset: int | None) -> None:
        """Record that ``key``'s state at ``next_offset`` is in the changelog (restored)."""
        self._written[key] = next_offset

    def forget(self, key: PartitionKey) -> None:
        """Forget a partition this instance no longer owns."""
        self._written.pop(key, None)

    def rewrite_all(self) -> None:
        """Write every partition's state in full next time (a new producer)."""
        for key in self.engine.store.ledgers:
            self.engine.store.rewrite(key)
        self._written.clear()

    def commit(self, owned: Iterable[PartitionKey]) -> None:
        """Write the owned partitions' state, confirm delivery, commit their offsets.

        Raises :class:`StateNotDelivered` or :class:`OffsetsNotCommitted`.
        """
        self.started_at = self.clock()
        store = self.engine.store
        owned = [key for key in store.ledgers if key in set(owned)]
        self._write_state(owned)
        connection = self.connection
        if connection.dead_letters is not None:
            connection.dead_letters.settle(DEAD_LETTER_WAIT_S)
        try:
            connection.writer.confirm(DELIVERY_TIMEOUT_S)
        except DeliveryError as exc:
            for key in owned:
                store.rewrite(key)
                self._written.pop(key, None)
            raise StateNotDelivered(str(exc)) from exc
        offsets = [
            TopicPartition(topic, partition, offset)
            for topic, partition in owned
            if (offset := store.next_offset((topic, partition))) is not None
        ]
        if not offsets:
            return
        try:
            connection.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise OffsetsNotCommitted(f"offset commit failed: {exc.args[0]}") from exc

    def _write_state(self, owned: list[PartitionKey]) -> None:
        """Write each owned partition's changed state to the changelog."""
        if self.changelog is None:
            return
        engine, store = self.engine, self.engine.store
        # Every partition's checkpoint carries the severities and how far each model
        # was judged: once judging moved, all are rewritten, so none restores stale ones.
        judged = engine.judge.judged_panes != self._judged_panes
        self._judged_panes = engine.judge.judged_panes
        for key in owned:
            next_offset = store.next_offset(key)
            unchanged = not store.unwritten(key) and not judged
            if unchanged and self._written.get(key) == next_offset:
                continue
            changed, evicted, meta = engine.checkpoint_partition(key)
            self.changelog.write(key, changed, evicted, meta)
            self._written[key] = next_offset

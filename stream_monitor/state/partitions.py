"""The input partitions an instance reads: their ledgers, and when a pane is closed.

A pane is closed once every active input partition's watermark (the largest
event time it carried) has passed the pane's end by the allowed lateness. A
partition that is caught up (nothing left to read) and whose watermark did not
move for ``windows.idle_timeout_s`` of wall time is not active; one that stalls
with messages left to read (a rebalance, a crashed replica) is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from stream_monitor.state.ledger import PartitionKey, PartitionLedger


class InputPartitions:
    """The ledger of every input partition, and the partitions expected to send events.

    ``clock`` (monotonic seconds) enables the idle timeout; without it (replay,
    benchmarks) a pane closes only when every partition passed it.
    """

    def __init__(
        self, hot_panes: int, idle_timeout_s: float, clock: Callable[[], float] | None
    ) -> None:
        self.hot_panes = hot_panes
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self.ledgers: dict[PartitionKey, PartitionLedger] = {}
        self._expected: dict[PartitionKey, float | None] = {}

    def ledger(self, key: PartitionKey) -> PartitionLedger:
        """The ledger of input partition ``key`` (created on first use)."""
        ledger = self.ledgers.get(key)
        if ledger is None:
            ledger = self.ledgers[key] = PartitionLedger(key, self.hot_panes)
        return ledger

    def expect(self, keys: Iterable[PartitionKey]) -> None:
        """Input partitions that hold panes open until they pass them (or go idle)."""
        for key in keys:
            self._expected.setdefault(key, self.clock() if self.clock is not None else None)

    @property
    def expected(self) -> set[PartitionKey]:
        """The input partitions that hold panes open (see :meth:`expect`)."""
        return set(self._expected)

    def drop(self, key: PartitionKey) -> PartitionLedger | None:
        """Forget a partition (revoked or lost); its ledger, if it had one."""
        self._expected.pop(key, None)
        return self.ledgers.pop(key, None)

    def closing_watermark(self) -> float:
        """The event time every active input partition has reached.

        Active: expected or carrying events, and not idle (caught up and still for
        ``idle_timeout_s``). When every partition is idle, the largest watermark
        of all (nothing more is coming).
        """
        now = self.clock() if self.clock is not None else None
        keys = set(self._expected) | {k for k, ledger in self.ledgers.items() if ledger.watermarks}
        active, seen = [], []
        for key in keys:
            ledger = self.ledgers.get(key)
            mark = ledger.event_time if ledger is not None else -math.inf
            if mark > -math.inf:
                seen.append(mark)
            since = ledger.advanced_at if ledger is not None else None
            since = self._expected.get(key) if since is None else since
            caught_up = ledger is None or ledger.caught_up
            idle = now is not None and since is not None and now - since >= self.idle_timeout_s
            if caught_up and idle:
                continue
            active.append(mark)
        return min(active) if active else max(seen, default=-math.inf)

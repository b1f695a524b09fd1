"""A model version's pane vectors across partition ledgers, and the windows that sum them."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from stream_monitor.state.keys import PartitionKey, VersionKey
from stream_monitor.state.windows import JudgedWindows, SlidingWindows

if TYPE_CHECKING:
    from stream_monitor.state.ledger import PartitionLedger


class VersionPanes:
    """Where a pane delta is written: its partition's ledger, the windows, the cumulative sum.

    The panes are stored once, in the ledgers of the input partitions they came
    from; the live ``windows`` (ending at the newest pane) and the ``judged``
    windows (ending at the newest closed pane) keep running sums over them.
    """

    def __init__(
        self,
        key: VersionKey,
        width: int,
        window_sizes: dict[str, int],
        keep_panes: int,
        max_unjudged_panes: int,
        pane_s: float,
    ) -> None:
        self.key = key
        self.pane_s = pane_s
        self.keep_panes = keep_panes
        self.ledgers: dict[PartitionKey, PartitionLedger] = {}
        source = LedgerPanes(key, self.ledgers)
        self.windows = SlidingWindows(width, window_sizes, keep_panes, source)
        self.judged = JudgedWindows(width, window_sizes, keep_panes, source, max_unjudged_panes)
        self.cumulative = np.zeros(width)
        self.watermark_s = -np.inf

    def add(
        self, ledger: PartitionLedger, pane_index: np.ndarray, deltas_of: Any, *columns: Any
    ) -> None:
        """Count rows in their panes: ``deltas_of(*columns, rows, n_panes)`` gives the deltas."""
        first = pane_index[0] if len(pane_index) else None
        if first is not None and (pane_index == first).all():  # the usual batch: one pane
            panes, rows = np.array([first]), np.zeros(len(pane_index), dtype=np.int64)
        else:
            panes, rows = np.unique(pane_index, return_inverse=True)
        deltas = deltas_of(*columns, rows.astype(np.int64, copy=False), len(panes))
        for pane, delta in zip(panes.tolist(), deltas, strict=True):
            self.credit(ledger, pane, delta)

    def credit(self, ledger: PartitionLedger, pane: int, delta: np.ndarray) -> None:
        """Add ``delta`` to ``pane`` in ``ledger``'s partition."""
        ledger.add(self.key, pane, delta)
        self.ledgers[ledger.key] = ledger
        self._follow(pane, delta)
        self.cumulative += delta

    def _follow(self, pane: int, delta: np.ndarray) -> None:
        """Add a pane's change to every live and judged window holding the pane."""
        self.windows.add(pane, delta)
        self.judged.follow(pane, delta)

    def advance(self, event_ts: float) -> None:
        """Slide the live windows to ``event_ts`` (panes are let go later, by :meth:`evict`)."""
        if event_ts <= self.watermark_s:
            return
        self.watermark_s = event_ts
        self.windows.advance(math.floor(event_ts / self.pane_s))  # pane_of of one time

    def merge(self, ledger: PartitionLedger, pane: int, vector: np.ndarray) -> bool:
        """Take a partition's newest partial summary of ``pane`` (scale-out aggregation).

        Returns False, keeping nothing, when the pane already left every window.
        """
        oldest = self.windows.oldest_pane
        if oldest is not None and pane < oldest - self.keep_panes:
            return False
        delta = ledger.replace(self.key, pane, vector)
        self.ledgers[ledger.key] = ledger
        self._follow(pane, delta)
        self.cumulative += delta
        return True

    def follow_watermark(self, ledger: PartitionLedger) -> None:
        """Slide the live windows to a partition's reported watermark (scale-out aggregation)."""
        self.ledgers[ledger.key] = ledger
        self.advance(ledger.watermark(self.key))

    def evict(self, judging: bool) -> None:
        """Forget panes that left every live window and that no window still to be judged needs.

        Only when judging stays more than ``windows.max_unjudged_s`` behind the
        newest pane are the oldest window ends given up
        (:meth:`JudgedWindows.skip_behind`), so memory stays bounded. Without
        ``judging`` (an ingest replica) panes are kept for twice the horizon,
        and until they are published.
        """
        live = self.windows.oldest_pane
        if live is None:
            return
        if judging:
            self.judged.skip_behind(self.windows.end_pane)
            oldest = min(live, self.judged.first_needed_pane(self.windows.end_pane))
        else:
            oldest = live - self.keep_panes
        for ledger in self.ledgers.values():
            ledger.evict(self.key, oldest, hold_unpublished=not judging)

    def remove(self, ledger: PartitionLedger) -> None:
        """Take a revoked partition's share out of the windows (its ledger leaves)."""
        self.ledgers.pop(ledger.key, None)
        for pane, vector in ledger.panes.get(self.key, {}).items():
            self._follow(pane, -vector)

    def restore(self, ledger: PartitionLedger) -> None:
        """Add a restored partition's panes to the windows and follow its watermark."""
        self.ledgers[ledger.key] = ledger
        for pane, vector in ledger.panes.get(self.key, {}).items():
            self._follow(pane, vector)
        self.advance(ledger.watermark(self.key))


class LedgerPanes:
    """The panes of one model version, summed over the partition ledgers that hold them.

    This is the :class:`~stream_monitor.state.windows.PaneSource` of the engine's
    windows, so every pane vector is stored once, in its partition's ledger.
    """

    def __init__(self, version: VersionKey, ledgers: dict[PartitionKey, PartitionLedger]) -> None:
        self.version = version
        self.ledgers = ledgers

    def get(self, pane: int) -> np.ndarray | None:
        """The pane's vector over all partitions (None when no partition counted there)."""
        found = None
        for ledger in self.ledgers.values():
            panes = ledger.panes.get(self.version)
            vector = None if panes is None else panes.get(pane)
            if vector is None:
                continue
            found = vector if found is None else found + vector
        return found

    def __iter__(self) -> Iterator[int]:
        """Every pane some partition counted in (each once)."""
        return iter(
            {p for ledger in self.ledgers.values() for p in ledger.panes.get(self.version, {})}
        )

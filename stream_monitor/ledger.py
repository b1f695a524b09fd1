"""What one input partition contributed to an instance's state.

Windows are sums of pane vectors, so the state of an instance is the sum of
its partitions' contributions. A :class:`PartitionLedger` keeps one partition's
share (its pane deltas per model version, its event-time watermarks and the
offset they reflect) so that the partition can be checkpointed, handed to
another instance on a rebalance (subtracted here, added there) and restored
after a crash, without any other partition's state moving.
"""

from __future__ import annotations

import numpy as np

PartitionKey = tuple[str, int]
VersionKey = tuple[str, str]
PaneKey = tuple[VersionKey, int]


class PartitionLedger:
    """Pane deltas, watermarks and the next offset of one input partition."""

    def __init__(self, key: PartitionKey) -> None:
        self.key = key
        self.next_offset: int | None = None
        self.panes: dict[VersionKey, dict[int, np.ndarray]] = {}
        self.watermarks: dict[VersionKey, float] = {}
        self.dirty: set[PaneKey] = set()
        self.evicted: set[PaneKey] = set()
        self._written: set[PaneKey] = set()

    def watermark(self, version: VersionKey) -> float:
        """Largest event time of ``version`` seen on this partition (-inf before any)."""
        return self.watermarks.get(version, -np.inf)

    def advance(self, version: VersionKey, event_ts_max: float) -> None:
        """Move this partition's watermark of ``version`` forward."""
        self.watermarks[version] = max(self.watermark(version), event_ts_max)

    def add(self, version: VersionKey, pane: int, delta: np.ndarray) -> None:
        """Record ``delta`` as this partition's contribution to ``pane``."""
        panes = self.panes.setdefault(version, {})
        stored = panes.get(pane)
        if stored is None:
            panes[pane] = delta.copy()
        else:
            stored += delta
        self.dirty.add((version, pane))
        self.evicted.discard((version, pane))

    def evict(self, version: VersionKey, oldest_pane: int) -> None:
        """Forget panes older than ``oldest_pane`` (they left every window)."""
        panes = self.panes.get(version, {})
        for pane in [p for p in panes if p < oldest_pane]:
            del panes[pane]
            self.dirty.discard((version, pane))
            if (version, pane) in self._written:  # only checkpointed panes need a tombstone
                self._written.discard((version, pane))
                self.evicted.add((version, pane))

    def mark_all_dirty(self) -> None:
        """Rewrite every pane at the next checkpoint (after one that was not confirmed).

        Panes evicted since stay listed in ``evicted``, so their tombstones are written too.
        """
        self.dirty = {(version, pane) for version, panes in self.panes.items() for pane in panes}

    def take_changes(self) -> tuple[dict[PaneKey, np.ndarray], set[PaneKey]]:
        """Panes changed and panes evicted since the last call (for an incremental checkpoint)."""
        changed = {
            (version, pane): self.panes[version][pane]
            for version, pane in self.dirty
            if pane in self.panes.get(version, {})
        }
        evicted = set(self.evicted)
        self._written |= set(changed)
        self.dirty.clear()
        self.evicted.clear()
        return changed, evicted


class LedgerPanes:
    """The panes of one model version, summed over the partition ledgers that hold them.

    This is the :class:`~stream_monitor.windows.PaneSource` of the engine's
    windows, so every pane vector is stored once, in its partition's ledger.
    """

    def __init__(self, version: VersionKey, ledgers: dict[PartitionKey, PartitionLedger]) -> None:
        self.version = version
        self.ledgers = ledgers

    def get(self, pane: int) -> np.ndarray | None:
        """The pane's vector over all partitions (None when no partition counted there)."""
        found = None
        for ledger in self.ledgers.values():
            vector = ledger.panes.get(self.version, {}).get(pane)
            if vector is None:
                continue
            found = vector if found is None else found + vector
        return found

    def indices(self) -> set[int]:
        """Every pane some partition counted in."""
        return {p for ledger in self.ledgers.values() for p in ledger.panes.get(self.version, {})}

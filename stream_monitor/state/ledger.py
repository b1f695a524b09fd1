"""What one input partition contributed to an instance's state.

Windows are sums of pane vectors, so the state of an instance is the sum of
its partitions' contributions. A :class:`PartitionLedger` keeps one partition's
share (its pane deltas per model version, its event-time watermarks and the
offset they reflect) so that the partition can be checkpointed, handed to
another instance on a rebalance (subtracted here, added there), restored after
a crash, or published to the aggregators of a scaled-out deployment, without
any other partition's state moving.

One partition's pane vectors of one model version (:class:`PaneVectors`): events
land in the newest panes (within the allowed lateness). Older panes are
only read: when a window slides past them, when a window is re-summed, when a
partition is checkpointed, moved or published. A long window of short panes
holds many of them (a 24 h window of 60 s panes holds 1,440 per model and
partition), so a pane more than ``hot_panes`` behind the newest is kept as
compressed bytes (:func:`stream_monitor.state.vectors.pack`) and unpacked, bit
for bit, when read. Its counts are small integers stored as float64 and mostly
zeros, so it shrinks 7 to 30 times (README, "Performance"). Nothing is rounded:
results are the same as with plain vectors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from stream_monitor.state.keys import PaneKey, PartitionKey, VersionKey
from stream_monitor.state.vectors import pack, unpack


class PaneVectors(Mapping[int, np.ndarray]):
    """Pane index -> vector; panes more than ``hot_panes`` behind the newest kept packed.

    Reading a packed pane returns a fresh read-only vector; change panes only
    through :meth:`add` and item assignment. A packed pane that :meth:`add`
    changes (a late label, say) stays unpacked until the newest pane moves on.

    >>> panes = PaneVectors(hot_panes=1)
    >>> for pane in range(4):
    ...     panes.add(pane, np.array([pane, 1.0]))
    >>> sorted(panes.packed_panes()), panes[0].tolist(), len(panes)
    ([0, 1], [0.0, 1.0], 4)
    >>> panes.add(0, np.array([1.0, 1.0])); panes[0].tolist(), sorted(panes.packed_panes())
    ([1.0, 2.0], [1])
    """

    def __init__(self, hot_panes: int) -> None:
        if hot_panes < 0:
            raise ValueError("hot_panes must be at least 0")
        self.hot_panes = hot_panes
        self._hot: dict[int, np.ndarray] = {}
        self._packed: dict[int, bytes] = {}
        self._newest: int | None = None

    def __len__(self) -> int:
        return len(self._hot) + len(self._packed)

    def __contains__(self, pane: object) -> bool:
        return pane in self._hot or pane in self._packed

    def __iter__(self) -> Iterator[int]:
        return iter([*self._hot, *self._packed])

    def __getitem__(self, pane: int) -> np.ndarray:
        vector = self.get(pane)
        if vector is None:
            raise KeyError(pane)
        return vector

    def get(self, pane: int, default: None = None) -> np.ndarray | None:  # type: ignore[override]
        """The vector of ``pane``, or None when nothing was counted there."""
        vector = self._hot.get(pane)
        if vector is not None:
            return vector
        packed = self._packed.get(pane)
        return None if packed is None else unpack(packed)

    def add(self, pane: int, delta: np.ndarray) -> None:
        """Add ``delta`` to ``pane`` (a copy of it when the pane is new)."""
        stored = self._hot.get(pane)
        if stored is not None:
            stored += delta
            return
        packed = self._packed.pop(pane, None)
        self._hot[pane] = delta.astype(np.float64) if packed is None else unpack(packed) + delta
        self._follow(pane)

    def __setitem__(self, pane: int, vector: np.ndarray) -> None:
        """Set ``pane`` to ``vector`` (kept as given while the pane is hot)."""
        self._packed.pop(pane, None)
        self._hot[pane] = vector
        if not self._follow(pane) and self._is_cold(pane):
            self._packed[pane] = pack(self._hot.pop(pane))

    def __delitem__(self, pane: int) -> None:
        if self._hot.pop(pane, None) is None:
            del self._packed[pane]

    def packed_panes(self) -> list[int]:
        """The panes kept compressed."""
        return list(self._packed)

    @property
    def nbytes(self) -> int:
        """Bytes of vector data held (unpacked and packed)."""
        return sum(v.nbytes for v in self._hot.values()) + sum(map(len, self._packed.values()))

    def _is_cold(self, pane: int) -> bool:
        return self._newest is not None and pane < self._newest - self.hot_panes

    def _follow(self, pane: int) -> bool:
        """Note ``pane`` as the newest if it is; pack what that left behind. True if it moved."""
        if self._newest is not None and pane <= self._newest:
            return False
        self._newest = pane
        for cold in [p for p in self._hot if self._is_cold(p)]:
            self._packed[cold] = pack(self._hot.pop(cold))
        return True


class PaneChanges:
    """Which panes changed or were evicted since they were last written somewhere.

    A ledger keeps one tracker per destination (the changelog, the partials
    topic), so each is written incrementally and only written panes need a
    tombstone when they are evicted.
    """

    def __init__(self) -> None:
        self.dirty: set[PaneKey] = set()
        self.evicted: set[PaneKey] = set()
        self._written: set[PaneKey] = set()

    def touch(self, key: PaneKey) -> None:
        """``key`` changed."""
        self.dirty.add(key)
        self.evicted.discard(key)

    def touch_all(self, panes: dict[VersionKey, PaneVectors]) -> None:
        """Every pane of ``panes`` changed (write them all again)."""
        for version, held in panes.items():
            for pane in held:
                self.touch((version, pane))

    def evict(self, key: PaneKey) -> None:
        """``key`` was forgotten."""
        self.dirty.discard(key)
        if key in self._written:
            self._written.discard(key)
            self.evicted.add(key)

    def take(
        self, panes: dict[VersionKey, PaneVectors]
    ) -> tuple[dict[PaneKey, np.ndarray], set[PaneKey]]:
        """Panes changed and panes evicted since the last call."""
        changed = {
            (version, pane): panes[version][pane]
            for version, pane in self.dirty
            if pane in panes.get(version, {})
        }
        evicted = set(self.evicted)
        self._written |= set(changed)
        self.dirty.clear()
        self.evicted.clear()
        return changed, evicted

    @property
    def pending(self) -> bool:
        """Whether anything changed since the last :meth:`take`."""
        return bool(self.dirty or self.evicted)


class PartitionLedger:
    """Pane deltas, watermarks and the next offset of one input partition."""

    def __init__(self, key: PartitionKey, hot_panes: int) -> None:
        self.key = key
        #: Panes this far behind a version's newest are kept compressed (:class:`PaneVectors`).
        self.hot_panes = hot_panes
        self.next_offset: int | None = None
        self.panes: dict[VersionKey, PaneVectors] = {}
        self.watermarks: dict[VersionKey, float] = {}
        self.advanced_at: float | None = None
        self.caught_up = True
        self.checkpointed = PaneChanges()
        self.published = PaneChanges()

    def watermark(self, version: VersionKey) -> float:
        """Largest event time of ``version`` seen on this partition (-inf before any)."""
        return self.watermarks.get(version, -np.inf)

    @property
    def event_time(self) -> float:
        """Largest event time of any version on this partition (its watermark)."""
        return max(self.watermarks.values(), default=-np.inf)

    def advance(self, version: VersionKey, event_ts_max: float) -> None:
        """Move this partition's watermark of ``version`` forward."""
        self.watermarks[version] = max(self.watermark(version), event_ts_max)

    def add(self, version: VersionKey, pane: int, delta: np.ndarray) -> None:
        """Record ``delta`` as this partition's contribution to ``pane``."""
        self.version_panes(version).add(pane, delta)
        self._touch((version, pane))

    def replace(self, version: VersionKey, pane: int, vector: np.ndarray) -> np.ndarray:
        """Set ``pane`` to ``vector``; returns the change (new minus old)."""
        panes = self.version_panes(version)
        old = panes.get(pane)
        panes[pane] = vector
        self._touch((version, pane))
        return vector if old is None else vector - old

    def version_panes(self, version: VersionKey) -> PaneVectors:
        """The panes of ``version`` (created empty on first use)."""
        panes = self.panes.get(version)
        if panes is None:
            panes = self.panes[version] = PaneVectors(self.hot_panes)
        return panes

    def _touch(self, key: PaneKey) -> None:
        self.checkpointed.touch(key)
        self.published.touch(key)

    def evict(self, version: VersionKey, oldest_pane: int, hold_unpublished: bool = False) -> None:
        """Forget panes older than ``oldest_pane`` (they left every window).

        ``hold_unpublished`` keeps those not yet published as partials (an
        ingest replica reading a backlog faster than it publishes).
        """
        panes = self.panes.get(version)
        if panes is None:
            return
        unpublished = self.published.dirty if hold_unpublished else set()
        for pane in [p for p in panes if p < oldest_pane and (version, p) not in unpublished]:
            del panes[pane]
            self.checkpointed.evict((version, pane))
            self.published.evict((version, pane))

    def mark_all_dirty(self) -> None:
        """Rewrite every pane at the next checkpoint (after one that was not confirmed).

        Panes evicted since stay listed as evicted, so their tombstones are written too.
        """
        self.checkpointed.touch_all(self.panes)

    def take_changes(self) -> tuple[dict[PaneKey, np.ndarray], set[PaneKey]]:
        """Panes changed and panes evicted since the last checkpoint."""
        return self.checkpointed.take(self.panes)

    def take_unpublished(self) -> tuple[dict[PaneKey, np.ndarray], set[PaneKey]]:
        """Panes changed and panes evicted since the last publication of partials."""
        return self.published.take(self.panes)

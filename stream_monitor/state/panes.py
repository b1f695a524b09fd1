"""The pane vectors of one model version on one input partition, old ones compressed.

Events land in the newest panes (within the allowed lateness). Older panes are
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

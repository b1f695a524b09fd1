"""What waits in the label join store, the order it expires in, and its checkpoint rows.

Entries expire in stamp order (:class:`ExpiryQueue`). A waiting prediction is saved as
``["p", model, event_id, stamp, version, pane, prediction, event_ts]``, a
waiting label as ``["l", model, event_id, stamp, label]``.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: An entry's key: ``(model, event_id)``.
Key = tuple[str, Hashable]


@dataclass(slots=True, eq=False)
class WaitingPrediction:
    """A prediction waiting for its label; ``seq`` orders entries of equal ``stamp``."""

    version: str
    pane: int
    prediction: Any
    event_ts: float
    stamp: float
    seq: int
    owner: Any = None


@dataclass(slots=True, eq=False)
class WaitingLabel:
    """A label waiting for its prediction; ``seq`` orders entries of equal ``stamp``."""

    label: Any
    stamp: float
    seq: int
    owner: Any = None


Entry = WaitingPrediction | WaitingLabel


class ExpiryQueue:
    """Entry keys in stamp order, numbering entries so that a replaced one is skipped.

    Removing an entry from the store leaves its item here (lazy deletion);
    :meth:`due` yields it anyway, and the store skips items whose ``seq`` is not
    its entry's. :meth:`compact` drops them once they outnumber the live ones.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Key]] = []
        self._seq = 0

    def __len__(self) -> int:
        """Items queued, those of removed entries included."""
        return len(self._heap)

    def next_seq(self) -> int:
        """A number for a new entry, larger than every one before."""
        self._seq += 1
        return self._seq

    def push(self, key: Key, entry: Entry) -> None:
        """Queue ``entry`` (waiting under ``key``) by its stamp."""
        heapq.heappush(self._heap, (entry.stamp, entry.seq, key))

    def compact(self, entries: Mapping[Key, Entry]) -> None:
        """Rebuild from the live ``entries`` when the queue has outgrown them."""
        if len(self._heap) > 2 * len(entries) + 1024:
            self._heap = [(e.stamp, e.seq, k) for k, e in entries.items()]
            heapq.heapify(self._heap)

    def due(self, cutoff: float) -> Iterator[tuple[int, Key]]:
        """Take out, oldest first, the ``(seq, key)`` of every item stamped before ``cutoff``."""
        heap = self._heap
        while heap and heap[0][0] < cutoff:
            _, seq, key = heapq.heappop(heap)
            yield seq, key


def entry_row(key: Key, entry: Entry) -> list[Any]:
    """The checkpoint row of ``entry``, waiting under ``key``.

    >>> entry_row(("churn", "a"), WaitingLabel(1, 30.0, seq=7))
    ['l', 'churn', 'a', 30.0, 1]
    """
    model, event_id = key
    if isinstance(entry, WaitingPrediction):
        e = entry
        return ["p", model, event_id, e.stamp, e.version, e.pane, e.prediction, e.event_ts]
    return ["l", model, event_id, entry.stamp, entry.label]


def row_entry(row: Sequence[Any], seq: int, owner: Any = None) -> tuple[Key, Entry]:
    """The key and entry of a checkpoint row from :func:`entry_row`, numbered ``seq``.

    >>> key, entry = row_entry(["l", "churn", "a", 30, 1], seq=1)
    >>> key, entry.label, entry.stamp
    (('churn', 'a'), 1, 30.0)
    """
    entry: Entry
    if row[0] == "p":
        entry = WaitingPrediction(
            row[4], int(row[5]), row[6], float(row[7]), float(row[3]), seq, owner
        )
    else:
        entry = WaitingLabel(row[4], float(row[3]), seq, owner)
    return (row[1], row[2]), entry

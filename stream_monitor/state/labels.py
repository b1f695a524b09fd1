"""The delayed-label join: predictions wait for labels, labels for predictions.

A label event names its prediction by ``(model, event_id)``. Whichever side
arrives first waits in one bounded store until the other comes, its time to
live runs out, or the store is full:

* joined: the pair is returned, with the prediction's version and event-time
  pane (a joined label counts in the window of the prediction's event time);
* expired: a prediction whose label never came within ``ttl_s``;
* orphan: a label whose prediction never came within ``ttl_s``;
* evicted: the oldest entry (first inserted), dropped when ``max_entries`` is
  exceeded, so memory is bounded whatever the traffic.

Time to live runs in event time (``clock="event"``: a prediction is stamped with
its event time, a label with its own timestamp, and :meth:`LabelJoinStore.expire`
takes an event-time watermark) or in wall time (``clock="wall"``: entries are
stamped when they arrive and ``expire`` takes wall time). Event time makes
replays reproducible; wall time bounds how long anything waits in real life
even when a model's traffic stops.

Lookups are one dict access per event. Expiry uses a heap of stamps with lazy
deletion (:class:`~stream_monitor.state.label_entries.ExpiryQueue`), compacted
when it outgrows the store, so it costs O(log n) per entry even when event
times arrive out of order.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from stream_monitor.state.label_entries import (
    Entry,
    ExpiryQueue,
    Key,
    WaitingLabel,
    WaitingPrediction,
    entry_row,
    row_entry,
)

CLOCKS = ("event", "wall")


class Joined(NamedTuple):
    """A label joined to its prediction."""

    model: str
    version: str
    pane: int
    prediction: Any
    label: Any
    event_ts: float


class Expired(NamedTuple):
    """Entries dropped by one :meth:`LabelJoinStore.expire` call."""

    predictions: int
    labels: int


@dataclass
class JoinCounters:
    """Running totals of what happened to predictions and labels in the store."""

    joined: int = 0
    expired_predictions: int = 0
    orphan_labels: int = 0
    evicted_predictions: int = 0
    evicted_labels: int = 0
    duplicate_predictions: int = 0
    duplicate_labels: int = 0
    missing_ids: int = 0


def _column(values: Any, n: int) -> list[Any]:
    """``values`` as a list of ``n`` Python objects (a scalar is repeated)."""
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
        return [values] * n
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if len(items) != n:
        raise ValueError(f"expected {n} values, got {len(items)}")
    return items


class LabelJoinStore:
    """Bounded store joining predictions and labels by ``(model, event_id)``.

    Parameters
    ----------
    max_entries
        Most predictions plus labels held at once; beyond it the oldest is evicted.
    ttl_s
        How long an entry waits for its other half, in seconds of ``clock``.
    clock
        ``"event"`` or ``"wall"`` (see the module docstring).
    wall_clock
        Source of wall time (injectable for tests).

    Examples
    --------
    >>> store = LabelJoinStore(max_entries=10, ttl_s=60)
    >>> store.add_predictions(["a", "b"], "churn", "v1", [5, 5], [0.9, 0.2], [300.0, 310.0])
    []
    >>> store.add_labels(["b", "z"], "churn", [0, 1], [320.0, 330.0])
    [Joined(model='churn', version='v1', pane=5, prediction=0.2, label=0, event_ts=310.0)]
    >>> store.expire(365.0)
    Expired(predictions=1, labels=0)
    >>> store.expire(400.0), store.counters.orphan_labels, len(store)
    (Expired(predictions=0, labels=1), 1, 0)
    """

    def __init__(
        self,
        max_entries: int = 100_000,
        ttl_s: float = 3600.0,
        clock: str = "event",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if not ttl_s > 0:
            raise ValueError("ttl_s must be positive")
        if clock not in CLOCKS:
            raise ValueError(f"clock must be one of {CLOCKS}")
        self.max_entries = max_entries
        self.ttl_s = float(ttl_s)
        self.clock = clock
        self.wall_clock = wall_clock
        self._reset()

    def _reset(self) -> None:
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._queue = ExpiryQueue()
        self._pending_predictions = 0
        self.high_water = -np.inf
        self.counters = JoinCounters()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def pending_predictions(self) -> int:
        """Predictions waiting for a label."""
        return self._pending_predictions

    @property
    def pending_labels(self) -> int:
        """Labels waiting for a prediction."""
        return len(self._entries) - self._pending_predictions

    def _stamps(self, ts: Any, n: int) -> list[float]:
        if self.clock == "wall":
            return [float(self.wall_clock())] * n
        stamps = np.asarray(_column(ts, n), dtype=np.float64)
        finite = np.isfinite(stamps)
        if finite.any():
            self.high_water = max(self.high_water, float(stamps[finite].max()))
        filled: list[float] = np.where(finite, stamps, self.high_water).tolist()
        return filled

    def _insert(self, key: Key, entry: Entry) -> None:
        self._entries[key] = entry
        self._queue.push(key, entry)
        if isinstance(entry, WaitingPrediction):
            self._pending_predictions += 1
        while len(self._entries) > self.max_entries:
            _, oldest = self._entries.popitem(last=False)
            if isinstance(oldest, WaitingPrediction):
                self._pending_predictions -= 1
                self.counters.evicted_predictions += 1
            else:
                self.counters.evicted_labels += 1
        self._queue.compact(self._entries)

    def add_predictions(
        self,
        event_ids: Sequence[Hashable | None],
        model: str | Sequence[str],
        version: str | Sequence[str],
        pane: Sequence[int] | np.ndarray,
        prediction: Sequence[Any] | np.ndarray,
        event_ts: Sequence[float] | np.ndarray,
        owner: Any = None,
    ) -> list[Joined]:
        """Hold predictions for their labels; returns those whose label was already waiting.

        Rows without an event id cannot be joined and are only counted
        (``missing_ids``); a second prediction with a pending id is a duplicate
        and is dropped.
        """
        n = len(event_ids)
        models, versions = _column(model, n), _column(version, n)
        panes, predictions = _column(pane, n), _column(prediction, n)
        times = np.asarray(_column(event_ts, n), dtype=np.float64).tolist()
        stamps = self._stamps(times, n)
        joined: list[Joined] = []
        for i, key in self._keys(event_ids, models):
            waiting = self._entries.get(key)
            if isinstance(waiting, WaitingLabel):
                del self._entries[key]
                joined.append(
                    Joined(
                        models[i],
                        versions[i],
                        int(panes[i]),
                        predictions[i],
                        waiting.label,
                        times[i],
                    )
                )
                continue
            if waiting is not None:
                self.counters.duplicate_predictions += 1
                continue
            seq = self._queue.next_seq()
            entry = WaitingPrediction(
                versions[i], int(panes[i]), predictions[i], times[i], stamps[i], seq, owner
            )
            self._insert(key, entry)
        self.counters.joined += len(joined)
        return joined

    def _keys(
        self, event_ids: Sequence[Hashable | None], models: Sequence[str]
    ) -> Iterator[tuple[int, tuple[str, Hashable]]]:
        """Each row with an event id and its join key; rows without one are counted."""
        for i, event_id in enumerate(event_ids):
            if event_id is None:
                self.counters.missing_ids += 1
                continue
            yield i, (models[i], event_id)

    def add_labels(
        self,
        event_ids: Sequence[Hashable | None],
        model: str | Sequence[str],
        labels: Sequence[Any],
        ts: Sequence[float] | np.ndarray | float,
        owner: Any = None,
    ) -> list[Joined]:
        """Join labels to their waiting predictions; hold the others for their prediction.

        ``ts`` is each label event's timestamp (used as its stamp in event time;
        NaN means the store's high-water mark). A second label for an id whose
        label is already waiting is a duplicate and is dropped.
        """
        n = len(event_ids)
        models, values = _column(model, n), _column(labels, n)
        stamps = self._stamps(ts, n)
        joined: list[Joined] = []
        for i, key in self._keys(event_ids, models):
            waiting = self._entries.get(key)
            if isinstance(waiting, WaitingPrediction):
                del self._entries[key]
                self._pending_predictions -= 1
                joined.append(
                    Joined(
                        models[i],
                        waiting.version,
                        waiting.pane,
                        waiting.prediction,
                        values[i],
                        waiting.event_ts,
                    )
                )
            elif waiting is not None:
                self.counters.duplicate_labels += 1
            else:
                self._insert(key, WaitingLabel(values[i], stamps[i], self._queue.next_seq(), owner))
        self.counters.joined += len(joined)
        return joined

    def expire(self, now: float | None = None) -> Expired:
        """Drop entries stamped before ``now - ttl_s``; how many of each kind.

        ``now`` is an event-time watermark (``clock="event"``; default: the
        latest stamp seen) or wall time (``clock="wall"``; default: now).
        """
        if now is None:
            now = float(self.wall_clock()) if self.clock == "wall" else self.high_water
        cutoff = now - self.ttl_s
        predictions = labels = 0
        for seq, key in self._queue.due(cutoff):
            entry = self._entries.get(key)
            if entry is None or entry.seq != seq:
                continue
            del self._entries[key]
            if isinstance(entry, WaitingPrediction):
                self._pending_predictions -= 1
                predictions += 1
            else:
                labels += 1
        self.counters.expired_predictions += predictions
        self.counters.orphan_labels += labels
        return Expired(predictions, labels)

    def to_state(self) -> dict[str, Any]:
        """Plain state (entries in insertion order and counters) for a checkpoint."""
        return {
            "entries": [entry_row(key, entry) for key, entry in self._entries.items()],
            "high_water": self.high_water if np.isfinite(self.high_water) else None,
            "counters": asdict(self.counters),
        }

    def owned_state(self, owner: Any) -> list[list[Any]]:
        """The entries held for ``owner`` (an input partition), in insertion order."""
        return [entry_row(key, e) for key, e in self._entries.items() if e.owner == owner]

    def drop_owner(self, owner: Any) -> int:
        """Remove the entries held for ``owner`` (its partition moved elsewhere)."""
        keys = [k for k, e in self._entries.items() if e.owner == owner]
        for key in keys:
            if isinstance(self._entries.pop(key), WaitingPrediction):
                self._pending_predictions -= 1
        return len(keys)

    def load_owned(self, rows: list[list[Any]], owner: Any) -> None:
        """Insert entries saved by :meth:`owned_state` for ``owner``."""
        for row in rows:
            key, entry = row_entry(row, self._queue.next_seq(), owner)
            self.high_water = max(self.high_water, entry.stamp)
            self._insert(key, entry)

    def from_state(self, state: dict[str, Any]) -> None:
        """Replace this store's content with ``state`` from :meth:`to_state`."""
        self._reset()
        for row in state["entries"]:
            self._insert(*row_entry(row, self._queue.next_seq()))
        high_water = state.get("high_water")
        self.high_water = -np.inf if high_water is None else float(high_water)
        self.counters = JoinCounters(**state["counters"])

"""Event-time panes and the sliding windows made of them.

A pane is a fixed slice of event time, ``[k * pane_s, (k + 1) * pane_s)``. A
window of ``n`` panes ending at pane ``e`` is the union of panes ``e - n + 1 ..
e``. Every pane is a vector of counts and sums (its layout is the caller's
business), so a window is the sum of its panes' vectors. Each window keeps that
sum running: sliding adds the entering panes and subtracts the leaving ones,
O(vector) per pane and never O(events). Float sums would drift under repeated
add/subtract, so a window is re-summed from its panes once per window length.
The panes are read from a :class:`PaneSource` and stored only there.

Drift is judged on complete windows at points fixed by event time alone: each
time a pane closes, the :class:`JudgedWindows` slide to end there and are
judged. A late change to a pane inside a judged window asks for that window end
to be judged again. When judging falls more than ``max_unjudged_panes`` behind
the newest pane (a partition holds panes open), the oldest window ends are
given up, so that memory stays bounded; they are counted and reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Protocol

import numpy as np


def pane_of(event_ts: np.ndarray, pane_s: float) -> np.ndarray:
    """The pane index of each event time.

    >>> pane_of(np.array([0.0, 59.9, 60.0, 125.0]), 60.0).tolist()
    [0, 0, 1, 2]
    """
    return np.floor(event_ts / pane_s).astype(np.int64)


def window_panes(end_pane: int, n_panes: int) -> tuple[int, int]:
    """First and last pane of a window of ``n_panes`` ending at ``end_pane`` (inclusive).

    >>> window_panes(10, 5)
    (6, 10)
    """
    return end_pane - n_panes + 1, end_pane


def late_mask(event_ts: np.ndarray, watermark_s: float, allowed_lateness_s: float) -> np.ndarray:
    """Events older than the watermark they see minus the allowed lateness.

    The watermark an event sees is the largest event time before it (in arrival
    order) or ``watermark_s`` from earlier batches, so the result does not
    depend on how a stream is cut into batches.

    >>> late_mask(np.array([100.0, 50.0, 200.0, 150.0, 139.0]), 0.0, 60.0).tolist()
    [False, False, False, False, True]
    """
    if event_ts.size == 0:
        return np.zeros(0, dtype=bool)
    seen = np.maximum.accumulate(np.concatenate(([watermark_s], event_ts[:-1])))
    return event_ts < seen - allowed_lateness_s


class PaneSource(Protocol):
    """Where a window reads pane vectors: a mapping from pane index to vector (a dict will do)."""

    def get(self, pane: int) -> np.ndarray | None:
        """The vector of ``pane``, or None when nothing was counted there."""
        ...

    def __iter__(self) -> Iterator[int]:
        """Every pane that holds counts."""
        ...


class SlidingWindows:
    """The running sum of each sliding window over panes kept elsewhere.

    The panes themselves live in a :class:`PaneSource` (for the engine: the
    partition ledgers), so they are stored once; the caller records a delta in
    its pane, then calls :meth:`add` so every window holding the pane follows.

    >>> store = {}
    >>> w = SlidingWindows(width=1, window_sizes={"2p": 2}, keep_panes=3, panes=store)
    >>> for pane in (0, 1, 2):
    ...     store[pane] = np.array([pane + 1.0])
    ...     w.add(pane, store[pane])
    ...     w.advance(pane)
    >>> w.window("2p").tolist(), w.span("2p")
    ([5.0], (1, 2))
    """

    def __init__(
        self, width: int, window_sizes: dict[str, int], keep_panes: int, panes: PaneSource
    ) -> None:
        if keep_panes < max(window_sizes.values()):
            raise ValueError("keep_panes must cover the largest window")
        self.width = width
        self.window_sizes = dict(window_sizes)
        self.keep_panes = keep_panes
        self.source = panes
        self._reset()

    def _reset(self) -> None:
        self._sums = {name: np.zeros(self.width) for name in self.window_sizes}
        self._slides = dict.fromkeys(self.window_sizes, 0)
        self.end_pane: int | None = None

    @property
    def oldest_pane(self) -> int | None:
        """The oldest pane still kept (older events can no longer be counted)."""
        if self.end_pane is None:
            return None
        return self.end_pane - self.keep_panes + 1

    def add(self, pane: int, delta: np.ndarray) -> None:
        """Add ``delta`` (already recorded in ``pane``) to every window that holds the pane."""
        if self.end_pane is None:
            return
        for name, size in self.window_sizes.items():
            if self.end_pane - size < pane <= self.end_pane:
                self._sums[name] += delta

    def advance(self, end_pane: int) -> None:
        """Slide every window so that it ends at ``end_pane`` (never backwards)."""
        if self.end_pane is not None and end_pane <= self.end_pane:
            return
        previous = self.end_pane
        self.end_pane = end_pane
        for name, size in self.window_sizes.items():
            if previous is None or end_pane - previous >= size:
                self._resum(name)
                continue
            total = self._sums[name]
            for pane in range(previous - size + 1, end_pane - size + 1):
                leaving = self.source.get(pane)
                if leaving is not None:
                    total -= leaving
            for pane in range(previous + 1, end_pane + 1):
                entering = self.source.get(pane)
                if entering is not None:
                    total += entering
            self._slides[name] += end_pane - previous
            if self._slides[name] >= size:
                self._resum(name)

    def _resum(self, name: str) -> None:
        assert self.end_pane is not None
        first = self.end_pane - self.window_sizes[name] + 1
        total = np.zeros(self.width)
        for pane in self.source:
            if first <= pane <= self.end_pane:
                vector = self.source.get(pane)
                if vector is not None:
                    total += vector
        self._sums[name] = total
        self._slides[name] = 0

    def window(self, name: str) -> np.ndarray:
        """The current sum of window ``name`` (a view: do not modify)."""
        return self._sums[name]

    def span(self, name: str) -> tuple[int, int]:
        """First and last pane of window ``name``."""
        end = self.end_pane if self.end_pane is not None else 0
        return window_panes(end, self.window_sizes[name])


class JudgedWindows(SlidingWindows):
    """Sliding windows that end at the last pane judged, with what is left to (re)judge."""

    def __init__(
        self,
        width: int,
        window_sizes: dict[str, int],
        keep_panes: int,
        panes: PaneSource,
        max_unjudged_panes: int,
    ) -> None:
        super().__init__(width, window_sizes, keep_panes, panes)
        self.max_unjudged_panes = max_unjudged_panes
        #: A judged window changed (a late label or partial): judge its end again.
        self.rejudge = False
        #: Window ends given up on, as (first, last) pane ranges: since the last drift
        #: event, and since the last log line.
        self.skipped: list[tuple[int, int]] = []
        self.skipped_unlogged: list[tuple[int, int]] = []
        self.skipped_total = 0

    def follow(self, pane: int, delta: np.ndarray) -> None:
        """Add a pane's change when a judged window holds the pane (it is then re-judged)."""
        end = self.end_pane
        if end is not None and end - max(self.window_sizes.values()) < pane <= end:
            self.add(pane, delta)
            self.rejudge = True

    def close(self, last_closed: int) -> Iterator[int]:
        """Slide up to ``last_closed``, one pane at a time, yielding each end to judge.

        After a late change to a judged pane (``rejudge``) the current end is
        yielded again first.
        """
        end = self.end_pane
        if end is None:
            held = set(self.source)
            if not held:
                return
            end = min(held) - 1
        if self.rejudge and self.end_pane is not None:
            self.rejudge = False
            yield self.end_pane
        for pane in range(end + 1, last_closed + 1):
            self.advance(pane)
            self.rejudge = False
            yield pane

    def adopt(self, end_pane: int) -> None:
        """Continue after ``end_pane`` (restored: it was judged before)."""
        if self.end_pane is None or self.end_pane < end_pane:
            self.advance(end_pane)
            self.rejudge = False

    def judged_end(self) -> int | None:
        """The last window end judged, or the one before the first pane held (None: nothing)."""
        if self.end_pane is not None:
            return self.end_pane
        held = set(self.source)
        return min(held) - 1 if held else None

    def first_needed_pane(self, newest: int | None) -> int:
        """The oldest pane a window still to be judged (or re-judged) needs.

        ``newest`` is the newest pane of the live windows.
        """
        if self.end_pane is not None:
            return self.end_pane - self.keep_panes + 1
        end = self.judged_end()
        return end + 1 if end is not None else newest or 0

    def skip_behind(self, newest: int | None) -> None:
        """Give up the window ends more than ``max_unjudged_panes`` behind ``newest``."""
        end = self.judged_end()
        if end is None or newest is None or end >= newest - self.max_unjudged_panes:
            return
        floor = newest - self.max_unjudged_panes
        self.advance(floor)
        self.rejudge = False
        for ranges in (self.skipped, self.skipped_unlogged):
            if ranges and ranges[-1][1] == end:
                ranges[-1] = (ranges[-1][0], floor)
            else:
                ranges.append((end + 1, floor))
        self.skipped_total += (floor - end) * len(self.window_sizes)


def panes_for(seconds: float, pane_s: float) -> int:
    """How many panes of ``pane_s`` cover ``seconds`` (rounded up).

    >>> panes_for(300, 60), panes_for(30, 60)
    (5, 1)
    """
    return max(1, math.ceil(seconds / pane_s - 1e-9))

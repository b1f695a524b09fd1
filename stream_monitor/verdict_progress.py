"""How far each model version is from its first verdict: warm-up, window events, closing panes.

A window is judged once its last pane closes (every active input partition
passed the pane's end by ``windows.allowed_lateness_s``) and it holds
``drift.min_window_events``; without a baseline file the version first
collects ``reference.warmup_events`` events. :meth:`VersionProgress.first_verdict` turns
that into an estimate the status line prints (:mod:`stream_monitor.sinks.status_line`).
Nothing here is exported to ``/metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stream_monitor.significance import min_window_events

if TYPE_CHECKING:
    from stream_monitor.state.ledger import PartitionLedger
    from stream_monitor.state.model_state import ModelVersionState


@dataclass(frozen=True)
class VersionProgress:
    """Where one model version stands on its way to a first verdict (times are event time)."""

    model: str
    version: str
    #: Whether this instance judges it (an ingest replica does not).
    judging: bool
    #: ``(collected, needed)`` reference events while warming up; None once the reference exists.
    warmup: tuple[int, int] | None
    #: Events the first window to judge holds now (the buffered events while warming up).
    window_events: int
    #: Events a window needs to be judged (None: set by the reference's bins, not known yet).
    min_window_events: int | None
    #: ``(name, panes)`` of each window, smallest first.
    windows: tuple[tuple[str, int], ...]
    #: The pane where the first window still to judge ends (None: no event yet).
    next_pane: int | None
    #: The newest event time of the version (-inf: none).
    newest_s: float
    #: The event time every active input partition reached (-inf: not yet).
    closing_s: float
    pane_s: float
    allowed_lateness_s: float

    def first_verdict(self, rate_per_s: float) -> FirstVerdict:
        """When the first window can be judged, at ``rate_per_s`` events a second.

        The events still missing arrive at the rate, their event time advancing
        as fast as the clock (a live stream). The reference is built once it has
        its events; a window is judged once it holds ``min_window_events`` and
        the pane it ends in closed (panes already closed are judged as soon as
        the reference exists). The estimate is in seconds from now; ``window``
        is the smallest window that spans the panes up to that pane.

        >>> p = VersionProgress("m", "v1", True, (1200, 2000), 1200, 300, (("1m", 6), ("5m", 30)),
        ...     next_pane=6, newest_s=65.0, closing_s=64.0, pane_s=10.0, allowed_lateness_s=10.0)
        >>> p.first_verdict(rate_per_s=40.0)  # the reference needs 800 more events: 20 s
        FirstVerdict(window='1m', more_events=800, eta_s=20.0)
        >>> p.first_verdict(rate_per_s=0.0)
        FirstVerdict(window='5m', more_events=800, eta_s=None)
        >>> from dataclasses import replace
        >>> ready = replace(p, warmup=None, window_events=100)  # 200 more by 85 s: pane 8 closes
        >>> ready.first_verdict(rate_per_s=10.0)  # once the closing watermark passes 90 + 10 s
        FirstVerdict(window='1m', more_events=200, eta_s=36.0)
        """
        windows, needed = self.windows, self.min_window_events or 0
        warm_missing = self.warmup[1] - self.warmup[0] if self.warmup else 0
        window_missing = max(0, needed - self.window_events)
        more = max(0, warm_missing, window_missing)
        largest_name, largest_panes = windows[-1]
        if self.next_pane is None:
            return FirstVerdict(windows[0][0], more, None)
        if more and (rate_per_s <= 0 or rate_per_s * largest_panes * self.pane_s < needed):
            return FirstVerdict(largest_name, more, None)
        end_pane = self.next_pane
        if window_missing:
            enough_s = self.newest_s + window_missing / rate_per_s
            end_pane = max(end_pane, math.floor(enough_s / self.pane_s))
        close_s = (end_pane + 1) * self.pane_s + self.allowed_lateness_s
        reached_s = self.closing_s if math.isfinite(self.closing_s) else self.newest_s
        eta_s = max(close_s - reached_s, warm_missing / rate_per_s if warm_missing else 0.0, 0.0)
        span = end_pane - self.next_pane + 1
        window = next((name for name, panes in windows if panes >= span), largest_name)
        return FirstVerdict(window, more, eta_s)


@dataclass(frozen=True)
class FirstVerdict:
    """When the first verdict can come.

    ``eta_s`` None: no estimate (no events arrive, or a window cannot hold
    ``min_window_events`` at the current rate); ``more_events`` says what is missing.
    """

    window: str
    more_events: int
    eta_s: float | None


def version_progress(
    state: ModelVersionState, ledgers: Iterable[PartitionLedger], closing_s: float
) -> VersionProgress:
    """The progress of ``state``; ``ledgers`` hold its warm-up buffer, ``closing_s`` as above."""
    if state.layout is None or state.windows is None or state.judged is None:
        stamps = [
            batch.event_ts for ledger in ledgers for batch in state.warmup_of(ledger) if len(batch)
        ]
        oldest = min((float(ts.min()) for ts in stamps), default=-math.inf)
        warmup: tuple[int, int] | None = (state.warmup_rows, state.model.reference.warmup_events)
        window_events, needed = state.warmup_rows, state.model.drift.min_window_events
        next_pane = math.floor(oldest / state.pane_s) if math.isfinite(oldest) else None
        newest_s = max((float(ts.max()) for ts in stamps), default=-math.inf)
    else:
        largest = max(state.window_sizes, key=state.window_sizes.__getitem__)
        judged_end = state.judged.judged_end()
        warmup = None
        window_events = state.layout.stability(state.windows.window(largest)).events
        needed = min_window_events(state.model, state.layout)
        next_pane = None if judged_end is None else judged_end + 1
        newest_s = state.watermark_s
    return VersionProgress(
        state.model.name,
        state.version,
        state.judging,
        warmup,
        window_events,
        needed,
        tuple(sorted(state.window_sizes.items(), key=lambda item: item[1])),
        next_pane,
        newest_s,
        closing_s,
        state.pane_s,
        state.allowed_lateness_s,
    )

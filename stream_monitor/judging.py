"""The window judge: every window ending at a newly closed pane, sampled and judged in order.

The rules of when something alerts are in :mod:`stream_monitor.evaluate`; this
module walks the closed panes, reads each window's statistics from its summed
pane vector and keeps the severities and the drift events not yet taken.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from stream_monitor.config import ModelConfig
from stream_monitor.evaluate import (
    SEVERITIES,
    DriftEvent,
    SeverityBoard,
    WindowInfo,
    WindowNoise,
    drift_metrics,
    iso_utc,
    window_checks,
)
from stream_monitor.significance import (
    min_window_events,
    quality_evidence,
    significance_levels,
    stability_evidence,
)
from stream_monitor.snapshot import SeriesKey, WindowSample

if TYPE_CHECKING:
    from stream_monitor.state.model_state import ModelVersionState
    from stream_monitor.state.windows import SlidingWindows
    from stream_monitor.versions import VersionJudge

log = logging.getLogger(__name__)

#: Judges one window's label-free estimate: (board, state, window, sample, now) -> events.
EstimateJudge = Callable[
    [SeverityBoard, "ModelVersionState", WindowInfo, WindowSample, float], list[DriftEvent]
]


class WindowJudge:
    """Judges the windows of closed panes; holds the severities and the events not yet taken.

    ``version_judge`` builds, on the severity board, what judges a model's
    challengers against its champion (models with ``compare_versions``);
    ``estimate_judge`` judges a window's label-free quality estimate
    (:func:`stream_monitor.estimation.judge_estimates`).
    """

    def __init__(
        self,
        version_judge: Callable[[SeverityBoard], VersionJudge] | None = None,
        estimate_judge: EstimateJudge | None = None,
    ) -> None:
        self.board = SeverityBoard()
        #: Drift events emitted, by (model, version, metric, severity).
        self.drift_events_total: Counter[tuple[str, str, str, str]] = Counter()
        #: Window ends judged so far; a checkpoint rewrites every partition's copy of the
        #: severities and judged marks when it moved.
        self.judged_panes = 0
        self._events: list[DriftEvent] = []
        self.versions = version_judge(self.board) if version_judge is not None else None
        self.estimates = estimate_judge

    def register(self, model: ModelConfig, version: str) -> None:
        """Start the drift-event counters of a new model version at zero."""
        for metric in drift_metrics(model):
            for severity in SEVERITIES:
                self.drift_events_total[(model.name, version, metric, severity)] += 0

    def judge_closed(
        self,
        states: Iterable[ModelVersionState],
        closing_watermark: float,
        now_s: float | None,
        final: bool,
    ) -> None:
        """Judge, in order, each window ending at a pane closed since the last call.

        A pane closes once ``closing_watermark`` passed its end by the allowed
        lateness; ``final`` (end of the input) closes every pane seen.
        """
        detected_at = time.time() if now_s is None else now_s
        compared: dict[str, dict[str, tuple[ModelVersionState, Iterator[int]]]] = {}
        for state in states:
            if state.layout is None or state.judged is None:
                continue
            mark = state.watermark_s if final else closing_watermark - state.allowed_lateness_s
            if not math.isfinite(mark):
                continue
            last_closed = math.floor(mark / state.pane_s) - (0 if final else 1)
            if state.model.compare_versions is not None:  # judged below, version by version
                ends = state.judged.close(last_closed)
                compared.setdefault(state.model.name, {})[state.version] = (state, ends)
                continue
            for _ in state.judged.close(last_closed):
                self._judge_end(state, detected_at)
        for group in compared.values():
            self._judge_versions(group, detected_at)

    def _judge_end(self, state: ModelVersionState, detected_at: float) -> dict[str, WindowInfo]:
        """Judge every window of ``state`` ending at its judged end; their infos by name."""
        assert state.judged is not None
        self.judged_panes += 1
        infos = {}
        for window in state.window_sizes:
            sample, info = sample_window(state, state.judged, window)
            self._events.extend(self._judge(state, info, sample, detected_at))
            infos[window] = info
        return infos

    def _judge_versions(
        self, group: dict[str, tuple[ModelVersionState, Iterator[int]]], detected_at: float
    ) -> None:
        """Judge a model's versions end by end, each end's challengers against its champion."""
        ends = {version: closing for version, (_, closing) in group.items()}
        for _, ready in lockstep(ends):
            states = [group[version][0] for version in ready]
            infos = {state.version: self._judge_end(state, detected_at) for state in states}
            if self.versions is not None:
                self._events.extend(self.versions.judge(states, infos, detected_at))

    def take_events(self) -> list[DriftEvent]:
        """The drift events judged since the last call, in order, now counted."""
        events, self._events = self._events, []
        for event in events:
            key = (event.model, event.model_version, event.metric, event.severity)
            self.drift_events_total[key] += 1
        return events

    def _judge(
        self, state: ModelVersionState, info: WindowInfo, sample: WindowSample, now_s: float
    ) -> list[DriftEvent]:
        assert state.reference is not None and state.judged is not None
        state.adopt_quality_reference(sample.quality)
        concept = SeriesKey(state.model.name, state.version, "concept_drift", None, info.name)
        noise = window_noise(state, state.judged.window(info.name), sample)
        checks = window_checks(
            state.model,
            state.reference,
            state.quality_reference,
            sample,
            concept_active=self.board.severity(concept) not in (None, "ok"),
            noise=noise,
        )
        events = self.board.judge_window(
            state.model.name,
            state.version,
            checks,
            info,
            now_s,
            noise.levels,
            state.model.drift.persistence_panes,
        )
        if self.estimates is not None:
            events += self.estimates(self.board, state, info, sample, now_s)
        assert state.judged is not None
        if events and state.judged.skipped:
            events[0] = replace(events[0], unjudged=unjudged_ranges(state))
            state.judged.skipped = []
        return events


def lockstep(ends: Mapping[str, Iterator[int]]) -> Iterator[tuple[int, list[str]]]:
    """Merge each version's window ends (ascending) into (end, versions at that end) in order.

    A version's iterator slides its windows as it yields, so the versions named
    with an end all hold that end's windows at once.

    >>> list(lockstep({"a": iter([1, 2, 3]), "b": iter([2, 3, 4])}))
    [(1, ['a']), (2, ['a', 'b']), (3, ['a', 'b']), (4, ['b'])]
    """
    heads = {version: next(iterator, None) for version, iterator in ends.items()}
    while True:
        live = [end for end in heads.values() if end is not None]
        if not live:
            return
        end = min(live)
        ready = [version for version, head in heads.items() if head == end]
        yield end, ready
        for version in ready:
            heads[version] = next(ends[version], None)


def sample_window(
    state: ModelVersionState, windows: SlidingWindows, window: str
) -> tuple[WindowSample, WindowInfo]:
    """The statistics of ``window`` as ``windows`` hold it now."""
    first, last = windows.span(window)
    return sample_vector(state, window, first, last, windows.window(window), state.watermark_s)


def sample_vector(
    state: ModelVersionState,
    window: str,
    first: int,
    last: int,
    vector: np.ndarray,
    watermark_s: float,
) -> tuple[WindowSample, WindowInfo]:
    """The statistics of ``window`` of ``state``: panes ``first..last`` summed in ``vector``."""
    layout = state.layout
    assert layout is not None
    stats = layout.stability(vector)
    start_s, end_s = first * state.pane_s, (last + 1) * state.pane_s
    covered_s = max(state.pane_s, min(end_s - start_s, watermark_s - start_s))
    quality = layout.quality_values(vector)
    estimate, estimation_error = layout.estimated_values(vector, quality)
    sample = WindowSample(
        state.model.name,
        state.version,
        window,
        start_s,
        end_s,
        stats.events / covered_s,
        stats,
        quality,
        layout.latency_stats(vector),
        layout.detections(vector),
        layout.confusion_matrix(vector),
        estimate,
        estimation_error,
    )
    model = state.model
    info = WindowInfo(
        window, start_s, end_s, stats.events, layout.reference.description,
        model.metadata, tuple(model.features),
    )  # fmt: skip
    return sample, info


class WindowCopy(NamedTuple):
    """A live window as one evaluation left it (its vector copied), sampled only when read.

    A snapshot's windows are read far less often than the engine evaluates (a
    replay evaluates after every batch and reads them once), so an evaluation
    keeps copies of the window vectors and the snapshot samples them when it is
    first read: the same numbers, computed once per read snapshot.
    """

    state: ModelVersionState
    window: str
    first: int
    last: int
    vector: np.ndarray
    watermark_s: float

    @classmethod
    def of(cls, state: ModelVersionState, windows: SlidingWindows, window: str) -> WindowCopy:
        """Copy ``window`` of ``windows`` as it is now."""
        first, last = windows.span(window)
        vector = windows.window(window).copy()
        return cls(state, window, first, last, vector, state.watermark_s)

    def sample(self) -> WindowSample:
        """The window's statistics (:func:`sample_vector`)."""
        return sample_vector(*self)[0]


def window_noise(state: ModelVersionState, vector: np.ndarray, sample: WindowSample) -> WindowNoise:
    """The sampling noise of each test on a window vector of ``state``."""
    layout = state.layout
    assert layout is not None
    levels = significance_levels(state.model, len(state.window_sizes), state.pane_s)
    return WindowNoise(
        levels,
        min_window_events(state.model, layout),
        stability_evidence(layout, vector, levels, [sample.stats.psi, *sample.stats.csi.values()]),
        quality_evidence(layout, vector, sample.quality, state.quality_reference, levels),
    )


def log_skipped_windows(state: ModelVersionState) -> None:
    """One warning per evaluation for the windows given up since the last (memory cap)."""
    judged = state.judged
    if judged is None or not judged.skipped_unlogged:
        return
    ranges, judged.skipped_unlogged = judged.skipped_unlogged, []
    log.warning(
        "%s %s: %d windows ending %s were not judged: judging fell more than "
        "windows.max_unjudged_s behind the newest event (a partition held panes open)",
        *state.key,
        sum(last - first + 1 for first, last in ranges) * len(state.window_sizes),
        ", ".join(
            iso_utc((first + 1) * state.pane_s)
            + ("" if last == first else f" to {iso_utc((last + 1) * state.pane_s)}")
            for first, last in ranges
        ),
    )


def unjudged_ranges(state: ModelVersionState) -> list[dict[str, Any]]:
    """The window ends ``state`` skipped since its last drift event, for that event."""
    return [
        {
            "first_window_end": iso_utc((first + 1) * state.pane_s),
            "last_window_end": iso_utc((last + 1) * state.pane_s),
            "windows": (last - first + 1) * len(state.window_sizes),
        }
        for first, last in (state.judged.skipped if state.judged is not None else [])
    ]

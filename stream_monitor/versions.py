"""Champion against challenger: every other live version of a model compared with its champion.

For a model with ``compare_versions:``, each window of each challenger is
compared with the same window of the champion (configured, or ``auto``: the
version with the most events in that window):

- version PSI and CSI: the challenger's prediction and feature distributions
  against the champion's, on the reference's bins (compared versions share one
  reference, so their pane vectors have the same bins);
- quality deltas: challenger minus champion, for every quality metric of the
  task;
- each version's share of the model's events in the window.

Everything is read from the versions' summed window vectors, so it is the same
on one instance or on an aggregator that merged partial panes. The judged
checks carry the sampling noise of two samples
(:func:`stream_monitor.significance.column_evidence`,
:func:`stream_monitor.significance.change_evidence`); a better challenger
raises nothing, its deltas are in the gauges.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from stream_monitor.config import CompareVersionsConfig, ModelConfig, Thresholds
from stream_monitor.evaluate import Check, DriftEvent, SeverityBoard, WindowInfo
from stream_monitor.metric_names import (
    RISE_METRICS,
    TASK_QUALITY,
    VERSION_CSI,
    VERSION_PREFIX,
    VERSION_PSI,
)
from stream_monitor.significance import (
    SignificanceLevels,
    change_evidence,
    column_evidence,
    min_window_events,
    significance_levels,
)
from stream_monitor.snapshot import VersionComparison
from stream_monitor.summaries.binning import NumericBins
from stream_monitor.summaries.psi import psi

if TYPE_CHECKING:
    from stream_monitor.state.model_state import ModelVersionState
    from stream_monitor.state.windows import SlidingWindows
    from stream_monitor.summaries.column_bins import ColumnSlots
    from stream_monitor.summaries.layout import CounterLayout

log = logging.getLogger(__name__)

AUTO = "auto"


@dataclass(frozen=True)
class VersionWindow:
    """One version's window: its layout, its summed pane vector and quality values."""

    version: str
    layout: CounterLayout
    vector: np.ndarray
    quality: Mapping[str, float]

    @property
    def events(self) -> int:
        """Events counted in the window."""
        return self.layout.events(self.vector)


def version_window(state: ModelVersionState, windows: SlidingWindows, window: str) -> VersionWindow:
    """The window ``window`` of ``state`` as ``windows`` hold it now."""
    assert state.layout is not None
    vector = windows.window(window)
    return VersionWindow(state.version, state.layout, vector, state.layout.quality_values(vector))


def windows_and_champion(
    states: Sequence[ModelVersionState], window: str, judged: bool
) -> tuple[dict[str, VersionWindow], str | None]:
    """Each version's window ``window`` by version (as judged, or live) and the champion
    among them (:func:`champion_of`)."""
    windows = {}
    for state in states:
        source = state.judged if judged else state.windows
        assert source is not None
        windows[state.version] = version_window(state, source, window)
    config = states[0].model.compare_versions
    assert config is not None
    return windows, champion_of(config, {v: w.events for v, w in windows.items()})


def champion_of(config: CompareVersionsConfig, events: Mapping[str, int]) -> str | None:
    """The champion among live versions (``events``: window events by version), None if absent.

    >>> champion_of(CompareVersionsConfig("auto"), {"v1": 800, "v2": 200})
    'v1'
    >>> champion_of(CompareVersionsConfig("v2"), {"v1": 800, "v2": 200})
    'v2'
    >>> champion_of(CompareVersionsConfig("v3"), {"v1": 800}) is None
    True
    """
    if config.champion != AUTO:
        return config.champion if config.champion in events else None
    if not events:
        return None
    return min(events, key=lambda version: (-events[version], version))


def same_bins(a: CounterLayout, b: CounterLayout) -> bool:
    """Whether two versions' pane vectors bin every column alike (one shared reference)."""
    return a.reference is b.reference or _bins_of(a) == _bins_of(b)


def _bins_of(layout: CounterLayout) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = []
    for column in [layout.prediction, *layout.features.values()]:
        bins = column.bins
        found.append(
            tuple(bins.edges.tolist()) if isinstance(bins, NumericBins) else ("", *bins.categories)
        )
    return found


def column_counts(
    champion: VersionWindow, challenger: VersionWindow
) -> dict[str | None, tuple[ColumnSlots, np.ndarray, np.ndarray]]:
    """Per column (None: the prediction): its slots in the challenger's layout, the
    champion's bin counts and the challenger's."""
    mine, theirs = challenger.layout, champion.layout
    found = {}
    for name in (None, *mine.features):
        slots = mine.prediction if name is None else mine.features[name]
        base = theirs.prediction if name is None else theirs.features[name]
        found[name] = (slots, base.counts(champion.vector), slots.counts(challenger.vector))
    return found


def compare(
    model: ModelConfig,
    window: str,
    champion: VersionWindow,
    challenger: VersionWindow,
    counts: Mapping[str | None, tuple[ColumnSlots, np.ndarray, np.ndarray]] | None = None,
) -> VersionComparison:
    """The challenger's version PSI, CSI and quality deltas against the champion in ``window``
    (``counts``: their :func:`column_counts`, when the caller has them)."""
    psi_of: dict[str | None, float] = {}
    if champion.events and challenger.events:
        for name, (_, base, counts_of) in (counts or column_counts(champion, challenger)).items():
            psi_of[name] = psi(base, counts_of, model.drift.epsilon)
    return VersionComparison(
        model.name,
        challenger.version,
        champion.version,
        window,
        psi_of.pop(None, math.nan),
        {name: value for name, value in psi_of.items() if name is not None},
        quality_deltas(model, champion.quality, challenger.quality),
    )


def quality_deltas(
    model: ModelConfig, champion: Mapping[str, float], challenger: Mapping[str, float]
) -> dict[str, float]:
    """Challenger minus champion for each quality metric of the task both windows have.

    >>> m = ModelConfig("m", "regression", {"x": "numeric"})
    >>> quality_deltas(m, {"labeled": 9, "rmse": 2.0}, {"labeled": 5, "rmse": 2.5})
    {'rmse': 0.5}
    """
    if not champion.get("labeled") or not challenger.get("labeled"):
        return {}
    found = {}
    for metric in TASK_QUALITY[model.task]:
        mine, theirs = challenger.get(metric), champion.get(metric)
        if mine is not None and theirs is not None and math.isfinite(mine - theirs):
            found[metric] = mine - theirs
    return found


def comparison_checks(
    model: ModelConfig,
    champion: VersionWindow,
    challenger: VersionWindow,
    levels: SignificanceLevels,
) -> list[Check]:
    """What one challenger window is judged on against the champion's, with two-sample noise.

    Distributions need both windows at the model's minimum of events; quality,
    both at ``quality.min_labeled_events`` labels. Quality is judged on the
    challenger's shortfall: a drop metric by ``warn``/``alert`` below the
    champion, an error metric by that fraction above it.
    """
    config = model.compare_versions
    assert config is not None
    mine, theirs = challenger.layout, champion.layout
    counts = column_counts(champion, challenger)
    compared = compare(model, "", champion, challenger, counts)
    checks: list[Check] = []
    least = min_window_events(model, mine)
    if champion.events >= least and challenger.events >= least:
        columns: list[tuple[str | None, float, Thresholds]] = [(None, compared.psi, config.psi)]
        columns += [(name, value, config.csi) for name, value in compared.csi.items()]
        for name, value, lines in columns:
            slots, base, counts_of = counts[name]
            evidence = column_evidence(slots, base, counts_of, levels, model.drift)
            metric = VERSION_PSI if name is None else VERSION_CSI
            checks.append(Check(metric, name, value, lines, evidence))
    labeled = min(champion.quality.get("labeled", 0), challenger.quality.get("labeled", 0))
    if labeled < model.quality.min_labeled_events:
        return checks
    errors = mine.quality.standard_errors(challenger.vector)
    base_errors = theirs.quality.standard_errors(champion.vector)
    base_labeled = int(champion.quality.get("labeled", 0))
    for metric, (warn, alert) in config.quality.items():
        delta = compared.quality_delta.get(metric)
        se, base_se = errors.get(metric), base_errors.get(metric)
        if delta is None or se is None or base_se is None:
            continue
        rise = metric in RISE_METRICS
        if rise:
            level = abs(champion.quality[metric])
            lines = Thresholds(level * warn, level * alert)
        else:
            lines = Thresholds(-warn, -alert, "below")
        evidence = change_evidence(delta, 0.0, rise, se, base_se, base_labeled, levels)
        checks.append(Check(VERSION_PREFIX + metric, None, delta, lines, evidence))
    return checks


class VersionJudge:
    """Judges the challengers of one window end against their champion on a severity board."""

    def __init__(self, board: SeverityBoard) -> None:
        self.board = board
        #: (model, challenger, champion) pairs whose bins differ, logged once.
        self._unmatched: set[tuple[str, str, str]] = set()

    def judge(
        self,
        states: Sequence[ModelVersionState],
        infos: Mapping[str, Mapping[str, WindowInfo]],
        detected_at_s: float,
    ) -> list[DriftEvent]:
        """The drift events of every challenger among ``states`` (one model, same window end).

        ``infos``: each version's :class:`WindowInfo` by window name, as judged.
        """
        if len(states) < 2:
            return []
        model = states[0].model
        events: list[DriftEvent] = []
        first = states[0]
        levels = significance_levels(model, len(first.window_sizes), first.pane_s)
        share = len(states) - 1  # every challenger's tests share one challenger's budget
        levels = SignificanceLevels(levels.warn / share, levels.alert / share)
        for window in first.window_sizes:
            windows, champion = windows_and_champion(states, window, judged=True)
            if champion is None:
                continue
            best = windows[champion]
            for version, challenger in windows.items():
                if version == champion or not self._comparable(model.name, best, challenger):
                    continue
                checks = comparison_checks(model, best, challenger, levels)
                found = self.board.judge_window(
                    model.name,
                    version,
                    checks,
                    infos[version][window],
                    detected_at_s,
                    levels,
                    model.drift.persistence_panes,
                )
                events += [replace(event, champion=champion) for event in found]
        return events

    def _comparable(self, model: str, champion: VersionWindow, challenger: VersionWindow) -> bool:
        if same_bins(champion.layout, challenger.layout):
            return True
        pair = (model, challenger.version, champion.version)
        if pair not in self._unmatched:
            self._unmatched.add(pair)
            log.warning(
                "%s: versions %s and %s are not compared: their references bin the data "
                "differently (give the model a reference.baseline file, or restart so that "
                "both versions start from one warm-up)",
                *pair,
            )
        return False


def live_comparisons(
    states: Iterable[ModelVersionState],
) -> tuple[tuple[VersionComparison, ...], dict[tuple[str, str, str], float]]:
    """The comparisons and traffic shares of the live windows of models that compare versions."""
    by_model: dict[str, list[ModelVersionState]] = {}
    for state in states:
        if state.model.compare_versions is not None and state.windows is not None:
            by_model.setdefault(state.model.name, []).append(state)
    comparisons: list[VersionComparison] = []
    shares: dict[tuple[str, str, str], float] = {}
    for name, group in by_model.items():
        model = group[0].model
        for window in group[0].window_sizes:
            windows, champion = windows_and_champion(group, window, judged=False)
            total = sum(w.events for w in windows.values())
            for version, found in windows.items():
                shares[(name, version, window)] = found.events / total if total else math.nan
            if champion is None:
                continue
            for version, challenger in windows.items():
                if version != champion and same_bins(windows[champion].layout, challenger.layout):
                    comparisons.append(compare(model, window, windows[champion], challenger))
    return tuple(comparisons), shares


def shared_reference(
    states: Iterable[ModelVersionState], model: ModelConfig
) -> ModelVersionState | None:
    """A version of ``model`` whose reference its other versions take (compared versions only)."""
    if model.compare_versions is None:
        return None
    for state in states:
        if state.model.name == model.name and state.reference is not None:
            return state
    return None

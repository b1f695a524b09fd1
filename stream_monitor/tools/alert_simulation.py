"""False alerts and detection delays of a new user's model, simulated from bin counts.

The model of issue 14 (binary classifier, score in 10 bins, 12 numeric
features, four zero-inflated; a 30-value Zipf categorical and two of 5 values;
inline labels, accuracy 0.85; 50,000 reference events profiled by the real
profile functions), with columns independent given the score. Pane events
are Poisson and each column's bins multinomial; score and label are one
multinomial over cells nested in the score histogram's and the reference's
bins. Panes are real pane vectors of the model's :class:`CounterLayout`;
5m and 1h windows of 60 s panes are their sums, judged at every pane with
the engine's rules, vectorised (the tests compare them with the engine's
judge). BEFORE: the practical line only, 200 events a window (the previous
release); AFTER: the line and significance. ``python -m
stream_monitor.tools.alert_simulation --days 20`` prints the README table.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from stream_monitor.config import DriftConfig, ModelConfig
from stream_monitor.evaluate import LEVELS
from stream_monitor.metric_names import CSI, PSI
from stream_monitor.significance import min_window_events, significance_levels
from stream_monitor.summaries.binning import NumericBins
from stream_monitor.summaries.classification import FN, FP, TN, TP, BinaryQualitySlots
from stream_monitor.summaries.layout import EVENTS_SLOT, CounterLayout
from stream_monitor.summaries.noise import (
    chi2_isf,
    merge_sparse_bins,
    min_expected_count,
    normal_isf,
    normal_sf,
)
from stream_monitor.summaries.reference import Reference, categorical_profile, numeric_profile

RATES = (0.2, 1.0, 10.0, 100.0, 1000.0)
WINDOWS = {"5m": 5, "1h": 60}
PANE_S = 60.0
PANES_PER_DAY = 1440
REFERENCE_EVENTS = 50_000
POSITIVE_SHARE = 0.3
#: Class means of the latent score: accuracy 0.85 at 0.5 (Phi(1.036) = 0.85).
SCORE_MEAN = 1.0364
#: The previous release judged stability on windows of at least 200 events.
BEFORE_MIN_EVENTS = 200
VARIANTS = ("before", "after")
#: The severities a transition rises into.
RISES = ("alert", "warn")
QUALITY_METRICS = ("auc", "accuracy", "f1")
SHIFTS = ("mean", "category", "accuracy")
#: The 30-value categorical feature and its Zipf exponent.
ZIPF, ZIPF_EXPONENT = "zipf30", 1.2

_phi = np.vectorize(lambda x: normal_sf(-x), otypes=[float])


@dataclass(frozen=True)
class NumericLaw:
    """A numeric feature: zero with ``zero_share``, else ``N(0,1)`` or ``exp(N(0,1))``."""

    name: str
    edges: np.ndarray
    zero_share: float = 0.0
    lognormal: bool = False

    def probabilities(self, shift_sd: float = 0.0) -> np.ndarray:
        """Bin probabilities at the reference's edges, the latent normal moved by ``shift_sd``."""
        edges = self.edges
        if self.lognormal:
            latent = np.full(edges.shape, -np.inf)
            np.log(edges, out=latent, where=edges > 0)
        else:
            latent = edges.astype(float)
        cdf = self.zero_share * (edges >= 0) + (1 - self.zero_share) * _phi(latent - shift_sd)
        return np.diff(np.concatenate(([0.0], cdf, [1.0])))


@dataclass(frozen=True)
class ScoreLaw:
    """Joint law of (class, score cell); cells nest in score bins and prediction bins."""

    joint: np.ndarray
    hist_starts: np.ndarray
    psi_starts: np.ndarray
    positive: np.ndarray

    def accuracy_drop(self, drop: float) -> ScoreLaw:
        """Labels flipped on a share of the correct predictions: accuracy falls by ``drop``."""
        negative, positive = np.split(self.joint, 2)
        tn, tp = negative * ~self.positive, positive * self.positive
        share = drop / (tn.sum() + tp.sum())
        moved_negative = negative - share * tn + share * tp
        moved_positive = positive - share * tp + share * tn
        return replace(self, joint=np.concatenate((moved_negative, moved_positive)))


def score_law(edges: np.ndarray, score_bins: int, threshold: float) -> ScoreLaw:
    """The cells of the score cut at its histogram's bins and its reference edges."""
    grid = np.arange(1, score_bins) / score_bins
    bounds = np.unique(np.concatenate((grid, edges)))
    bounds = bounds[(bounds > 0) & (bounds < 1)]
    lower, upper = np.concatenate(([0.0], bounds)), np.concatenate((bounds, [1.0]))
    middle = (lower + upper) / 2
    score_bin = np.minimum((middle * score_bins).astype(np.int64), score_bins - 1)
    psi_bin = np.searchsorted(edges, middle, side="left")
    with np.errstate(divide="ignore"):
        low, high = np.log(lower / (1 - lower)), np.log(upper / (1 - upper))
    laws = [(1 - POSITIVE_SHARE, -SCORE_MEAN), (POSITIVE_SHARE, SCORE_MEAN)]
    joint = np.concatenate([p * (_phi(high - mean) - _phi(low - mean)) for p, mean in laws])
    hist_starts = np.searchsorted(score_bin, np.arange(score_bins))
    psi_starts = np.searchsorted(psi_bin, np.arange(edges.size + 1))
    return ScoreLaw(joint / joint.sum(), hist_starts, psi_starts, middle >= threshold)


@dataclass(frozen=True)
class SimulatedModel:
    """The model's config, real reference and layout, and the law of each pane column."""

    model: ModelConfig
    layout: CounterLayout
    numeric: dict[str, NumericLaw]
    probabilities: dict[str, np.ndarray]
    score: ScoreLaw

    def shifted(self, kind: str) -> tuple[SimulatedModel, tuple[str, ...]]:
        """The model after a standard shift and the series that should detect it."""
        if kind == "mean":
            name = next(iter(self.numeric))
            moved = self.numeric[name].probabilities(0.5)
            return self._with(name, moved), (f"{CSI}[{name}]",)
        if kind == "category":
            moved = 0.8 * self.probabilities[ZIPF]
            moved[-1] += 0.2
            return self._with(ZIPF, moved), (f"{CSI}[{ZIPF}]",)
        if kind == "accuracy":
            return replace(self, score=self.score.accuracy_drop(0.1)), QUALITY_METRICS
        raise ValueError(f"unknown shift {kind!r}")

    def _with(self, name: str, probabilities: np.ndarray) -> SimulatedModel:
        return replace(self, probabilities={**self.probabilities, name: probabilities})

    def pane_vectors(self, rng: np.random.Generator, events: np.ndarray) -> np.ndarray:
        """One real pane vector per entry of ``events`` (each pane's event count)."""
        layout = self.layout
        vectors = np.zeros((events.size, layout.width))
        vectors[:, EVENTS_SLOT] = events
        cells = bin_counts(rng, events, self.score.joint)
        negative, positive = np.split(cells, 2, axis=1)
        quality = binary_slots(layout)
        histograms = np.add.reduceat(cells.reshape(events.size, 2, -1), self.score.hist_starts, 2)
        vectors[:, quality.start : quality.counters_start] = histograms.reshape(events.size, -1)
        above, counters = self.score.positive, quality.counters_start
        for slot, counts, mask in ((TP, positive, above), (FP, negative, above)):
            vectors[:, counters + slot] = counts[:, mask].sum(axis=1)
        for slot, counts, mask in ((TN, negative, ~above), (FN, positive, ~above)):
            vectors[:, counters + slot] = counts[:, mask].sum(axis=1)
        prediction = layout.prediction
        vectors[:, prediction.start : prediction.start + prediction.size] = np.add.reduceat(
            negative + positive, self.score.psi_starts, axis=1
        )
        for name, slots in layout.features.items():
            counts = bin_counts(rng, events, self.probabilities[name])
            vectors[:, slots.start : slots.start + slots.size] = counts
            if name not in self.numeric:  # values outside the reference are new values
                vectors[:, slots.start + slots.size + 1] = counts[:, -1]
        return vectors


def bin_counts(rng: np.random.Generator, events: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Multinomial bin counts of each pane: per event when panes hold fewer events than bins."""
    probs = probs / probs.sum()
    size = probs.size
    if events.mean() >= size:
        counts: np.ndarray = rng.multinomial(events, probs).astype(np.float64)
        return counts
    cdf = np.cumsum(probs)
    drawn = np.searchsorted(cdf, rng.random(int(events.sum())) * cdf[-1], side="right")
    pane = np.repeat(np.arange(events.size), events)
    flat = np.bincount(pane * size + np.minimum(drawn, size - 1), minlength=events.size * size)
    return flat.reshape(events.size, size).astype(np.float64)


def binary_slots(layout: CounterLayout) -> BinaryQualitySlots:
    """The quality slots of a binary classifier's layout."""
    assert isinstance(layout.quality, BinaryQualitySlots)
    return layout.quality


def new_user_model(
    seed: int = 0,
    numeric: int = 12,
    small_categoricals: int = 2,
    score_bins: int = 1000,
    drift: DriftConfig | None = None,
) -> SimulatedModel:
    """The issue's model: ``numeric`` features (every third zero-inflated), the Zipf feature."""
    rng = np.random.default_rng(seed)
    n = REFERENCE_EVENTS
    shapes = [(0.0, False), (0.75, True), (0.0, True), (0.45, True), (0.0, False), (0.0, True)]
    profiles, laws, probabilities = {}, {}, {}
    for i in range(numeric):
        zero, lognormal = shapes[i % len(shapes)]
        latent = rng.normal(size=n)
        values = np.where(rng.random(n) < zero, 0.0, np.exp(latent) if lognormal else latent)
        name = f"num{i:02d}"
        profiles[name] = numeric_profile(values, 10)
        laws[name] = NumericLaw(name, np.asarray(profiles[name].edges), zero, lognormal)
        probabilities[name] = laws[name].probabilities()
    categoricals = {ZIPF: np.arange(1, 31) ** -ZIPF_EXPONENT}
    for i in range(small_categoricals):
        categoricals[f"cat5_{i}"] = np.array([0.4, 0.25, 0.15, 0.12, 0.08])[:: 1 - 2 * (i % 2)]
    for name, weights in categoricals.items():
        weights = weights / weights.sum()
        names = [f"v{j:02d}" for j in range(weights.size)]
        drawn = rng.choice(weights.size, size=n, p=weights)
        profiles[name] = profile = categorical_profile([names[j] for j in drawn], 50, 10_000)
        order = [names.index(category) for category in profile.categories]
        probabilities[name] = np.append(weights[order], 0.0)
    kinds = {name: profile.kind for name, profile in profiles.items()}
    drift = drift or DriftConfig()
    model = ModelConfig("new-user", "binary", kinds, score_bins=score_bins, drift=drift)
    labels = rng.random(n) < POSITIVE_SHARE
    scores = 1 / (1 + np.exp(-rng.normal(np.where(labels, SCORE_MEAN, -SCORE_MEAN))))
    prediction = numeric_profile(scores, model.bins)
    reference = Reference(model.name, n, prediction, profiles, "simulated")
    layout = CounterLayout(model, reference)
    reference.quality = layout.quality_values(layout.quality.update(scores, labels.astype(float)))
    law = score_law(np.asarray(prediction.edges), score_bins, model.threshold)
    return SimulatedModel(model, layout, laws, probabilities, law)


@dataclass
class _Merge:
    """One way of merging a column's bins (see :func:`merge_sparse_bins`)."""

    onehot: np.ndarray
    expected: np.ndarray
    chi2_warn: float
    chi2_alert: float


class VectorJudge:
    """Severities of many window vectors at once, by the engine's rules (-1: not judged).

    Rows are the judged series (PSI, each CSI, each quality rule of a binary
    model), columns the windows. ``after`` adds significance to the practical line.
    """

    #: The metrics judged (null and new-category ratios are not simulated).
    METRICS = (PSI, CSI, *QUALITY_METRICS)

    def __init__(self, sim: SimulatedModel) -> None:
        layout, model = sim.layout, sim.model
        self.layout, self.model = layout, model
        self.levels = significance_levels(model, len(WINDOWS), PANE_S)
        drift = model.drift
        per_bin = drift.min_expected_per_bin
        self.min_expected = min_expected_count(self.levels.warn) if per_bin is None else per_bin
        self.min_events = {"before": BEFORE_MIN_EVENTS, "after": min_window_events(model, layout)}
        self.columns = [(PSI, layout.prediction)]
        self.columns += [(f"{CSI}[{name}]", slots) for name, slots in layout.features.items()]
        self.quality = [m for m in model.quality.rules if m in QUALITY_METRICS]
        self.series = [name for name, _ in self.columns] + self.quality
        self._merges: list[tuple[dict[float, _Merge], dict[bytes, _Merge]]]
        self._merges = [({}, {}) for _ in self.columns]
        self._z = (normal_isf(self.levels.warn), normal_isf(self.levels.alert))
        self.base = dict(layout.reference.quality)
        quality = binary_slots(layout)
        ranges = [(EVENTS_SLOT, 1), (quality.start, quality.width)]
        ranges += [(slots.start, slots.size) for _, slots in self.columns]
        #: The slots judged: :meth:`judge` takes windows of these columns only.
        self.used = np.unique(np.concatenate([np.arange(s, s + size) for s, size in ranges]))

    def _at(self, slot: int) -> int:
        """The column of layout slot ``slot`` in a window of the ``used`` slots."""
        return int(np.searchsorted(self.used, slot))

    def judge(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """Severities (series x windows, int8) of ``windows`` (their ``used`` slots) per variant."""
        found = {v: np.full((len(self.series), len(windows)), -1, np.int8) for v in VARIANTS}
        events = windows[:, self._at(EVENTS_SLOT)]
        epsilon = self.model.drift.epsilon
        for row, (name, slots) in enumerate(self.columns):
            start = self._at(slots.start)
            counts = windows[:, start : start + slots.size]
            reference = np.asarray(slots.reference.counts, dtype=np.float64)
            index = stability_index(counts, reference, epsilon)
            lines = self.model.drift.psi if name == PSI else self.model.drift.csi
            practical = practical_severity(index, lines.warn, lines.alert, below=False)
            allowed = self._stability_allowed(row, counts, reference, epsilon)
            for variant, severity in zip(
                VARIANTS, (practical, np.minimum(practical, allowed)), strict=True
            ):
                judged = events >= self.min_events[variant]
                found[variant][row] = np.where(judged, severity, -1)
        start = len(self.columns)
        for row, (value, allowed) in enumerate(self._quality(windows), start=start):
            metric = self.series[row]
            warn, alert = self.model.quality.rules[metric]
            base = self.base[metric]
            practical = practical_severity(value, base - warn, base - alert, below=True)
            judged = np.isfinite(value)
            found["before"][row] = np.where(judged, practical, -1)
            found["after"][row] = np.where(judged, np.minimum(practical, allowed), -1)
        return found

    def _stability_allowed(
        self, row: int, counts: np.ndarray, reference: np.ndarray, epsilon: float
    ) -> np.ndarray:
        """The severity each window's PSI/CSI is significant for (as ``stability_noise``)."""
        totals = counts.sum(axis=1)
        sizes, inverse = np.unique(totals, return_inverse=True)
        merges = [self._merge(row, float(m), reference) for m in sizes.tolist()]
        first: dict[int, int] = {}
        kind = np.array([first.setdefault(id(merge), i) for i, merge in enumerate(merges)])
        kind = kind[inverse.ravel()]
        allowed = np.zeros(totals.size, np.int8)
        for i in np.unique(kind).tolist():
            merge, rows = merges[i], np.flatnonzero(kind == i)
            m, n = totals[rows], reference.sum()
            if merge.onehot.shape[1] < 2 or not n > 0:
                continue
            merged = counts[rows] @ merge.onehot
            with np.errstate(divide="ignore", invalid="ignore"):
                shares = np.maximum(merged / m[:, None], epsilon)
            statistic = np.sum((shares - merge.expected) * np.log(shares / merge.expected), axis=1)
            scaled = statistic / (1.0 / n + 1.0 / m)
            allowed[rows] = (scaled >= merge.chi2_warn).astype(np.int8) + (
                scaled >= merge.chi2_alert
            )
        return allowed

    def _merge(self, row: int, m: float, reference: np.ndarray) -> _Merge:
        """The merged bins at window size ``m`` (one object for every size that merges alike)."""
        by_size, by_labels = self._merges[row]
        if m in by_size:
            return by_size[m]
        ordered = isinstance(self.columns[row][1].bins, NumericBins)
        n = float(reference.sum())
        labels = merge_sparse_bins(m * reference / n, self.min_expected, ordered)
        merge = by_labels.get(labels.tobytes())
        if merge is None:
            size = int(labels.max()) + 1
            onehot = np.zeros((reference.size, size))
            onehot[np.arange(reference.size), labels] = 1.0
            expected = np.maximum((reference @ onehot) / n, self.model.drift.epsilon)
            dof = size - 1
            warn = chi2_isf(self.levels.warn, dof) if dof else math.nan
            alert = chi2_isf(self.levels.alert, dof) if dof else math.nan
            merge = by_labels[labels.tobytes()] = _Merge(onehot, expected, warn, alert)
        by_size[m] = merge
        return merge

    def _quality(self, windows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each quality rule's value (NaN: not judged) and the severity it is significant for."""
        quality = binary_slots(self.layout)
        bins = quality.score_bins
        start, counters = self._at(quality.start), self._at(quality.counters_start)
        negative = windows[:, start : start + bins]
        positive = windows[:, start + bins : start + 2 * bins]
        tp, fp, tn, fn = (windows[:, counters + k] for k in (TP, FP, TN, FN))
        labeled = tp + fp + tn + fn
        auc, auc_se = binned_auc(negative, positive)
        with np.errstate(divide="ignore", invalid="ignore"):
            accuracy = (tp + tn) / labeled
            f1_total = 2 * tp + fp + fn
            f1 = np.where(f1_total > 0, 2 * tp / f1_total, 0.0)
            f1_se = 2 * np.sqrt(tp * (fp + fn) * (tp + fp + fn)) / f1_total**2
            values = {
                "auc": (auc, auc_se),
                "accuracy": (accuracy, np.sqrt(accuracy * (1 - accuracy) / labeled)),
                "f1": (f1, f1_se),
            }
        enough = labeled >= self.model.quality.min_labeled_events
        reference_labeled = self.base.get("labeled", 0.0)
        found = []
        for metric in self.quality:
            value, se = values[metric]
            value = np.where(enough, value, np.nan)
            total = se * np.sqrt(1 + labeled / reference_labeled) if reference_labeled else se
            with np.errstate(divide="ignore", invalid="ignore"):
                z = (self.base[metric] - value) / total
            z = np.where((total > 0) & np.isfinite(total), z, -np.inf)
            found.append((value, np.where(z >= self._z[1], 2, np.where(z >= self._z[0], 1, 0))))
        return found


def stability_index(counts: np.ndarray, reference: np.ndarray, epsilon: float) -> np.ndarray:
    """PSI of each row of ``counts`` against ``reference`` (as :class:`StabilityIndex`)."""
    expected = np.maximum(reference / reference.sum(), epsilon)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(totals > 0, np.maximum(counts / totals, epsilon), epsilon)
    index: np.ndarray = np.sum((shares - expected) * np.log(shares / expected), axis=1)
    return index


def practical_severity(value: np.ndarray, warn: float, alert: float, below: bool) -> np.ndarray:
    """:func:`stream_monitor.evaluate.severity_of` of each value, as 0, 1 or 2."""
    if below:
        return np.where(value <= alert, 2, np.where(value <= warn, 1, 0)).astype(np.int8)
    return np.where(value >= alert, 2, np.where(value >= warn, 1, 0)).astype(np.int8)


def binned_auc(negative: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUC and DeLong standard error of each row's histograms (as ``auc_se_binned``)."""
    n_negative = negative.sum(axis=1, keepdims=True)
    n_positive = positive.sum(axis=1, keepdims=True)
    below = np.cumsum(negative, axis=1) - negative
    above = n_positive - np.cumsum(positive, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        of_positives = (below + 0.5 * negative) / n_negative
        of_negatives = (above + 0.5 * positive) / n_positive
        auc = np.sum(positive * of_positives, axis=1, keepdims=True) / n_positive
        spread_positive = np.sum(positive * (of_positives - auc) ** 2, axis=1) / n_positive[:, 0]
        spread_negative = np.sum(negative * (of_negatives - auc) ** 2, axis=1) / n_negative[:, 0]
        se = np.sqrt(spread_positive / n_positive[:, 0] + spread_negative / n_negative[:, 0])
    both = (n_negative[:, 0] > 0) & (n_positive[:, 0] > 0)
    return np.where(both, auc[:, 0], np.nan), np.where(both, se, np.nan)


@dataclass
class Transitions:
    """Severity changes counted as a :class:`SeverityBoard` makes them, per series."""

    series: Sequence[str]
    state: np.ndarray = field(init=False)
    alerts: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.state = np.zeros(len(self.series), np.int8)

    def follow(self, severities: np.ndarray, count_from: int = 0) -> None:
        """Take judged severities (series x ends, -1 kept); count rises from ``count_from``."""
        ends = severities.shape[1]
        last = np.where(severities >= 0, np.arange(ends), -1)
        np.maximum.accumulate(last, axis=1, out=last)
        rows = np.arange(len(self.series))[:, None]
        filled = np.where(last >= 0, severities[rows, np.maximum(last, 0)], self.state[:, None])
        previous = np.concatenate((self.state[:, None], filled[:, :-1]), axis=1)
        rise = (filled > previous)[:, count_from:]
        level = filled[:, count_from:]
        for i, name in enumerate(self.series):
            self.alerts[name] += int(np.sum(rise[i] & (level[i] == LEVELS["alert"])))
            self.warnings[name] += int(np.sum(rise[i] & (level[i] == LEVELS["warn"])))
        self.state = filled[:, -1].copy()


def window_sums(panes: np.ndarray, carry: np.ndarray) -> dict[str, np.ndarray]:
    """Each window's vector at every pane of ``panes`` (``carry``: the panes before them)."""
    full = np.concatenate((carry, panes))
    total = np.concatenate((np.zeros((1, full.shape[1])), np.cumsum(full, axis=0)))
    ends = np.arange(carry.shape[0], full.shape[0]) + 1
    return {name: total[ends] - total[np.maximum(ends - size, 0)] for name, size in WINDOWS.items()}


@dataclass
class StableRun:
    """False alerts and warnings of a stable stream, per variant and window."""

    rate: float
    model_days: float
    board: dict[tuple[str, str], Transitions]

    def per_day(self, variant: str, kind: str) -> float:
        """Transitions into ``alert`` (``kind`` alerts) or ``warn`` per model per day."""
        boards = [t for (v, _), t in self.board.items() if v == variant]
        total = sum(sum(getattr(t, kind).values()) for t in boards)
        return total / self.model_days

    def worst(self, variant: str, kind: str) -> list[tuple[str, int]]:
        """The series with the most transitions, as (window/series, count)."""
        counted: Counter[str] = Counter()
        for (v, window), t in self.board.items():
            if v == variant:
                counted.update({f"{window} {k}": c for k, c in getattr(t, kind).items() if c})
        return counted.most_common(3)


def run_stable(sim: SimulatedModel, rate: float, days: float, seed: int = 0) -> StableRun:
    """Stream ``days`` model-days at ``rate`` events/s (after one hour to fill the windows)."""
    rng = np.random.default_rng([seed, round(rate * 10)])
    judge = VectorJudge(sim)
    warmup = max(WINDOWS.values())
    board = {(v, w): Transitions(judge.series) for v in VARIANTS for w in WINDOWS}
    carry = np.zeros((warmup - 1, judge.used.size))
    remaining, first = warmup + round(days * PANES_PER_DAY), True
    while remaining > 0:
        chunk = min(remaining, PANES_PER_DAY)
        panes = sim.pane_vectors(rng, rng.poisson(rate * PANE_S, chunk))[:, judge.used]
        for window, vectors in window_sums(panes, carry).items():
            for variant, severities in judge.judge(vectors).items():
                board[(variant, window)].follow(severities, warmup if first else 0)
        carry = np.concatenate((carry, panes))[-(warmup - 1) :]
        remaining -= chunk
        first = False
    return StableRun(rate, round(days * PANES_PER_DAY) / PANES_PER_DAY, board)


Delays = dict[tuple[str, str, str], list[float]]


def run_shift(
    sim: SimulatedModel, kind: str, rate: float, runs: int, horizon: int, seed: int = 0
) -> Delays:
    """Minutes from the shift to the first judged ``warn``/``alert`` of its series (inf: none).

    Keyed by (variant, window, level); each of ``runs`` streams one stable
    hour, then ``horizon`` shifted panes.
    """
    rng = np.random.default_rng([seed, SHIFTS.index(kind), round(rate * 10)])
    judge = VectorJudge(sim)
    moved, targets = sim.shifted(kind)
    rows = [judge.series.index(name) for name in targets if name in judge.series]
    before = max(WINDOWS.values())
    delays: Delays = {}
    for _ in range(runs):
        stable = sim.pane_vectors(rng, rng.poisson(rate * PANE_S, before))
        shifted = moved.pane_vectors(rng, rng.poisson(rate * PANE_S, horizon))
        panes = np.concatenate((stable, shifted))[:, judge.used]
        for window, vectors in window_sums(panes, panes[:0]).items():
            for variant, severities in judge.judge(vectors[before:]).items():
                reached = severities[rows].max(axis=0)
                for level in RISES:
                    hits = np.flatnonzero(reached >= LEVELS[level])
                    delay = (hits[0] + 1) * PANE_S / 60 if hits.size else math.inf
                    delays.setdefault((variant, window, level), []).append(delay)
    return delays


def median_delay(delays: Sequence[float], horizon: int) -> str:
    """The median delay in minutes, ``>horizon`` when under half the runs detected the shift."""
    median = float(np.median(np.asarray(delays)))
    return f">{horizon}" if math.isinf(median) else f"{median:g}"


def format_tables(
    stable: Sequence[StableRun], shifts: dict[float, dict[str, Delays]], horizon: int
) -> str:
    """The README table (markdown), then the detection delays before and after."""
    lines = [
        "| events/s | model-days | false alerts/day before | after | false warnings/day before"
        " | after | 1/2 sd mean shift, min: alert (warn) 5m / 1h | 20% to new values"
        " | accuracy -0.1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in stable:
        cells = [f"{run.rate:g}", f"{run.model_days:g}"]
        cells += [f"{run.per_day(v, k):.3g}" for k in ("alerts", "warnings") for v in VARIANTS]
        for found in shifts[run.rate].values():
            after = [
                [median_delay(found[("after", w, x)], horizon) for x in RISES] for w in WINDOWS
            ]
            cells.append(" / ".join(f"{alert} ({warn})" for alert, warn in after))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| events/s | shift | window | alert before | after | warn before | after |"]
    lines.append("|---|---|---|---|---|---|---|")
    for rate, kinds in shifts.items():
        for kind, found in kinds.items():
            for w in WINDOWS:
                cells = [median_delay(found[(v, w, x)], horizon) for x in RISES for v in VARIANTS]
                lines.append(f"| {rate:g} | {kind} | {w} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the README table: false alerts per model-day and detection delays per rate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=20.0, help="model-days per rate")
    parser.add_argument("--low-rate-days", type=float, help="model-days at 1 event/s and below")
    parser.add_argument("--runs", type=int, default=10, help="runs per shift and rate")
    parser.add_argument("--horizon", type=int, default=240, help="panes after each shift")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sim = new_user_model(args.seed)
    stable, shifts = [], {}
    for rate in RATES:
        started = time.perf_counter()
        days = args.low_rate_days if args.low_rate_days and rate <= 1 else args.days
        stable.append(run := run_stable(sim, rate, days, seed=args.seed))
        shifts[rate] = {
            kind: run_shift(sim, kind, rate, args.runs, args.horizon, args.seed) for kind in SHIFTS
        }
        worst = ", ".join(f"{k}: {c}" for k, c in run.worst("after", "alerts")) or "none"
        spent = time.perf_counter() - started
        print(f"# {rate:g}/s: {run.model_days:g} model-days, {spent:.0f}s; after: {worst}")
    print(format_tables(stable, shifts, args.horizon))


if __name__ == "__main__":
    main()

"""Classification quality from counts and sums in fixed slots.

Binary models (:class:`BinaryQualitySlots`) keep label-conditioned histograms of
the score over ``score_bins`` equal bins on ``[0, 1]``, the confusion counts at the
model's threshold (exact, from the raw scores), and the sums of log loss and of
squared error. AUC, Gini and KS are read from the histograms, accuracy,
precision, recall and F1 from the confusion counts, log loss and Brier from the
sums. Multiclass models (:class:`MulticlassQualitySlots`) keep a confusion matrix
over the configured classes plus one "other" class.

The binned AUC and KS are approximations; ``score_bins`` is their knob (see
:func:`auc_from_histograms` and :func:`ks_from_histograms`). Every other value
is exact. Metric conventions follow scikit-learn: a prediction is positive when
``score >= threshold``, and a ratio whose denominator is 0 is 0
(``zero_division=0``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stream_monitor.snapshot import ConfusionMatrix
from stream_monitor.state.vectors import SlotRange
from stream_monitor.summaries.calibration import score_bin
from stream_monitor.summaries.noise import auc_se_binned, f1_se, mean_se, proportion_se
from stream_monitor.summaries.slots import SlotSummary, as_float_column

DEFAULT_SCORE_BINS = 1000
LOG_LOSS_EPS = 1e-15
OTHER_CLASS = "__other__"
#: The class names of a binary model's confusion matrix: negative, positive.
BINARY_CLASSES = ("0", "1")

# Offsets of the binary counters and sums after the two histograms.
TP, FP, TN, FN, LOG_LOSS_SUM, SQUARED_ERROR_SUM, LOG_LOSS_SQ_SUM, SQUARED_ERROR_SQ_SUM = range(8)


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, 0 when the denominator is 0 (sklearn's zero_division=0)."""
    return float(numerator / denominator) if denominator > 0 else 0.0


def _class_histograms(
    pos_counts: np.ndarray, neg_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """Both classes' score histograms as floats with their totals; None if a class is absent."""
    pos = np.asarray(pos_counts, dtype=np.float64)
    neg = np.asarray(neg_counts, dtype=np.float64)
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos <= 0 or n_neg <= 0:
        return None
    return pos, neg, n_pos, n_neg


def auc_from_histograms(pos_counts: np.ndarray, neg_counts: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney) of scores summarised by label-conditioned histograms.

    AUC is the probability that a random positive scores above a random negative,
    ties counting one half. Bins are ordered by score, so a positive and a
    negative in different bins are ordered exactly; a pair in the same bin is
    counted as a tie (one half). That is the only approximation: the result is
    within :func:`auc_error_bound` of the exact AUC (at most half the share of
    positive-negative pairs that share a bin). More bins (``score_bins``, default
    1000) make it smaller; scores squeezed into a few bins make it larger. NaN
    when either class is absent.

    Reference: Hanley and McNeil (1982), "The meaning and use of the area under a
    receiver operating characteristic (ROC) curve".

    Examples
    --------
    >>> auc_from_histograms(np.array([0, 1, 1]), np.array([1, 1, 0]))
    0.875
    >>> auc_from_histograms(np.array([0, 2]), np.array([2, 0]))
    1.0
    """
    classes = _class_histograms(pos_counts, neg_counts)
    if classes is None:
        return float("nan")
    pos, neg, n_pos, n_neg = classes
    neg_below = np.cumsum(neg) - neg
    return float(np.sum(pos * (neg_below + 0.5 * neg)) / (n_pos * n_neg))


def auc_error_bound(pos_counts: np.ndarray, neg_counts: np.ndarray) -> float:
    """Largest possible gap between :func:`auc_from_histograms` and the exact AUC.

    Half the share of (positive, negative) pairs whose scores share a bin.

    >>> auc_error_bound(np.array([0, 1, 1]), np.array([1, 1, 0]))
    0.125
    """
    classes = _class_histograms(pos_counts, neg_counts)
    if classes is None:
        return float("nan")
    pos, neg, n_pos, n_neg = classes
    return float(0.5 * np.sum(pos * neg) / (n_pos * n_neg))


def ks_from_histograms(pos_counts: np.ndarray, neg_counts: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between the score distributions of positives and negatives.

    The largest gap between the two empirical CDFs (README, Windows), evaluated
    at the bin edges. The exact statistic (``scipy.stats.ks_2samp``) may also peak
    inside a bin, so the binned value is never larger and falls short by at
    most ``max_i max(pos_i / P, neg_i / N)``, the largest share of either class
    in one bin; ``score_bins`` is the knob. NaN when either class is absent.

    Examples
    --------
    >>> ks_from_histograms(np.array([0, 1, 3]), np.array([2, 2, 0]))
    0.75
    """
    classes = _class_histograms(pos_counts, neg_counts)
    if classes is None:
        return float("nan")
    pos, neg, n_pos, n_neg = classes
    return float(np.max(np.abs(np.cumsum(pos) / n_pos - np.cumsum(neg) / n_neg)))


def ks_standard_error(positives: float, negatives: float) -> float:
    """Noise scale of a two-sample KS distance: ``sqrt((n1 + n2) / (n1 n2)) / 2``.

    Under no change the distance times ``sqrt(n1 n2 / (n1 + n2))`` follows the
    Kolmogorov distribution, whose spread is about a half; a z-test with this
    scale is close to its two-sample critical value.

    >>> round(ks_standard_error(100, 100), 4)
    0.0707
    """
    if positives <= 0 or negatives <= 0:
        return float("nan")
    return 0.5 * math.sqrt((positives + negatives) / (positives * negatives))


def gini(auc: float) -> float:
    """Gini coefficient, ``2 * AUC - 1`` (README, Windows).

    >>> gini(0.875)
    0.75
    """
    return 2.0 * auc - 1.0


def accuracy(tp: float, fp: float, tn: float, fn: float) -> float:
    """Share of correct predictions; 0 without events.

    >>> accuracy(3, 1, 4, 2)
    0.7
    """
    return _ratio(tp + tn, tp + fp + tn + fn)


def precision(tp: float, fp: float) -> float:
    """``tp / (tp + fp)``; 0 when nothing was predicted positive.

    >>> precision(3, 1), precision(0, 0)
    (0.75, 0.0)
    """
    return _ratio(tp, tp + fp)


def recall(tp: float, fn: float) -> float:
    """``tp / (tp + fn)``; 0 without positives.

    >>> recall(3, 2)
    0.6
    """
    return _ratio(tp, tp + fn)


def f1(tp: float, fp: float, fn: float) -> float:
    """Harmonic mean of precision and recall, ``2 tp / (2 tp + fp + fn)``; 0 when undefined.

    >>> round(f1(3, 1, 2), 12)
    0.666666666667
    """
    return _ratio(2.0 * tp, 2.0 * tp + fp + fn)


def mean_of_sum(total: float, n: float) -> float:
    """``total / n``, NaN when ``n`` is 0 (log loss and Brier of an empty window).

    >>> mean_of_sum(1.5, 3)
    0.5
    """
    return float(total / n) if n > 0 else float("nan")


@dataclass(frozen=True)
class BinaryQuality:
    """Quality of a binary classifier in one window (NaN where undefined)."""

    labeled: int
    positives: int
    auc: float
    gini: float
    ks: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    log_loss: float
    brier: float


class BinaryQualitySlots(SlotSummary, SlotRange):
    """Slots of a binary classifier's quality summary, from ``start``.

    Layout (``B = score_bins``): ``B`` negative-score bins, ``B`` positive-score
    bins, then the counts ``tp, fp, tn, fn`` at ``threshold`` and four float sums:
    log loss, squared error, and their squares (for standard errors). ``width = 2 * B + 8``.

    Inputs are the score (positive-class probability) and the label, 1 for
    positive and 0 for negative (arrays, or lists where None means "no label").
    A row whose score is NaN/inf or whose label is anything else is not counted.
    Scores are binned by ``floor(score * B)`` and clamped into ``[0, 1]`` for the
    bins and the Brier score; log loss clips them to ``[1e-15, 1 - 1e-15]``; the confusion counts
    compare the raw score with ``threshold`` (positive when ``score >= threshold``).

    Examples
    --------
    >>> slots = BinaryQualitySlots(0, score_bins=10, threshold=0.5)
    >>> slots.width
    28
    >>> slots.positions(np.array([0.95, 0.2]), np.array([1, 0]))
    (array([19,  2]), array([20, 22]))
    >>> vector = slots.update(np.array([0.9, 0.4, 0.6, 0.1]), np.array([1, 1, 0, 0]))
    >>> q = slots.value(vector)
    >>> q.auc, q.accuracy, q.f1, round(q.brier, 6)
    (0.75, 0.5, 0.5, 0.185)
    """

    def __init__(
        self, start: int, score_bins: int = DEFAULT_SCORE_BINS, threshold: float = 0.5
    ) -> None:
        if score_bins < 1:
            raise ValueError("score_bins must be at least 1")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be in [0, 1]")
        self.start = start
        self.score_bins = score_bins
        self.threshold = threshold

    @property
    def width(self) -> int:
        """Slots used: two histograms, four confusion counts, four sums."""
        return 2 * self.score_bins + 8

    @property
    def counters_start(self) -> int:
        """Absolute position of ``tp`` (then ``fp``, ``tn``, ``fn``, the four sums)."""
        return self.start + 2 * self.score_bins

    @property
    def sum_slots(self) -> np.ndarray:
        """Absolute positions of the log-loss and squared-error sums and of their squares."""
        return self.counters_start + np.arange(LOG_LOSS_SUM, SQUARED_ERROR_SQ_SUM + 1)

    def _labeled(
        self, score: np.ndarray, label: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows counted (finite score, label 0 or 1), their scores and their labels."""
        score = as_float_column(score)
        label = as_float_column(label)
        rows = np.flatnonzero(np.isfinite(score) & ((label == 0) | (label == 1)))
        return rows, score[rows], label[rows]

    def _positions_of(self, score: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Histogram-bin and confusion-count positions of counted rows."""
        positive = label == 1
        hist = (
            self.start + np.where(positive, self.score_bins, 0) + score_bin(score, self.score_bins)
        )
        predicted = score >= self.threshold
        kind = np.where(predicted, np.where(positive, TP, FP), np.where(positive, FN, TN))
        return hist, self.counters_start + kind

    def _sums_of(self, score: np.ndarray, label: np.ndarray) -> np.ndarray:
        """Log loss, squared error and their squares of counted rows, ``(rows, 4)``."""
        sums = np.empty((len(score), 4))
        # np.clip's bounds, with ufuncs (the scores are finite); written into their columns.
        p = np.minimum(np.maximum(score, LOG_LOSS_EPS), 1.0 - LOG_LOSS_EPS)
        log_loss = np.negative(label * np.log(p) + (1.0 - label) * np.log1p(-p), out=sums[:, 0])
        squared = np.square(np.minimum(np.maximum(score, 0.0), 1.0) - label, out=sums[:, 1])
        np.multiply(log_loss, log_loss, out=sums[:, 2])
        np.multiply(squared, squared, out=sums[:, 3])
        return sums

    def counted(
        self, score: np.ndarray, label: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray]:
        """The rows counted, their positions and their sums (only labeled rows are worked on)."""
        rows, score, label = self._labeled(score, label)
        return rows, self._positions_of(score, label), self._sums_of(score, label)

    def positions(self, score: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Histogram-bin and confusion-count positions of each row (``-1`` if not counted)."""
        rows, score_of, label_of = self._labeled(score, label)
        every = []
        for counted in self._positions_of(score_of, label_of):
            column = np.full(len(score), -1, dtype=np.int64)
            column[rows] = counted
            every.append(column)
        return every[0], every[1]

    def sums(self, score: np.ndarray, label: np.ndarray) -> np.ndarray:
        """Per-row log loss, squared error and their squares, ``(rows, 4)`` (0: not counted)."""
        rows, score_of, label_of = self._labeled(score, label)
        every = np.zeros((len(score), 4))
        every[rows] = self._sums_of(score_of, label_of)
        return every

    def histograms(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positive and negative score histograms in ``vector``."""
        b = self.score_bins
        neg = vector[self.start : self.start + b]
        pos = vector[self.start + b : self.start + 2 * b]
        return pos, neg

    def standard_errors(self, vector: np.ndarray) -> dict[str, float]:
        """The sampling standard error of each metric of ``vector`` (NaN where undefined)."""
        base = self.counters_start
        tp, fp, tn, fn, s_ll, s_sq, s_ll2, s_sq2 = (float(v) for v in vector[base : base + 8])
        n, positives = tp + fp + tn + fn, tp + fn
        pos, neg = self.histograms(vector)
        auc_error = auc_se_binned(neg, pos)
        return {
            "accuracy": proportion_se(accuracy(tp, fp, tn, fn), n) if n else float("nan"),
            "precision": proportion_se(precision(tp, fp), tp + fp),
            "recall": proportion_se(recall(tp, fn), positives),
            "f1": f1_se(tp, fp, fn),
            "auc": auc_error,
            "gini": 2.0 * auc_error,
            "ks": ks_standard_error(positives, n - positives),
            "log_loss": mean_se(s_ll, s_ll2, n),
            "brier": mean_se(s_sq, s_sq2, n),
        }

    def confusion_matrix(self, vector: np.ndarray) -> ConfusionMatrix:
        """The confusion counts of ``vector`` at ``threshold``, rows actual ``0``/``1``.

        >>> slots = BinaryQualitySlots(0, score_bins=10, threshold=0.5)
        >>> vector = slots.update(np.array([0.9, 0.4, 0.6, 0.1, 0.7]), np.array([1, 1, 0, 0, 1]))
        >>> slots.confusion_matrix(vector).counts
        ((1, 1), (1, 2))
        """
        base = self.counters_start
        tp, fp, tn, fn = (round(float(v)) for v in vector[base : base + 4])
        return ConfusionMatrix(BINARY_CLASSES, ((tn, fp), (fn, tp)))

    def value(self, vector: np.ndarray) -> BinaryQuality:
        """Every binary quality metric of ``vector`` (a pane or window vector)."""
        pos, neg = self.histograms(vector)
        base = self.counters_start
        tp, fp, tn, fn = (float(v) for v in vector[base : base + 4])
        n = tp + fp + tn + fn
        auc = auc_from_histograms(pos, neg)
        return BinaryQuality(
            labeled=round(n),
            positives=round(tp + fn),
            auc=auc,
            gini=gini(auc),
            ks=ks_from_histograms(pos, neg),
            accuracy=accuracy(tp, fp, tn, fn) if n else float("nan"),
            precision=precision(tp, fp) if n else float("nan"),
            recall=recall(tp, fn) if n else float("nan"),
            f1=f1(tp, fp, fn) if n else float("nan"),
            log_loss=mean_of_sum(float(vector[base + LOG_LOSS_SUM]), n),
            brier=mean_of_sum(float(vector[base + SQUARED_ERROR_SUM]), n),
        )


def per_class_scores(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 of each class of a confusion matrix (rows true, columns predicted).

    Ratios with a zero denominator are 0 (sklearn's ``zero_division=0``).

    >>> p, r, f = per_class_scores(np.array([[2, 1], [0, 1]]))
    >>> p.tolist(), r.tolist(), f.round(4).tolist()
    ([1.0, 0.5], [0.6666666666666666, 1.0], [0.8, 0.6667])
    """
    c = np.asarray(confusion, dtype=np.float64)
    hits = np.diag(c)
    predicted = c.sum(axis=0)
    support = c.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(predicted > 0, hits / predicted, 0.0)
        rec = np.where(support > 0, hits / support, 0.0)
        denom = support + predicted
        f = np.where(denom > 0, 2.0 * hits / denom, 0.0)
    return prec, rec, f


def present_classes(confusion: np.ndarray) -> np.ndarray:
    """Mask of classes that occur as a label or a prediction (sklearn's default ``labels``)."""
    c = np.asarray(confusion, dtype=np.float64)
    present: np.ndarray = (c.sum(axis=0) + c.sum(axis=1)) > 0
    return present


def confusion_accuracy(confusion: np.ndarray) -> float:
    """Share of the matrix on its diagonal; NaN when empty.

    >>> confusion_accuracy(np.array([[2, 1], [0, 1]]))
    0.75
    """
    c = np.asarray(confusion, dtype=np.float64)
    return mean_of_sum(float(np.trace(c)), float(c.sum()))


def macro_f1(confusion: np.ndarray) -> float:
    """Unweighted mean F1 over the classes present as a label or a prediction; NaN when empty.

    >>> round(macro_f1(np.array([[2, 1, 0], [0, 1, 0], [0, 0, 0]])), 6)
    0.733333
    """
    _, _, f = per_class_scores(confusion)
    present = present_classes(confusion)
    return float(f[present].mean()) if present.any() else float("nan")


def weighted_f1(confusion: np.ndarray) -> float:
    """Mean F1 weighted by each class's support (true count); NaN without labels.

    >>> round(weighted_f1(np.array([[2, 1], [0, 1]])), 6)
    0.766667
    """
    c = np.asarray(confusion, dtype=np.float64)
    _, _, f = per_class_scores(c)
    support = c.sum(axis=1)
    total = support.sum()
    return float(np.sum(f * support) / total) if total > 0 else float("nan")


@dataclass(frozen=True)
class MulticlassQuality:
    """Quality of a multiclass classifier in one window (NaN where undefined).

    Per-class dictionaries are keyed by class name, ``"__other__"`` for the
    class that holds every label or prediction outside the configured classes.
    """

    labeled: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    precision: dict[str, float]
    recall: dict[str, float]


class MulticlassQualitySlots(SlotSummary, SlotRange):
    """Slots of a confusion matrix over ``classes`` plus "other", from ``start``.

    The matrix is ``(K + 1) x (K + 1)`` with ``K = len(classes)``, rows the true
    class and columns the predicted one (as ``sklearn.metrics.confusion_matrix``),
    stored row by row; a label or prediction that is not one of ``classes`` counts
    as the last class, "other", so memory stays bounded whatever arrives. Class
    values are matched as strings (normalise them as the event schema says before
    calling); a row whose label or prediction is None is not counted.

    Examples
    --------
    >>> slots = MulticlassQualitySlots(0, ["cat", "dog"])
    >>> slots.width
    9
    >>> q = slots.value(slots.update(["cat", "dog", "cat", "emu"], ["cat", "cat", "cat", None]))
    >>> q.labeled, round(q.accuracy, 4), q.recall["cat"], q.precision["dog"]
    (3, 0.6667, 0.6666666666666666, 0.0)
    """

    def __init__(self, start: int, classes: Sequence[str]) -> None:
        names = [str(c) for c in classes]
        if len(set(names)) != len(names):
            raise ValueError("classes must be distinct")
        if OTHER_CLASS in names:
            raise ValueError(f"{OTHER_CLASS!r} is reserved for unknown classes")
        self.start = start
        self.classes = names
        self.size = len(names) + 1
        self._lookup = {name: i for i, name in enumerate(names)}

    @property
    def width(self) -> int:
        """Slots used: the whole matrix."""
        return self.size * self.size

    def class_index(self, values: Sequence[object]) -> np.ndarray:
        """Index of each value among ``classes`` (``K`` for other, ``-1`` for None)."""
        get = self._lookup.get
        other = self.size - 1
        return np.fromiter(
            (-1 if v is None else get(v if isinstance(v, str) else str(v), other) for v in values),
            np.int64,
            len(values),
        )

    def positions(
        self, predictions: Sequence[object], labels: Sequence[object]
    ) -> tuple[np.ndarray]:
        """Matrix cell of each row (``-1`` where the label or the prediction is None)."""
        predicted = self.class_index(predictions)
        true = self.class_index(labels)
        cell = self.start + true * self.size + predicted
        return (np.where((predicted >= 0) & (true >= 0), cell, -1),)

    def confusion(self, vector: np.ndarray) -> np.ndarray:
        """The confusion matrix held by ``vector``."""
        return vector[self.start : self.start + self.width].reshape(self.size, self.size)

    def confusion_matrix(self, vector: np.ndarray) -> ConfusionMatrix:
        """The confusion matrix of ``vector`` with each class's precision and recall.

        The last class is named ``other`` (``__other__`` if a configured class is
        called ``other``).

        >>> slots = MulticlassQualitySlots(0, ["cat", "dog"])
        >>> vector = slots.update(["cat", "dog", "emu"], ["cat", "cat", "emu"])
        >>> matrix = slots.confusion_matrix(vector)
        >>> matrix.classes, matrix.counts
        (('cat', 'dog', 'other'), ((1, 1, 0), (0, 0, 0), (0, 0, 1)))
        >>> matrix.precision["cat"], matrix.recall["cat"]
        (1.0, 0.5)
        """
        c = self.confusion(vector)
        other = "other" if "other" not in self._lookup else OTHER_CLASS
        names = (*self.classes, other)
        prec, rec, _ = per_class_scores(c)
        return ConfusionMatrix(
            names,
            tuple(tuple(row) for row in np.rint(c).astype(np.int64).tolist()),
            dict(zip(names, prec.tolist(), strict=True)),
            dict(zip(names, rec.tolist(), strict=True)),
        )

    def standard_errors(self, vector: np.ndarray) -> dict[str, float]:
        """Standard errors: binomial for accuracy; macro F1 as a proportion of the labeled."""
        c = self.confusion(vector)
        n = float(c.sum())
        return {
            "accuracy": proportion_se(confusion_accuracy(c), n),
            "f1": proportion_se(macro_f1(c), n),
        }

    def value(self, vector: np.ndarray) -> MulticlassQuality:
        """Every multiclass quality metric of ``vector``."""
        c = self.confusion(vector)
        prec, rec, _ = per_class_scores(c)
        names = [*self.classes, OTHER_CLASS]
        return MulticlassQuality(
            labeled=round(float(c.sum())),
            accuracy=confusion_accuracy(c),
            macro_f1=macro_f1(c),
            weighted_f1=weighted_f1(c),
            precision=dict(zip(names, prec.tolist(), strict=True)),
            recall=dict(zip(names, rec.tolist(), strict=True)),
        )

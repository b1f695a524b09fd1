"""The calibration map of a binary classifier: the reference's positive share per score bin.

Built once from the reference's labeled events, over the ``score_bins`` equal
bins of ``[0, 1]`` that the quality histograms use. Sparse bins are pooled with
their right-hand neighbours, from the lowest score up, until each group holds
at least ``min_labeled`` labeled events (a short last group joins the one
before), so that no share rests on a handful of labels.

Within a group the share follows the score: a group keeps its calibration
offset, the positive share of its labeled events minus their mean score, and
the share of a bin is its midpoint score plus that offset (clipped to
``[0, 1]``). A calibrated model has offsets near 0, and a wide group (few
reference labels at high scores, say) still tells a score of 0.9 from one of
0.5; a miscalibrated one is corrected group by group.

The map also keeps the reference's score histogram of every event, so that the
reference's own estimate is known (:mod:`stream_monitor.summaries.estimate`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np


def _read_only(array: np.ndarray) -> np.ndarray:
    """``array``, made read-only (a cached value that callers share)."""
    array.setflags(write=False)
    return array


def score_bin(score: np.ndarray, score_bins: int) -> np.ndarray:
    """The bin of each score among ``score_bins`` equal bins of ``[0, 1]`` (as the quality
    histograms bin it: clamped into ``[0, 1]``, ``floor(score * score_bins)``).

    >>> score_bin(np.array([0.0, 0.5, 0.999, 1.0, 7.0, np.nan, -np.inf, np.inf]), 10).tolist()
    [0, 5, 9, 9, 9, 0, 0, 9]
    """
    clipped = np.fmin(np.fmax(score, 0.0), 1.0)  # NaN (ignored by fmax) reads 0
    bins: np.ndarray = (clipped * score_bins).astype(np.int64)
    return np.minimum(bins, score_bins - 1, out=bins)


def pooled_starts(labeled: np.ndarray, min_labeled: int) -> np.ndarray:
    """First bin of each group of adjacent bins holding at least ``min_labeled`` labeled events.

    Bins are taken from the lowest score up; a group closes once it holds
    ``min_labeled`` events, and a short last group joins the one before.

    >>> pooled_starts(np.array([5, 0, 3, 9, 1, 1, 4]), 5).tolist()
    [0, 1, 4]
    """
    starts, held = [0], 0
    for index, count in enumerate(np.asarray(labeled).tolist()):
        if held >= min_labeled:
            starts.append(index)
            held = 0
        held += count
    if held < min_labeled and len(starts) > 1:
        starts.pop()
    return np.asarray(starts, dtype=np.int64)


@dataclass(frozen=True)
class CalibrationMap:
    """The reference's positive share per group of score bins, and its score histogram.

    ``starts[g]`` is the first of the ``score_bins`` bins of group ``g``;
    ``labeled[g]`` and ``positives[g]`` count its labeled reference events and
    their positives, ``score_sums[g]`` sums their scores (clamped into
    ``[0, 1]``); ``histogram`` counts every reference event per bin.
    """

    score_bins: int
    starts: tuple[int, ...]
    labeled: tuple[int, ...]
    positives: tuple[int, ...]
    score_sums: tuple[float, ...]
    histogram: tuple[int, ...]

    @functools.cached_property
    def group_shares(self) -> np.ndarray:
        """Positive share of each group (read-only, like the other arrays: computed once)."""
        return _read_only(
            np.asarray(self.positives, np.float64) / np.asarray(self.labeled, np.float64)
        )

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        """Each group's positive share minus its labeled events' mean score."""
        labeled = np.asarray(self.labeled, np.float64)
        return _read_only(self.group_shares - np.asarray(self.score_sums, np.float64) / labeled)

    @functools.cached_property
    def group_starts(self) -> np.ndarray:
        """``starts`` as an array (each group's first bin, as ``np.add.reduceat`` takes it)."""
        return _read_only(np.asarray(self.starts, np.int64))

    @functools.cached_property
    def shares(self) -> np.ndarray:
        """Positive share of each score bin: its midpoint score plus its group's offset."""
        sizes = np.diff([*self.starts, self.score_bins])
        midpoints = (np.arange(self.score_bins) + 0.5) / self.score_bins
        return _read_only(np.clip(midpoints + np.repeat(self.offsets, sizes), 0.0, 1.0))

    @functools.cached_property
    def share_variances(self) -> np.ndarray:
        """The binomial variance of each group's positive share, ``p (1 - p) / n``."""
        shares = self.group_shares
        return _read_only(shares * (1.0 - shares) / np.asarray(self.labeled, np.float64))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``calibration`` entry of a baseline file)."""
        return {
            "score_bins": self.score_bins,
            "starts": list(self.starts),
            "labeled": list(self.labeled),
            "positives": list(self.positives),
            "score_sums": list(self.score_sums),
            "histogram": list(self.histogram),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationMap:
        """Inverse of :meth:`to_dict`; ValueError when the parts do not fit together."""
        found = cls(
            int(data["score_bins"]),
            tuple(int(v) for v in data["starts"]),
            tuple(int(v) for v in data["labeled"]),
            tuple(int(v) for v in data["positives"]),
            tuple(float(v) for v in data["score_sums"]),
            tuple(int(v) for v in data["histogram"]),
        )
        groups = len(found.starts)
        if (
            len(found.histogram) != found.score_bins
            or not groups
            or found.starts[0] != 0
            or len(found.labeled) != groups
            or len(found.positives) != groups
            or len(found.score_sums) != groups
            or np.any(np.diff(found.starts) <= 0)
            or found.starts[-1] >= found.score_bins
            or min(found.labeled) <= 0
        ):
            raise ValueError("calibration map: groups, counts and histogram do not fit together")
        return found


def build_calibration(
    scores: np.ndarray, labels: np.ndarray, score_bins: int, min_labeled: int
) -> CalibrationMap | None:
    """The calibration map of reference ``scores`` with ``labels`` (1, 0, or NaN: none).

    None (no estimate) when fewer than ``min_labeled`` events are labeled or a
    class is missing among them.

    >>> scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9, 0.5])
    >>> m = build_calibration(scores, np.array([0, 0, 1, 1, 1, 0, np.nan]), 10, 3)
    >>> m.starts, m.labeled, m.positives, m.offsets.round(3).tolist()
    ((0, 4), (3, 3), (1, 2), [0.133, -0.133])
    >>> m.shares.round(3).tolist()[::3]
    [0.183, 0.483, 0.517, 0.817]
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    finite = np.isfinite(scores)
    bins = score_bin(scores, score_bins)
    histogram = np.bincount(bins[finite], minlength=score_bins)
    labeled_rows = finite & ((labels == 0) | (labels == 1))
    labeled = np.bincount(bins[labeled_rows], minlength=score_bins)
    positives = np.bincount(bins[labeled_rows & (labels == 1)], minlength=score_bins)
    clamped = np.clip(scores[labeled_rows], 0.0, 1.0)
    score_sums = np.bincount(bins[labeled_rows], weights=clamped, minlength=score_bins)
    total, hits = int(labeled.sum()), int(positives.sum())
    if total < max(min_labeled, 1) or hits == 0 or hits == total:
        return None
    starts = pooled_starts(labeled, min_labeled)
    return CalibrationMap(
        score_bins,
        tuple(starts.tolist()),
        tuple(np.add.reduceat(labeled, starts).tolist()),
        tuple(np.add.reduceat(positives, starts).tolist()),
        tuple(np.add.reduceat(score_sums, starts).tolist()),
        tuple(histogram.tolist()),
    )

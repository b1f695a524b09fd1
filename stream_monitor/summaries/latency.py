"""Inference latency in fixed slots: a log-bucket quantile sketch and a Prometheus histogram.

Two views of the same values, both counts in fixed slots (mergeable by
addition):

* :class:`LogBuckets`, a DDSketch-style sketch (Masson, Rim and Lee, 2019,
  "DDSketch: a fast and fully-mergeable quantile sketch with relative-error
  guarantees"). Bucket ``k`` holds ``gamma^(k-1) < x <= gamma^k`` with
  ``gamma = (1 + alpha) / (1 - alpha)``, and reports ``2 gamma^k / (gamma + 1)``, so
  any quantile of values inside ``[min_ms, max_ms]`` is within relative error
  ``alpha`` (the knob; default 1%) of the exact one. The range is bounded
  (default 0.01 ms to 10 minutes: 899 buckets at 1%); smaller values fall
  into an underflow bucket reported as ``min_ms``, larger ones into an overflow
  bucket reported as ``max_ms``.
* Exact Prometheus histogram buckets for
  ``stream_monitor_inference_latency_seconds``: the sketch's buckets straddle
  the Prometheus bounds, so the histogram is not derived from them but kept
  beside them. Each value adds 1 to the slot of the first bound ``>= value``
  (``np.searchsorted(bounds_s, seconds, side="left")``; the last slot is
  ``+Inf``) and its seconds to a float sum slot. :meth:`LatencySlots.histogram`
  turns those per-bucket counts into Prometheus's cumulative ``le`` counts with
  ``np.cumsum``; ``_count`` is the ``+Inf`` count.

Latencies are in milliseconds on the way in (``latency_ms``) and in seconds on
the way out. NaN, infinite or negative latencies are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from stream_monitor.snapshot import LatencyHistogram, LatencyStats
from stream_monitor.state.vectors import SlotRange
from stream_monitor.summaries.slots import SlotSummary

DEFAULT_ALPHA = 0.01
DEFAULT_MIN_MS = 0.01
DEFAULT_MAX_MS = 600_000.0
DEFAULT_BOUNDS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)


class LogBuckets:
    """Map latencies to log-spaced buckets and read quantiles from their counts.

    Bucket 0 is the underflow (``0 <= x < min_ms``), the last one the overflow
    (``x > max_ms``); the others are the sketch's keys from ``min_ms`` to ``max_ms``.

    Examples
    --------
    >>> b = LogBuckets()
    >>> b.size
    899
    >>> b.index(np.array([0.0, 12.0, 12.1, 12.5, 1e9, -1.0, np.nan])).tolist()
    [0, 356, 356, 358, 898, -1, -1]
    >>> counts = np.bincount(b.index(np.arange(1.0, 101.0)), minlength=b.size)
    >>> round(b.quantile(counts, 0.5), 3), round(b.quantile(counts, 0.99), 3)
    (49.903, 98.505)
    """

    def __init__(
        self,
        alpha: float = DEFAULT_ALPHA,
        min_ms: float = DEFAULT_MIN_MS,
        max_ms: float = DEFAULT_MAX_MS,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        if not 0.0 < min_ms < max_ms:
            raise ValueError("need 0 < min_ms < max_ms")
        self.alpha = alpha
        self.min_ms = float(min_ms)
        self.max_ms = float(max_ms)
        self.gamma = (1.0 + alpha) / (1.0 - alpha)
        self._log_gamma = math.log(self.gamma)
        self._key_min = int(self._key(np.array([self.min_ms]))[0])
        key_max = int(self._key(np.array([self.max_ms]))[0])
        self.size = key_max - self._key_min + 1 + 2

    def _key(self, values_ms: np.ndarray) -> np.ndarray:
        keys: np.ndarray = np.ceil(np.log(values_ms) / self._log_gamma).astype(np.int64)
        return keys

    def index(self, values_ms: np.ndarray) -> np.ndarray:
        """Bucket of each latency in ms (``-1`` for NaN, infinite or negative values)."""
        x = np.asarray(values_ms, dtype=np.float64)
        inside = (x >= self.min_ms) & (x <= self.max_ms)
        if inside.all():  # the common case: every latency within the sketch's range
            keys = self._key(x)
            keys -= self._key_min - 1
            return keys
        valid = np.isfinite(x) & (x >= 0.0)
        keys = self._key(np.where(inside, x, self.min_ms)) - self._key_min + 1
        out = np.where(inside, keys, -1)
        out[valid & (x < self.min_ms)] = 0
        out[valid & (x > self.max_ms)] = self.size - 1
        return out

    def value(self, bucket: int) -> float:
        """The latency in ms that bucket ``bucket`` reports."""
        if bucket <= 0:
            return self.min_ms
        if bucket >= self.size - 1:
            return self.max_ms
        key = bucket - 1 + self._key_min
        return 2.0 * self.gamma**key / (self.gamma + 1.0)

    def quantile(self, counts: np.ndarray, q: float) -> float:
        """Quantile ``q`` in ms of the values counted in ``counts``; NaN when empty.

        The rank follows ``np.quantile(values, q, method="inverted_cdf")``: the
        smallest value whose empirical CDF reaches ``q``, i.e. the ``ceil(q n)``-th
        smallest (at least the first). The result is that value's bucket's
        representative, within relative error ``alpha`` for values in range.
        """
        return self.quantiles(counts, (q,))[0]

    def quantiles(self, counts: np.ndarray, qs: Sequence[float]) -> list[float]:
        """:meth:`quantile` of each of ``qs``, from one cumulative sum of ``counts``.

        >>> b = LogBuckets()
        >>> counts = np.bincount(b.index(np.arange(1.0, 101.0)), minlength=b.size)
        >>> b.quantiles(counts, (0.5, 0.99)) == [b.quantile(counts, 0.5), b.quantile(counts, 0.99)]
        True
        """
        if not all(0.0 <= q <= 1.0 for q in qs):
            raise ValueError("q must be in [0, 1]")
        cumulative = np.cumsum(np.asarray(counts, dtype=np.float64))
        n = cumulative[-1] if cumulative.size else 0.0
        if n <= 0:
            return [float("nan")] * len(qs)
        ranks = [max(1.0, math.ceil(q * n)) for q in qs]
        buckets = np.searchsorted(cumulative, ranks, side="left").tolist()
        return [self.value(min(bucket, self.size - 1)) for bucket in buckets]


class LatencySlots(SlotSummary, SlotRange):
    """Slots of the latency summary from ``start``.

    Layout: ``buckets.size`` sketch counts, ``len(bounds_s) + 1`` Prometheus
    bucket counts (per bucket, not cumulative; the last is ``+Inf``), then one
    float slot with the sum of latencies in seconds.

    Examples
    --------
    >>> slots = LatencySlots(0, bounds_s=(0.01, 0.1))
    >>> slots.width
    903
    >>> vector = slots.update(np.array([5.0, 20.0, 50.0, 2000.0, np.nan]))
    >>> h = slots.histogram(vector)
    >>> h.buckets, h.count, h.sum_s
    ([(0.01, 1.0), (0.1, 3.0), (inf, 4.0)], 4.0, 2.075)
    >>> round(slots.value(vector).quantiles_s[0.5], 5)
    0.01989
    """

    def __init__(
        self,
        start: int,
        buckets: LogBuckets | None = None,
        bounds_s: Sequence[float] = DEFAULT_BOUNDS_S,
    ) -> None:
        bounds = np.asarray(bounds_s, dtype=np.float64)
        if bounds.ndim != 1 or not np.all(np.isfinite(bounds)) or np.any(np.diff(bounds) <= 0):
            raise ValueError("bounds_s must be finite and strictly increasing")
        self.start = start
        self.buckets = buckets if buckets is not None else LogBuckets()
        self.bounds_s = bounds
        #: The upper bound of each Prometheus bucket, ``+Inf`` last.
        self._les = [*bounds.tolist(), math.inf]

    @property
    def histogram_start(self) -> int:
        """Absolute position of the first Prometheus bucket count."""
        return self.start + self.buckets.size

    @property
    def width(self) -> int:
        """Slots used: sketch buckets, Prometheus buckets with ``+Inf``, and the sum."""
        return self.buckets.size + len(self.bounds_s) + 2

    @property
    def sum_slots(self) -> np.ndarray:
        """Absolute position of the sum of seconds."""
        return np.array([self.start + self.width - 1], dtype=np.int64)

    def positions(self, latency_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sketch-bucket and Prometheus-bucket positions of each value (``-1``: not counted)."""
        return self.counted(latency_ms)[1]

    def sums(self, latency_ms: np.ndarray) -> np.ndarray:
        """Per-row latency in seconds, shape ``(rows, 1)`` (0 where not counted)."""
        return self.counted(latency_ms)[2]

    def counted(
        self, latency_ms: np.ndarray
    ) -> tuple[None, tuple[np.ndarray, np.ndarray], np.ndarray]:
        """Every row, with its :meth:`positions` and :meth:`sums` from one validity mask."""
        x = np.asarray(latency_ms, dtype=np.float64)
        sketch = self.buckets.index(x)
        valid = sketch >= 0
        if valid.all():
            seconds = x / 1000.0
            prom = self.bounds_s.searchsorted(seconds, side="left")
            sketch += self.start
            prom += self.histogram_start
            return None, (sketch, prom), seconds[:, None]
        prom = np.searchsorted(self.bounds_s, np.where(valid, x, 0.0) / 1000.0, side="left")
        positions = (
            np.where(valid, self.start + sketch, -1),
            np.where(valid, self.histogram_start + prom, -1),
        )
        return None, positions, np.where(valid, x, 0.0)[:, None] / 1000.0

    def counts(self, vector: np.ndarray) -> np.ndarray:
        """The sketch's bucket counts in ``vector``."""
        return vector[self.start : self.start + self.buckets.size]

    def quantiles_s(
        self, vector: np.ndarray, qs: Sequence[float] = DEFAULT_QUANTILES
    ) -> dict[float, float]:
        """Quantiles of ``vector``'s latencies, in seconds (NaN when empty)."""
        found = self.buckets.quantiles(self.counts(vector), qs)
        return {q: value / 1000.0 for q, value in zip(qs, found, strict=True)}

    def histogram(self, vector: np.ndarray) -> LatencyHistogram:
        """Cumulative Prometheus buckets and sum of ``vector``.

        A Prometheus histogram is a set of counters, so feed this the running
        total of every pane delta ever counted (never subtracted), not a sliding
        window whose counts go down; a fresh process starts again from 0, which
        Prometheus reads as a counter reset.
        """
        start = self.histogram_start
        cumulative = vector[start : start + len(self._les)].cumsum().tolist()
        return LatencyHistogram(
            buckets=list(zip(self._les, cumulative, strict=True)),
            count=cumulative[-1],
            sum_s=float(vector[self.start + self.width - 1]),
        )

    def value(self, vector: np.ndarray) -> LatencyStats:
        """Count and default quantiles (0.5, 0.9, 0.99) of ``vector``, in seconds."""
        return LatencyStats(
            count=round(float(self.counts(vector).sum())),
            quantiles_s=self.quantiles_s(vector),
            sum_s=float(vector[self.start + self.width - 1]),
        )

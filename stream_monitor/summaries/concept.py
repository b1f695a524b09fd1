"""Concept drift: a thin adapter over river's drift detectors (metric ``concept_drift``).

The detector watches a stream of errors (0/1 misclassifications, per-event log
loss, absolute regression errors, ...) and signals when their mean changes.
This module pins what we rely on: the detector kinds and their parameters, a
batch API that returns where drift was detected, and a state that round-trips
exactly (same future detections) without pickle.

It is fed per event, :meth:`ConceptDriftDetector.update_many` on each
batch's errors (ADWIN is O(log W) per value in river's Rust core); the state
(:mod:`stream_monitor.state.model_state`) feeds it in chunks whose means do not depend on
batching.

Kinds: ``"adwin"`` (default, :class:`river.drift.ADWIN`) and ``"page_hinkley"``
(:class:`river.drift.PageHinkley`); keyword parameters go to river unchanged.
"""

from __future__ import annotations

import base64
import importlib
import importlib.metadata
import math
import struct
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

RIVER_VERSION = importlib.metadata.version("river")

#: The river.drift class of each kind. river is imported on first use: it takes
#: about a second (its drift package loads scikit-learn and scipy).
KINDS: dict[str, str] = {
    "adwin": "ADWIN",
    "page_hinkley": "PageHinkley",
}

_PH_FIELDS = ("n", "mean", "sum_increase", "sum_decrease", "min_increase", "max_decrease")


def _adwin_blob(detector: Any) -> bytes:
    # river's Rust AdaptiveWindowing serialises itself (that is how river pickles it).
    blob: bytes = detector._helper.__getstate__()
    return blob


def _adwin_restore(detector: Any, blob: bytes) -> None:
    detector._helper.__setstate__(blob)


def _ph_blob(detector: Any) -> bytes:
    values = (
        detector._x_mean.n,
        detector._x_mean._mean,
        detector._sum_increase,
        detector._sum_decrease,
        detector._min_increase,
        detector._max_decrease,
    )
    return struct.pack(f"<{len(_PH_FIELDS)}d", *(float(v) for v in values))


def _ph_restore(detector: Any, blob: bytes) -> None:
    n, mean, inc, dec, min_inc, max_dec = struct.unpack(f"<{len(_PH_FIELDS)}d", blob)
    detector._x_mean.n = n
    detector._x_mean._mean = mean
    detector._sum_increase = inc
    detector._sum_decrease = dec
    detector._min_increase = min_inc
    detector._max_decrease = max_dec


_BLOBS: dict[str, tuple[Callable[[Any], bytes], Callable[[Any, bytes], None]]] = {
    "adwin": (_adwin_blob, _adwin_restore),
    "page_hinkley": (_ph_blob, _ph_restore),
}


def import_in_background() -> None:
    """Start importing river in a daemon thread, so the first detector need not wait for it."""
    threading.Thread(
        target=importlib.import_module, args=("river.drift",), name="import-river", daemon=True
    ).start()


class ConceptDriftDetector:
    """A river drift detector behind a small, stable API.

    Parameters
    ----------
    kind
        ``"adwin"`` (default) or ``"page_hinkley"``.
    **params
        Passed to the river class (e.g. ``delta``, ``clock`` for ADWIN;
        ``threshold``, ``min_instances`` for Page-Hinkley).

    Examples
    --------
    >>> rng = np.random.default_rng(7)
    >>> errors = np.concatenate([rng.binomial(1, 0.1, 2000), rng.binomial(1, 0.4, 2000)])
    >>> d = ConceptDriftDetector()
    >>> d.update_many(errors)
    [2079]
    >>> d.n_detections, d.drift_detected
    (1, False)
    >>> same = ConceptDriftDetector.from_state(d.to_state())
    >>> same.update_many(errors[:1000]) == d.update_many(errors[:1000])
    True
    """

    def __init__(self, kind: str = "adwin", **params: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown concept drift detector {kind!r}; use one of {sorted(KINDS)}")
        drift = importlib.import_module("river.drift")
        try:
            detector = getattr(drift, KINDS[kind])(**params)
        except TypeError as error:
            raise ValueError(f"bad parameters for {kind}: {error}") from None
        self.kind = kind
        self.params = dict(params)
        self._detector = detector
        self.n_detections = 0
        self.n_seen = 0
        self.restored = True

    @property
    def drift_detected(self) -> bool:
        """Whether the last value fed raised a drift (river resets on the next value)."""
        return bool(self._detector.drift_detected)

    def update(self, x: float) -> bool:
        """Feed one value; True when it raises a drift. Non-finite values are ignored."""
        if not math.isfinite(x):
            return False
        self._detector.update(float(x))
        self.n_seen += 1
        if self._detector.drift_detected:
            self.n_detections += 1
            return True
        return False

    def update_many(self, errors: np.ndarray) -> list[int]:
        """Feed values in order; the indices (into ``errors``) where drift was detected.

        NaN and infinite values are skipped (they never raise a drift).
        """
        values = np.asarray(errors, dtype=np.float64)
        update = self.update
        return [i for i, x in enumerate(values.tolist()) if update(x)]

    def to_state(self) -> dict[str, Any]:
        """Plain, JSON-friendly state; :meth:`from_state` continues exactly from it."""
        dump, _ = _BLOBS[self.kind]
        return {
            "kind": self.kind,
            "params": dict(self.params),
            "river_version": RIVER_VERSION,
            "drift_detected": self.drift_detected,
            "n_detections": self.n_detections,
            "n_seen": self.n_seen,
            "detector": base64.b64encode(dump(self._detector)).decode("ascii"),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], strict: bool = False) -> ConceptDriftDetector:
        """Rebuild a detector from :meth:`to_state`.

        The detector's internals are river's, so they are only restored under
        the river version that saved them. Otherwise (or if they do not decode)
        the result starts afresh with the same parameters and ``restored`` is
        False, unless ``strict`` is set, which raises ``ValueError`` instead.
        """
        detector = cls(state["kind"], **state["params"])
        detector.n_detections = int(state.get("n_detections", 0))
        try:
            if state.get("river_version") != RIVER_VERSION:
                raise ValueError(
                    f"state saved under river {state.get('river_version')}, running {RIVER_VERSION}"
                )
            _, load = _BLOBS[detector.kind]
            load(detector._detector, base64.b64decode(state["detector"]))
            detector._detector._drift_detected = bool(state["drift_detected"])
            detector.n_seen = int(state.get("n_seen", 0))
        except BaseException as error:  # a corrupt blob makes river's Rust core panic
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            if strict:
                raise ValueError(f"cannot restore {detector.kind} state: {error}") from error
            detector = cls(state["kind"], **state["params"])
            detector.n_detections = int(state.get("n_detections", 0))
            detector.restored = False
        return detector

"""Reference profiles: what each model's windows are compared with.

A profile holds, per feature and for the prediction, the bins fixed by the
reference data (quantile edges or top-k categories), the reference counts in
those bins, the null count, and for categorical columns the set of known
values (to tell new categories). It comes from a baseline file written by
``stream-monitor baseline`` or from a model version's first events (warm-up).
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from stream_monitor.config import ModelConfig
from stream_monitor.decode.batches import ModelBatch
from stream_monitor.decode.columns import label_column, numeric_column
from stream_monitor.summaries.binning import CategoricalBins, NumericBins
from stream_monitor.summaries.calibration import CalibrationMap, build_calibration

FORMAT = "stream-monitor/reference"
SCHEMA_VERSION = 1


class ReferenceError(ValueError):
    """A baseline file that cannot be used; the message says which file and why."""


@dataclass
class ColumnProfile:
    """The reference distribution of one column (a feature or the prediction)."""

    kind: str
    counts: list[int]
    nulls: int
    edges: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None

    @property
    def total(self) -> int:
        """Values in the reference, nulls included."""
        return int(sum(self.counts)) + self.nulls

    @functools.cached_property
    def null_ratio(self) -> float:
        """Share of nulls in the reference (read at every judged window: kept)."""
        total = self.total
        return self.nulls / total if total else 0.0

    def bins(self) -> NumericBins | CategoricalBins:
        """The binning this profile fixes."""
        if self.kind == "numeric":
            return NumericBins(self.edges)
        return CategoricalBins(self.categories, self.known)


def numeric_profile(values: np.ndarray, bins: int) -> ColumnProfile:
    """Profile of a numeric column: edges at ``bins``-quantiles, duplicates merged.

    >>> p = numeric_profile(np.array([0.0, 0.0, 0.0, 0.0, 1.0, 2.0, np.nan]), bins=4)
    >>> p.edges, p.counts, p.nulls
    ([0.0, 0.75], [4, 0, 2], 1)
    """
    present = values[~np.isnan(values)]
    if present.size == 0:
        return ColumnProfile(kind="numeric", counts=[0], nulls=int(values.size))
    return _profile(present, np.quantile(present, _quantiles(bins)), values.size - present.size)


def numeric_profiles(columns: Sequence[np.ndarray], bins: int) -> list[ColumnProfile]:
    """:func:`numeric_profile` of each of ``columns`` (of one length), the same to the bit.

    The quantiles of every column without nulls come from one ``np.quantile``
    call over their block (it works on each row as on a column alone).

    >>> columns = [np.array([0.0, 1.0, 2.0, 3.0]), np.array([5.0, np.nan, 5.0, 6.0])]
    >>> numeric_profiles(columns, 2) == [numeric_profile(c, 2) for c in columns]
    True
    """
    if not columns or not len(columns[0]):
        return [numeric_profile(values, bins) for values in columns]
    block = np.array(columns, dtype=np.float64)
    full = np.flatnonzero(~np.isnan(block).any(axis=1))
    edges = np.quantile(block[full], _quantiles(bins), axis=1).T
    quantiles = dict(zip(full.tolist(), edges, strict=True))
    return [
        _profile(values, quantiles[row], 0) if row in quantiles else numeric_profile(values, bins)
        for row, values in enumerate(block)
    ]


def _quantiles(bins: int) -> np.ndarray:
    """The inner ``bins``-quantiles: the probabilities of a column's bin edges."""
    return np.linspace(0.0, 1.0, bins + 1)[1:-1]


def _profile(present: np.ndarray, quantiles: np.ndarray, nulls: int) -> ColumnProfile:
    """The profile of a column's non-null values ``present`` with bin edges at ``quantiles``."""
    edges = np.unique(quantiles)
    numeric_bins = NumericBins(edges.tolist())
    counts = np.bincount(numeric_bins.index(present), minlength=numeric_bins.size)
    return ColumnProfile(
        kind="numeric",
        counts=counts.tolist(),
        nulls=int(nulls),
        edges=edges.tolist(),
        minimum=float(present.min()),
        maximum=float(present.max()),
    )


def categorical_profile(values: Sequence[str | None], top_k: int, max_known: int) -> ColumnProfile:
    """Profile of a categorical column: the ``top_k`` most frequent values plus ``other``.

    >>> p = categorical_profile(["a", "b", "a", "c", None], top_k=1, max_known=10)
    >>> p.categories, p.counts, p.nulls, p.known
    (['a'], [2, 2], 1, ['a', 'b', 'c'])
    """
    frequencies = Counter(v for v in values if v is not None)
    ranked = sorted(frequencies.items(), key=lambda item: (-item[1], item[0]))
    categories = [value for value, _ in ranked[:top_k]]
    known = [value for value, _ in ranked[:max_known]]
    counts = [frequencies[value] for value in categories]
    counts.append(sum(frequencies.values()) - sum(counts))
    return ColumnProfile(
        kind="categorical",
        counts=counts,
        nulls=len(values) - sum(frequencies.values()),
        categories=categories,
        known=known,
    )


@dataclass
class Reference:
    """The reference profile of one model: prediction and feature distributions."""

    model: str
    events: int
    prediction: ColumnProfile
    features: dict[str, ColumnProfile]
    source: str
    digest: str = ""
    quality: dict[str, float] = field(default_factory=dict)
    #: A binary model's positive share per score bin (None: no labels, no estimate).
    calibration: CalibrationMap | None = None

    @property
    def description(self) -> str:
        """What drift events name as their reference: ``file@sha256:...`` or ``warmup:<n>``."""
        return f"{self.source}@{self.digest}" if self.digest else self.source

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, the baseline file format (``calibration`` only when there is one)."""
        data = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "events": self.events,
            "source": self.source,
            "digest": self.digest,
            "prediction": _column_dict(self.prediction),
            "features": {name: _column_dict(p) for name, p in self.features.items()},
            "quality": self.quality,
        }
        if self.calibration is not None:
            data["calibration"] = self.calibration.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reference:
        """Inverse of :meth:`to_dict`."""
        return cls(
            model=data["model"],
            events=int(data["events"]),
            prediction=ColumnProfile(**data["prediction"]),
            features={name: ColumnProfile(**p) for name, p in data["features"].items()},
            source=data.get("source", ""),
            digest=data.get("digest", ""),
            quality={str(k): float(v) for k, v in data.get("quality", {}).items()},
            calibration=(
                CalibrationMap.from_dict(data["calibration"]) if "calibration" in data else None
            ),
        )


def _column_dict(profile: ColumnProfile) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": profile.kind, "counts": profile.counts, "nulls": profile.nulls}
    if profile.kind == "numeric":
        data.update(edges=profile.edges, minimum=profile.minimum, maximum=profile.maximum)
    else:
        data.update(categories=profile.categories, known=profile.known)
    return data


def build_reference(
    model: ModelConfig,
    batches: Sequence[ModelBatch],
    *,
    source: str,
    digest: str = "",
    max_known_categories: int = 10_000,
) -> Reference:
    """Profile ``batches`` of ``model`` (the rows of every batch, concatenated).

    A binary model's labeled rows also give its calibration map (see
    :mod:`stream_monitor.summaries.estimate`).
    """

    def values(name: str | None) -> list[Any]:
        """Every row's value of the prediction (None) or of feature ``name``, batch by batch."""
        return [batch.column(name) for batch in batches]

    kinds: dict[str | None, str] = {None: model.prediction_type}
    kinds.update(model.features)
    numeric = [name for name, kind in kinds.items() if kind == "numeric"]
    joined = [np.concatenate(values(name)) if batches else np.empty(0) for name in numeric]
    profiles = dict(zip(numeric, numeric_profiles(joined, model.bins), strict=True))
    for name, kind in kinds.items():
        if kind != "numeric":
            merged = [value for part in values(name) for value in part]
            profiles[name] = categorical_profile(merged, model.top_k, max_known_categories)
    return Reference(
        model=model.name,
        events=sum(len(batch) for batch in batches),
        prediction=profiles[None],
        features={name: profiles[name] for name in model.features},
        source=source,
        digest=digest,
        calibration=reference_calibration(model, batches),
    )


def reference_calibration(
    model: ModelConfig, batches: Sequence[ModelBatch]
) -> CalibrationMap | None:
    """The calibration map of a binary model's reference rows (None: not estimated)."""
    if model.task != "binary" or not model.estimation.enabled or not batches:
        return None
    scores = np.concatenate(
        [
            b.prediction.astype(np.float64, copy=False)
            if isinstance(b.prediction, np.ndarray)
            else numeric_column(list(b.prediction))
            for b in batches
        ]
    )
    labels = np.concatenate([label_column("binary", b.labels) for b in batches])
    return build_calibration(scores, labels, model.score_bins, model.estimation.min_labeled_per_bin)


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def save_reference(reference: Reference, path: Path) -> None:
    """Write a baseline file."""
    path.write_bytes(orjson.dumps(reference.to_dict(), option=orjson.OPT_INDENT_2))


def load_reference(path: Path, model: ModelConfig) -> Reference:
    """Read a baseline file and check that it fits ``model``'s config."""
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ReferenceError(f"{path}: cannot read baseline ({exc.strerror})") from None
    except orjson.JSONDecodeError as exc:
        raise ReferenceError(f"{path}: baseline is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ReferenceError(f"{path}: not a stream-monitor baseline (format must be {FORMAT!r})")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ReferenceError(
            f"{path}: baseline schema_version {data.get('schema_version')!r} is not supported "
            f"(this release reads {SCHEMA_VERSION}); rebuild it with `stream-monitor baseline`"
        )
    try:
        reference = Reference.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceError(f"{path}: baseline is incomplete ({exc})") from None
    missing = [name for name in model.features if name not in reference.features]
    if missing:
        raise ReferenceError(f"{path}: baseline has no profile for feature(s) {', '.join(missing)}")
    for name, kind in model.features.items():
        if reference.features[name].kind != kind:
            raise ReferenceError(
                f"{path}: feature {name} is {reference.features[name].kind} in the baseline "
                f"but {kind} in the config"
            )
    if reference.prediction.kind != model.prediction_type:
        raise ReferenceError(f"{path}: prediction kind does not match task {model.task}")
    return reference

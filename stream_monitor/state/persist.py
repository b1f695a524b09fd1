"""JSON forms of the engine's state pieces that checkpoints carry besides pane vectors."""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_monitor.decode.batches import ModelBatch
from stream_monitor.decode.columns import categorical_column, numeric_column
from stream_monitor.snapshot import SeriesKey


def batch_to_json(batch: ModelBatch) -> dict[str, Any]:
    """A decoded batch as JSON-ready columns (NaN becomes null)."""

    def column(values: Any) -> Any:
        if isinstance(values, np.ndarray):
            return [None if v != v else v for v in values.tolist()]
        return list(values)

    return {
        "model": batch.model,
        "version": batch.version,
        "event_ts": batch.event_ts.tolist(),
        "prediction": column(batch.prediction),
        "features": {name: column(values) for name, values in batch.features.items()},
        "latency_ms": column(batch.latency_ms),
        "labels": batch.labels,
        "event_ids": batch.event_ids,
    }


def batch_from_json(
    data: dict[str, Any], kinds: dict[str, str], prediction_kind: str
) -> ModelBatch:
    """Inverse of :func:`batch_to_json`, given the feature and prediction kinds.

    >>> from stream_monitor.decode.batches import ModelBatch
    >>> b = ModelBatch("m", "v", np.array([1.0]), np.array([0.5]), {"x": np.array([np.nan]),
    ...     "c": ["a"]}, np.array([3.0]), [1], ["e1"], np.array([0]))
    >>> back = batch_from_json(batch_to_json(b), {"x": "numeric", "c": "categorical"}, "numeric")
    >>> back.features["x"].tolist(), back.features["c"], back.prediction.tolist(), back.labels
    ([nan], ['a'], [0.5], [1])
    """

    def column(values: list[Any], kind: str) -> Any:
        return numeric_column(values) if kind == "numeric" else categorical_column(values)

    rows = len(data["event_ts"])
    return ModelBatch(
        model=data["model"],
        version=data["version"],
        event_ts=np.asarray(data["event_ts"], dtype=np.float64),
        prediction=column(data["prediction"], prediction_kind),
        features={name: column(data["features"][name], kind) for name, kind in kinds.items()},
        latency_ms=numeric_column(data["latency_ms"]),
        labels=list(data["labels"]),
        event_ids=list(data["event_ids"]),
        message_index=np.zeros(rows, dtype=np.int64),
    )


def severities_to_json(severities: dict[SeriesKey, str]) -> list[list[Any]]:
    """Severity of each series as rows."""
    return [[k.model, k.version, k.metric, k.feature, k.window, s] for k, s in severities.items()]


def severities_from_json(rows: list[list[Any]]) -> dict[SeriesKey, str]:
    """Inverse of :func:`severities_to_json`."""
    return {SeriesKey(*row[:5]): row[5] for row in rows}

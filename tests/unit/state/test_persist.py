"""The JSON forms of warm-up batches and severities that checkpoints carry."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from stream_monitor.decode.batches import ModelBatch
from stream_monitor.snapshot import SeriesKey
from stream_monitor.state import persist

KINDS = {"amount": "numeric", "country": "categorical"}


def batch(prediction: Any) -> ModelBatch:
    return ModelBatch(
        model="m",
        version="v1",
        event_ts=np.array([1_700_000_000.25, 1_700_000_060.0, 0.1]),
        prediction=prediction,
        features={
            "amount": np.array([0.1, np.nan, 1e-300]),
            "country": ["DE", None, "a\u00e9\x1f"],
        },
        latency_ms=np.array([12.5, np.nan, 123456.789]),
        labels=[1, None, 0],
        event_ids=["e1", "e2", 3],
        message_index=np.array([4, 5, 6]),
    )


def through_json(data: Any) -> Any:
    """What a checkpoint stores and reads back."""
    return orjson.loads(orjson.dumps(data))


def test_a_numeric_batch_round_trips_through_json_with_nan_as_null() -> None:
    original = batch(np.array([0.25, np.nan, 0.999]))
    data = through_json(persist.batch_to_json(original))
    assert data["prediction"][1] is None and data["features"]["amount"][1] is None
    assert data["features"]["country"][1] is None
    back = persist.batch_from_json(data, KINDS, "numeric")
    assert (back.model, back.version) == ("m", "v1")
    assert back.event_ts.tobytes() == original.event_ts.tobytes()
    for found, expected in [
        (back.prediction, original.prediction),
        (back.features["amount"], original.features["amount"]),
        (back.latency_ms, original.latency_ms),
    ]:
        assert isinstance(found, np.ndarray) and found.dtype == np.float64
        np.testing.assert_array_equal(found, expected)  # NaN where NaN, every value exact
    assert back.features["country"] == ["DE", None, "a\u00e9\x1f"]
    assert back.labels == [1, None, 0] and back.event_ids == ["e1", "e2", 3]
    assert back.message_index.tolist() == [0, 0, 0]  # its messages are gone


def test_a_categorical_prediction_round_trips_with_none() -> None:
    original = batch(["cat", None, "dog"])
    data = through_json(persist.batch_to_json(original))
    back = persist.batch_from_json(data, KINDS, "categorical")
    assert back.prediction == ["cat", None, "dog"]
    np.testing.assert_array_equal(back.features["amount"], original.features["amount"])


def test_severities_round_trip_through_json() -> None:
    severities = {
        SeriesKey("m", "v1", "psi", None, "5m"): "alert",
        SeriesKey("m", "v1", "csi", "amount", "15m"): "warning",
        SeriesKey("other", "v2", "accuracy", None, "1h"): "ok",
    }
    rows = through_json(persist.severities_to_json(severities))
    assert ["m", "v1", "psi", None, "5m", "alert"] in rows
    back = persist.severities_from_json(rows)
    assert back == severities and all(isinstance(key, SeriesKey) for key in back)
    assert persist.severities_from_json(through_json(persist.severities_to_json({}))) == {}

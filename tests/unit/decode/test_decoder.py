"""Decoding: columns per model version, and every bad-input class counted by reason."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor.config import FieldMap, LimitsConfig
from stream_monitor.config_file import config_from_dict
from stream_monitor.decode.batches import RawMessage
from stream_monitor.decode.decoder import Decoder

CONFIG = config_from_dict(
    {
        "models": [
            {"name": "m", "task": "binary", "features": {"x": "numeric", "c": "categorical"}},
            {"name": "k", "task": "multiclass", "features": {"x": "numeric"}},
        ],
        "limits": {"max_message_bytes": 2000, "max_batch_events": 5},
    }
)


def decoder(fields: FieldMap | None = None) -> Decoder:
    return Decoder(CONFIG.models, fields or CONFIG.fields, CONFIG.limits)


def event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "model": "m",
        "model_version": "v1",
        "timestamp": 1700000000,
        "features": {"x": 1.5, "c": "a"},
        "prediction": 0.25,
    }
    base.update(overrides)
    return base


def msg(value: object) -> RawMessage:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return RawMessage(raw, timestamp_ms=1700000123000)


BAD_INPUT = [
    (b"", "empty"),
    (b"   ", "empty"),
    (b"[]", "empty"),
    (b'{"model": "m", ' + b" " * 3000 + b"}", "oversized"),
    (b'{"model": "m", "features": {', "malformed_json"),
    (b"\xff\xfe\x00garbage", "malformed_json"),
    (b"42", "not_an_object"),
    (b'"text"', "not_an_object"),
    (orjson.dumps([event()] * 6), "batch_too_large"),
    (orjson.dumps([event(), 7]), "not_an_object"),
    (event(model=None), "missing_field"),
    (event(model=3), "wrong_type"),
    (event(model="nobody"), "unknown_model"),
    (event(features=None), "missing_field"),
    (event(features=[1, 2]), "wrong_type"),
    (event(model_version=[1]), "wrong_type"),
    (event(prediction=None), "missing_field"),
    (event(prediction="high"), "wrong_type"),
    (b'{"model": "m", "features": {"x": 1}, "prediction": NaN, "timestamp": 1}', "non_finite"),
    (event(timestamp="yesterday"), "bad_timestamp"),
    (event(timestamp=True), "bad_timestamp"),
]


@pytest.mark.parametrize(("value", "reason"), BAD_INPUT)
def test_each_bad_input_class_is_counted_by_reason(value: object, reason: str) -> None:
    result = decoder().decode([msg(value)])
    assert [r.reason for r in result.rejects][:1] == [reason]
    assert all(r.message_index == 0 for r in result.rejects)


def test_good_events_survive_bad_neighbours() -> None:
    messages = [msg(value) for value, _ in BAD_INPUT] + [msg(event()), msg([event(), event()])]
    result = decoder().decode(messages)
    assert (
        sum(len(b) for b in result.batches) == 3 + 1
    )  # three good events, one micro-batch element
    counted = [r.reason for r in result.rejects]
    for _, reason in BAD_INPUT:
        assert reason in counted


def test_columns_follow_the_spec_rules() -> None:
    events = [
        event(features={"x": 1, "c": 3}),
        event(features={"x": True, "c": True}, model_version=2),
        event(features={"x": "7", "c": None}),
        event(features={"c": "3"}, timestamp="2023-11-14T22:13:20Z"),
        event(features={"x": None, "c": 2.0}, timestamp=1700000000000),
        event(timestamp=None),
    ]
    result = decoder().decode([msg(e) for e in events])
    by_version = {b.version: b for b in result.batches}
    v1 = by_version["v1"]
    assert np.array_equal(v1.features["x"], [1.0, np.nan, np.nan, np.nan, 1.5], equal_nan=True)
    assert v1.features["c"] == ["3", None, "3", "2", "a"]
    assert v1.event_ts.tolist() == [
        1700000000.0,
        1700000000.0,
        1700000000.0,
        1700000000.0,
        1700000123.0,
    ]
    assert by_version["2"].features["x"].tolist() == [1.0]
    assert by_version["2"].features["c"] == ["true"]


def test_nan_in_a_feature_is_a_null_not_a_reject() -> None:
    raw = b'{"model": "m", "timestamp": 5, "features": {"x": NaN, "c": "a"}, "prediction": 0.5}'
    result = decoder().decode([RawMessage(raw)])
    assert result.rejects == []
    assert math.isnan(result.batches[0].features["x"][0])


def test_dotted_field_mapping() -> None:
    fields = FieldMap(model="meta.model", features="payload.inputs", prediction="payload.score")
    value = {
        "meta": {"model": "m"},
        "timestamp": 10,
        "payload": {"inputs": {"x": 2.0, "c": "z"}, "score": 0.9},
    }
    result = decoder(fields).decode([msg(value)])
    (batch,) = result.batches
    assert batch.version == "unknown"
    assert batch.prediction.tolist() == [0.9]
    assert batch.features["c"] == ["z"]


def test_multiclass_prediction_is_a_category() -> None:
    result = decoder().decode(
        [msg(event(model="k", prediction=3)), msg(event(model="k", prediction="cat"))]
    )
    assert result.batches[0].prediction == ["3", "cat"]


def test_micro_batch_rows_keep_their_message_index() -> None:
    result = decoder().decode([msg(event()), msg([event(), event(model="nobody"), event()])])
    (batch,) = result.batches
    assert batch.message_index.tolist() == [0, 1, 1]
    assert [(r.message_index, r.reason) for r in result.rejects] == [(1, "unknown_model")]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(value: bytes) -> None:
    result = decoder().decode([RawMessage(value)])
    assert result.events + len(result.rejects) >= 1


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {"model": st.sampled_from(["m", "k", "x"]) | JSON_VALUES},
        optional={
            "features": st.dictionaries(st.sampled_from(["x", "c"]), JSON_VALUES) | JSON_VALUES,
            "prediction": JSON_VALUES,
            "timestamp": JSON_VALUES,
            "model_version": JSON_VALUES,
        },
    )
)
def test_hostile_events_are_used_or_rejected_never_raise(value: dict[str, object]) -> None:
    result = decoder().decode([RawMessage(orjson.dumps(value), timestamp_ms=1)])
    used = sum(len(b) for b in result.batches)
    assert used + len(result.rejects) == 1
    for batch in result.batches:
        assert np.isfinite(batch.event_ts).all()
        assert len(batch.features["x"]) == len(batch)


def test_limits_are_configurable() -> None:
    small = Decoder(CONFIG.models, CONFIG.fields, LimitsConfig(max_message_bytes=10))
    assert small.decode([msg(event())]).rejects[0].reason == "oversized"


@pytest.mark.parametrize("digits", [20, 400])
def test_huge_numbers_are_nulls_or_rejects_not_crashes(digits: int) -> None:
    huge = b"1" + b"0" * digits
    raw = b'{"model": "m", "timestamp": %s, "features": {"x": %s, "c": "a"}, "prediction": 0.5}'
    result = decoder().decode([RawMessage(raw % (b"5", huge)), RawMessage(raw % (huge, b"1"))])
    assert [r.reason for r in result.rejects] == (["bad_timestamp"] if digits > 300 else [])
    x = result.batches[0].features["x"][0]
    assert math.isnan(x) if digits > 300 else x == float(huge)

"""The typed fast path gives exactly what the careful path gives, and takes what it should.

Each test decodes the same messages with the typed path on and with it off
(``Decoder(..., typed=False)``) and wants identical results: the same columns
to the bit, the same rejects with the same reasons in the same order. Tests
also check which messages the typed path took, so that equality does not hold
only because everything fell back.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from typing import Any

import msgspec
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_monitor.config import FieldMap, LimitsConfig
from stream_monitor.decode.batches import RawMessage
from stream_monitor.decode.decoder import Decoder, DecodeResult
from stream_monitor.decode.parsing import message_sizes
from stream_monitor.decode.typed import typed_decoder, typed_schema
from stream_monitor.decode.typed_path import MAX_SKIPPED_CHUNKS, TypedPath, packed_columns
from stream_monitor.tools.workload import (
    BenchTraffic,
    Workload,
    bench_config,
    micro_batch_messages,
    row_messages,
)
from tests.unit.decode.test_decoder import BAD_INPUT
from tests.unit.decode.test_decoder import CONFIG as REASONS_CONFIG
from tests.unit.decode.test_fast_paths import CONFIG as FUZZ_CONFIG
from tests.unit.decode.test_fast_paths import MESSAGES, assert_same


def read(typed: TypedPath | None, values: list[bytes | None]) -> list[Any] | None:
    """What ``typed.read`` decoded of ``values`` (with their sizes; None: the chunk skipped)."""
    assert typed is not None
    chunk = typed.read(values, message_sizes(values))
    if chunk is not None:
        assert chunk.kinds == set(map(type, chunk.decoded))
        assert chunk.complete == (None not in chunk.decoded)
    return None if chunk is None else chunk.decoded


GOOD = (
    b'{"model": "m", "model_version": "v1", "timestamp": 1700000000,'
    b' "features": {"x": 1.5, "c": "a"}, "prediction": 0.25}'
)

#: Messages the typed decoder could read differently from orjson, or accept where the
#: careful path rejects; each must take the careful path (or agree with it to the bit).
TRICKY = [
    b'{"model": "m", "junk": "\xff", "features": {"x": 1}, "prediction": 0.5, "timestamp": 5}',
    b'{"model": "m", "junk": "\xed\xa0\x80", "features": {"x": 1}, "prediction": 0.5}',
    b'{"model": "m", "features": {"c": "\\ud800"}, "prediction": 0.5, "timestamp": 5}',
    b'{"model": "m", "junk": 1e999, "features": {"x": 1}, "prediction": 0.5, "timestamp": 5}',
    b'{"model": "m", "features": {"x": 1e999}, "prediction": 0.5, "timestamp": 5}',
    b'{"model": "m", "features": {"x": NaN}, "prediction": 0.5, "timestamp": 5}',
    b'{"model": "m", "features": {"x": Infinity}, "prediction": 0.5, "timestamp": 5}',
    b'{"model": "m", "features": {"x": 1}, "prediction": -Infinity, "timestamp": 5}',
    b'{"model": "m", "features": {"x": "7", "c": 7}, "prediction": 0.5, "timestamp": 5}',
    b'{"model": "m", "features": {"x": true, "c": false}, "prediction": true, "timestamp": 5}',
    b'{"model": "m", "features": {"x": -0.0, "c": -0.0}, "prediction": -0.0, "timestamp": 5}',
    b'{"model": "m", "features": {"x": [1], "c": {"a": 1}}, "prediction": 0.5, "timestamp": 5}',
    b'{"model": "m", "features": {"x": 1, "x": 2}, "prediction": 0.5, "timestamp": 5}',
    b'{"model": "m", "features": {"x": 1}, "features": {"c": "z"}, "prediction": 0.5}',
    b'{"model": "m", "model": "k", "features": {"x": 1}, "prediction": 0.5, "timestamp": 5}',
    b'{"model": "k", "model": "m", "features": {"x": 1}, "prediction": 0.5, "timestamp": 5}',
    b'{"model": "m", "model": "m", "features": {"x": 1}, "prediction": 0.5, "timestamp": 5}',
    b'\xef\xbb\xbf{"model": "m", "features": {"x": 1}, "prediction": 0.5, "timestamp": 5}',
    b'{"model": "m", "junk": [' + b"[" * 1030 + b"]" * 1030 + b'], "features": {}}',
    b'{"model": "m", "junk": ' + b"[" * 1022 + b"]" * 1022 + b', "features": {"x": 2}}',
    b'{"model": "\\u006d", "features": {"x": 1}, "prediction": 0.5, "timestamp": 5}',
    b'{"mod\\u0065l": "m", "features": {"\\u0078": 1}, "\\u0070rediction": 0.5}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "j\\u00": 1}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "timestamp": 5} ',
    b' {"model": "m", "features": {"x": 1}, "prediction": 0.5, "timestamp": 5}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "timestamp": 5}, {}',
    b'{"model": "m", "features": {"x": 1}, "label": 1, "event_id": "e1"}',
    b'{"model": "m", "label": 1, "event_id": "e1", "timestamp": 5}',
    b'{"model": "m", "label": 1, "event_id": "e1"}',
    b'{"model": null, "features": {"x": 1}, "prediction": 0.5}',
    b'{"features": {"x": 1}, "prediction": 0.5}',
    b'{"model": "m", "features": null, "prediction": 0.5}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "model_version": ""}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "model_version": true}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "model_version": 1.0}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "model_version": 7}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "model_version": "7"}',
    b'{"model": "m", "features": {"x": 1}, "prediction": "0.5", "timestamp": 5}',
    b'{"model": "k", "features": {"x": 1}, "prediction": 2.0, "timestamp": 5}',
    b'{"model": "k", "features": {"x": 1}, "prediction": {"a": 1}, "timestamp": 5}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "timestamp": true}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "timestamp": -1}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "timestamp": "2023-11-14T22:13:20Z"}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "timestamp": "soon"}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "timestamp": 1700000000123}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "latency_ms": "7"}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "latency_ms": null, "label": [1]}',
    b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "event_id": {"a": 1}}',
    b"[]",
    b"[7]",
    b"[[]]",
    b"null",
    b"",
    b"   ",
    b"[" + GOOD + b", 7]",
    b"[" + GOOD + b", " + GOOD + b"]",
    b"[" + b", ".join([GOOD] * 6) + b"]",
]
for number in (
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"123456789012345678901234567890",
    b"1" + b"0" * 400,
    b"9007199254740993",
    b"1e-400",
    b"2.2250738585072011e-308",
):
    for template in (
        b'{"model": "m", "features": {"x": %s, "c": %s}, "prediction": 0.5, "timestamp": 5}',
        b'{"model": "m", "features": {"x": 1}, "prediction": %s, "timestamp": %s}',
        b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "model_version": %s,'
        b' "latency_ms": %s}',
        b'{"model": "k", "features": {"x": 1}, "prediction": %s, "label": %s, "timestamp": 5}',
        b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "event_id": %s, "junk": %s}',
    ):
        TRICKY.append(template % (number, number))

#: Every bad-input reason's example (tests/unit/decode/test_decoder.py).
CORPUS = [v if isinstance(v, bytes) else orjson.dumps(v) for v, _ in BAD_INPUT]


def both(
    messages: list[RawMessage], config: Any = REASONS_CONFIG, chunk_bytes: int | None = None
) -> tuple[DecodeResult, DecodeResult]:
    typed = Decoder(config.models, config.fields, config.limits)
    careful = Decoder(config.models, config.fields, config.limits, typed=False)
    assert typed.typed is not None and careful.typed is None
    if chunk_bytes is not None:
        # Typed chunks three careful ones long: a skipped typed chunk is read in careful ones.
        typed.chunk_bytes = careful.chunk_bytes = chunk_bytes
        typed.typed_chunk_bytes = 3 * chunk_bytes
    return typed.decode(messages), careful.decode(messages)


@pytest.mark.parametrize("models", [1, 3])
@pytest.mark.parametrize("micro_batch", [None, 1, 7, 1000])
def test_generated_traffic_decodes_the_same_and_all_of_it_typed(
    models: int, micro_batch: int | None
) -> None:
    workload = Workload(events=3000, features=9, categorical=3, models=models, null_ratio=0.2)
    config = bench_config(workload)
    events = BenchTraffic(workload, rate_per_s=500.0).take(workload.events)
    for number, event in enumerate(events):
        event["model_version"] = ["v1", 2, "2", None][number % 7 % 4]
        if number % 5 == 0:
            event["features"]["num_01"] = number % 3 == 0
        if number % 11 == 0:
            event["features"]["cat_1"] = [3, 2.0, True, None, 2.5][number % 5]
        if number % 13 == 0:
            del event["features"]["num_02"]
    messages = (
        row_messages(events) if micro_batch is None else micro_batch_messages(events, micro_batch)
    )
    typed, careful = both(messages, config, chunk_bytes=20_000)
    assert_same(typed, careful)
    assert typed.events == len(events) and not typed.rejects
    reader = Decoder(config.models, config.fields, config.limits).typed
    assert reader is not None
    assert None not in (read(reader, [m.value for m in messages]) or [None])


@pytest.mark.parametrize("value", TRICKY + CORPUS)
def test_each_tricky_or_bad_message_decodes_as_the_careful_path_does(value: bytes) -> None:
    for neighbours in (0, 2):
        values = [GOOD] * neighbours + [value] + [GOOD] * neighbours
        messages = [RawMessage(v, timestamp_ms=1700000123000) for v in values]
        typed, careful = both(messages)
        assert_same(typed, careful)


def test_the_careful_path_takes_only_the_messages_the_typed_path_cannot() -> None:
    decoder = Decoder(REASONS_CONFIG.models, REASONS_CONFIG.fields, REASONS_CONFIG.limits)
    assert decoder.typed is not None
    bad = [
        b"",
        b'{"model": "nobody", "features": {"x": 1}, "prediction": 0.5}',
        b'{"model": "m", "features": {"x": "7"}, "prediction": 0.5}',
        b'{"model": "m", "features": {"x": NaN}, "prediction": 0.5}',
        b'{"model": "m", "junk": "\xff", "features": {"x": 1}, "prediction": 0.5}',
        b'{"model": "m", "features": {"x": 1}, "prediction": 0.5, "pad": "' + b" " * 2000 + b'"}',
        b"[" + GOOD + b", 7]",
        b"[]",
        b'{"model": "m", "label": 1, "event_id": "e1"}',
    ]
    values = [GOOD, *itertools.chain.from_iterable((b, GOOD) for b in bad)]
    decoded = read(decoder.typed, values)
    assert decoded is not None
    assert [d is not None for d in decoded] == [True] + [False, True] * len(bad)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    MESSAGES,
    st.sampled_from([None, 0, 1700000123000]),
    st.sampled_from([1, 150, 400, 10**6]),
)
def test_fuzzed_batches_decode_the_same(
    values: list[bytes], timestamp_ms: int | None, chunk_bytes: int
) -> None:
    messages = [RawMessage(v, timestamp_ms=timestamp_ms) for v in values]
    assert_same(*both(messages, FUZZ_CONFIG, chunk_bytes))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.sampled_from(TRICKY + CORPUS) | st.just(GOOD) | st.just(GOOD) | st.just(GOOD),
        max_size=30,
    ),
    st.sampled_from([1, 300, 3000, 10**6]),
)
def test_mixed_batches_where_some_messages_fall_back_decode_the_same(
    values: list[bytes], chunk_bytes: int
) -> None:
    messages = [RawMessage(v, timestamp_ms=1700000123000) for v in values]
    typed, careful = both(messages, chunk_bytes=chunk_bytes)
    assert_same(typed, careful)


def test_a_mostly_bad_stream_skips_the_typed_decoder_for_a_while_and_decodes_the_same() -> None:
    bad = b'{"model": "nobody", "features": {"x": 1}, "prediction": 0.5}'
    values = [bad] * 3 + [GOOD]
    decoder = Decoder(REASONS_CONFIG.models, REASONS_CONFIG.fields, REASONS_CONFIG.limits)
    assert decoder.typed is not None
    tried = [n for n in range(200) if read(decoder.typed, values) is not None]
    # After each chunk mostly left to the careful path, the next 1, 3, 7, ... chunks are
    # skipped, at most MAX_SKIPPED_CHUNKS of them.
    assert tried == [0, 2, 6, 14, 30, 62, 126, 126 + MAX_SKIPPED_CHUNKS + 1]
    messages = [RawMessage(v, timestamp_ms=1) for v in values * 50]
    assert_same(*both(messages, chunk_bytes=len(bad) * 4))


def test_good_traffic_after_bad_goes_typed_again() -> None:
    decoder = Decoder(REASONS_CONFIG.models, REASONS_CONFIG.fields, REASONS_CONFIG.limits)
    assert decoder.typed is not None
    assert read(decoder.typed, [b"x", b"y", GOOD]) is not None
    results = [read(decoder.typed, [GOOD] * 3) for _ in range(3)]
    assert results[0] is None and results[1] is not None and None not in results[1]


DOTTED = FieldMap(
    model="kind",
    model_version="meta.version",
    timestamp="meta.time.ts",
    features="payload.inputs",
    prediction="payload.score",
    label="truth",
    latency_ms="meta.latency",
    event_id="meta.id",
)


def dotted(model: str, x: Any, c: Any, version: Any = "v1", **extra: Any) -> dict[str, Any]:
    return {
        "kind": model,
        "meta": {"version": version, "time": {"ts": 1700000000}, "latency": 3.5, "id": "e"},
        "payload": {"inputs": {"x": x, "c": c}, "score": 0.5},
        **extra,
    }


def test_dotted_field_mapping_on_the_typed_path() -> None:
    config = replace(REASONS_CONFIG, fields=DOTTED)
    events = [
        dotted("m", 1.5, "a"),
        dotted("m", None, 3, version=2, truth=1),
        dotted("k", 2, None),
        {"kind": "m", "payload": {"inputs": {"x": 4.0}, "score": 0.25}},
        {**dotted("m", 1.0, "b"), "meta": None},
    ]
    values = [orjson.dumps(e) for e in events]
    decoder = Decoder(config.models, config.fields, config.limits)
    assert decoder.typed is not None
    decoded = read(decoder.typed, values)
    assert decoded is not None
    assert [d is not None for d in decoded] == [True, True, True, True, False]
    messages = [RawMessage(v, timestamp_ms=1700000123000) for v in values]
    typed, careful = both(messages, config)
    assert_same(typed, careful)
    by_key = {(b.model, b.version): b for b in typed.batches}
    assert list(by_key) == [("m", "v1"), ("m", "2"), ("k", "v1"), ("m", "unknown")]
    v1 = by_key["m", "v1"]
    assert v1.features["x"].tolist() == [1.5] and v1.features["c"] == ["a"]
    assert v1.event_ts.tolist() == [1700000000.0] and v1.latency_ms.tolist() == [3.5]
    assert by_key["m", "2"].features["c"] == ["3"] and by_key["m", "2"].labels == [1]
    assert by_key["k", "v1"].prediction == ["0.5"]
    unknown = by_key["m", "unknown"]
    assert unknown.features["x"].tolist() == [4.0, 1.0]
    assert unknown.event_ts.tolist() == [1700000123.0, 1700000123.0]
    assert np.isnan(unknown.latency_ms).all()


@pytest.mark.parametrize(
    "fields",
    [
        FieldMap(model="meta.model"),
        FieldMap(features="payload", prediction="payload.score"),
        FieldMap(features="payload.inputs", prediction="payload"),
        FieldMap(label="prediction"),
        FieldMap(timestamp="model"),
        FieldMap(event_id="a..b"),
    ],
)
def test_a_mapping_that_is_not_a_struct_keeps_the_careful_path(fields: FieldMap) -> None:
    assert typed_schema(REASONS_CONFIG.models, fields) is None
    with pytest.raises(ValueError, match="typed records"):
        typed_decoder(REASONS_CONFIG.models, fields)
    decoder = Decoder(REASONS_CONFIG.models, fields, REASONS_CONFIG.limits)
    assert decoder.typed is None
    value = {"model": "m", "meta": {"model": "m"}, "features": {"x": 1}, "prediction": 0.5}
    assert decoder.decode([RawMessage(orjson.dumps(value), timestamp_ms=1)]).events == 1


def test_the_typed_decoder_reads_events_and_micro_batches() -> None:
    decode = typed_decoder(REASONS_CONFIG.models, REASONS_CONFIG.fields).decode
    record = decode(GOOD)
    assert msgspec.structs.astuple(record)[0] is not None
    assert len(decode(b"[" + GOOD + b"," + GOOD + b"]")) == 2
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"model": "nobody", "features": {}}')
    single = typed_decoder(REASONS_CONFIG.models[:1], REASONS_CONFIG.fields).decode
    with pytest.raises(msgspec.ValidationError):
        single(b'{"features": {"x": 1}, "prediction": 0.5}')


def test_limits_apply_on_the_typed_path() -> None:
    limits = LimitsConfig(max_message_bytes=2 * len(GOOD) + 4, max_batch_events=1)
    config = replace(REASONS_CONFIG, limits=limits)
    values = [GOOD, b"[" + GOOD + b", " + GOOD + b"]", GOOD + b" " * (len(GOOD) + 5)]
    messages = [RawMessage(v, timestamp_ms=1) for v in values]
    typed, careful = both(messages, config)
    assert_same(typed, careful)
    assert [r.reason for r in typed.rejects] == ["batch_too_large", "oversized"]
    assert [len(b) for b in typed.batches] == [1]


def test_rows_and_model_versions_keep_message_order_when_paths_interleave() -> None:
    def event(model: str, version: str, x: bytes = b"1") -> bytes:
        prediction = b'"a"' if model == "k" else b"0.5"
        text = '{"model": "%s", "model_version": "%s", "features": {"x": %s}, "prediction": %s}'
        return (text % (model, version, x.decode(), prediction.decode())).encode()

    values = [
        event("k", "v1"),
        event("m", "v1", b"NaN"),  # careful, and first of (m, v1)
        event("m", "v1", b"2"),
        event("k", "v1", b'"7"'),  # careful
        event("m", "v2", b"3"),
        b'{"model": "m", "label": 1, "event_id": "e1"}',  # careful: a label event
        b"[" + event("m", "v3", b"4") + b", " + event("m", "v1", b"5") + b"]",
        event("m", "v3", b"Infinity"),  # careful
        event("m", "v1", b"6"),
    ]
    messages = [RawMessage(v, timestamp_ms=1700000123000) for v in values]
    decoder = Decoder(REASONS_CONFIG.models, REASONS_CONFIG.fields, REASONS_CONFIG.limits)
    assert decoder.typed is not None
    decoded = read(decoder.typed, values)
    assert decoded is not None
    assert [d is not None for d in decoded] == [1, 0, 1, 0, 1, 0, 1, 0, 1]
    typed, careful = both(messages)
    assert_same(typed, careful)
    assert [(b.model, b.version) for b in typed.batches] == [
        ("k", "v1"),
        ("m", "v1"),
        ("m", "v2"),
        ("m", "v3"),
    ]
    by_key = {(b.model, b.version): b for b in typed.batches}
    assert by_key["m", "v1"].message_index.tolist() == [1, 2, 6, 8]
    assert by_key["m", "v1"].features["x"].tolist()[1:] == [2.0, 5.0, 6.0]
    assert by_key["m", "v3"].message_index.tolist() == [6, 7]
    assert [len(labels) for labels in typed.labels] == [1]


def test_versions_first_seen_in_one_careful_micro_batch_keep_its_order() -> None:
    # Message 0 goes through the careful path (its first element has no features) and sees
    # version 7 before "unknown"; message 1, typed, sees "unknown" only.
    values = [
        b'[{"model": "m"}, {"model": "m", "features": {}, "prediction": 0.5, "model_version": 7},'
        b' {"model": "m", "features": {}, "prediction": 0.5}]',
        b'{"model": "m", "features": {"x": 1}, "prediction": 0.5}',
    ]
    messages = [RawMessage(v, timestamp_ms=1700000123000) for v in values]
    typed, careful = both(messages)
    assert_same(typed, careful)
    assert [(b.version, b.message_index.tolist()) for b in typed.batches] == [
        ("7", [0]),
        ("unknown", [0, 1]),
    ]


NUMBERS = st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 2**53 + 1])
SCALARS = st.none() | st.booleans() | NUMBERS | st.integers() | st.floats() | st.text(max_size=3)
EVENTS = st.fixed_dictionaries(
    {"model": st.sampled_from(["m", "k"])},
    optional={
        "features": st.fixed_dictionaries({}, optional={"x": SCALARS, "c": SCALARS}),
        "prediction": SCALARS,
        "timestamp": SCALARS | st.just(1700000000),
        "model_version": SCALARS | st.sampled_from(["v1", "v2"]),
        "label": SCALARS,
        "event_id": SCALARS,
        "latency_ms": SCALARS,
        "junk": SCALARS,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(EVENTS | st.lists(EVENTS, max_size=4), max_size=12),
    st.sampled_from([1, 200, 600, 10**6]),
)
def test_events_of_any_values_decode_the_same(values: list[Any], chunk_bytes: int) -> None:
    # json.dumps writes NaN and Infinity literals, and integers of any size.
    messages = [RawMessage(json.dumps(v).encode(), timestamp_ms=1) for v in values]
    assert_same(*both(messages, chunk_bytes=chunk_bytes))


def test_strict_records_take_non_ascii_text_and_refuse_bad_utf8() -> None:
    """Records that refuse unknown keys read every byte of a message, so text beyond ASCII
    needs no check of its own: valid UTF-8 is read, invalid goes to the careful path."""
    config = REASONS_CONFIG
    decoder = Decoder(config.models, config.fields, config.limits)
    accented = GOOD.replace(b'"c": "a"', '"c": "é"'.encode())
    broken = GOOD.replace(b'"c": "a"', b'"c": "\xff"')
    decoded = read(decoder.typed, [GOOD, accented, broken])
    assert decoded is not None and [record is None for record in decoded] == [False, False, True]
    assert decoder.typed is not None and decoder.typed.strict
    assert_same(*both([RawMessage(value, 1) for value in (GOOD, accented, broken)]))


def test_an_unknown_key_turns_strict_records_off_and_rows_keep_message_order() -> None:
    """A message with a key no record knows is read leniently (its UTF-8 checked); from then
    on chunks are; a chunk holding both kinds of records of one model keeps message order."""
    config = REASONS_CONFIG
    extra = GOOD.replace(b'"prediction": 0.25', '"prediction": 0.75, "extra": "é"'.encode())
    bad_extra = GOOD.replace(b'"prediction": 0.25', b'"prediction": 0.5, "extra": "\xff"')
    values: list[bytes | None] = [GOOD, extra, GOOD, bad_extra, GOOD]
    decoder = Decoder(config.models, config.fields, config.limits)
    assert decoder.typed is not None and decoder.typed.strict
    decoded = read(decoder.typed, values)
    assert decoded is not None and [r is None for r in decoded] == [
        False,
        False,
        False,
        True,
        False,
    ]
    assert not decoder.typed.strict
    again = read(decoder.typed, values)
    assert again is not None and [r is None for r in again] == [r is None for r in decoded]
    typed, careful = both([RawMessage(value, 1, offset=n) for n, value in enumerate(values)])
    assert_same(typed, careful)
    assert typed.batches[0].prediction.tolist() == [0.25, 0.75, 0.25, 0.25]
    assert [reject.message_index for reject in typed.rejects] == [3]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda rows: st.lists(
            st.lists(
                st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False),
                min_size=rows,
                max_size=rows,
            ),
            max_size=6,
        )
    )
)
def testpacked_columns_are_numpy_columns_wherever_the_nulls_are(
    columns: list[list[Any]],
) -> None:
    # A null stops the one C-level pass over the columns; the ones after it are packed too.
    rows = len(columns[0]) if columns else 1
    packed = packed_columns(rows, columns)
    assert len(packed) == len(columns)
    for column, data in zip(columns, packed, strict=True):
        expected = np.array(column, dtype=np.float64)
        assert np.frombuffer(data, dtype=np.float64).tobytes() == expected.tobytes()

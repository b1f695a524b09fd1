"""The fast paths of decoding and counting give exactly what the general paths give.

The decoder checks and converts whole columns when a batch allows it and falls
back to event-by-event checks otherwise; the layout counts every column with
one ``np.bincount`` and computes every stability index at once. Each test runs
both ways on the same input and wants identical output.
"""

from __future__ import annotations

import gc
import math
from dataclasses import replace
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_monitor.config import FieldMap, LimitsConfig
from stream_monitor.config_file import config_from_dict
from stream_monitor.decode.batches import ModelBatch, RawMessage
from stream_monitor.decode.column_builder import ColumnBuilder
from stream_monitor.decode.columns import label_column, numeric_column
from stream_monitor.decode.decoder import Decoder, DecodeResult
from stream_monitor.decode.grouping import EventGrouper
from stream_monitor.decode.parsing import MessageParser
from stream_monitor.summaries.binning import (
    MAX_BLOCK_EDGES,
    CategoricalBins,
    CategoricalBinsBlock,
    NumericBins,
    NumericBinsBlock,
)
from stream_monitor.summaries.layout import CounterLayout, StabilityColumns
from stream_monitor.summaries.psi import psi
from stream_monitor.summaries.reference import ColumnProfile, build_reference
from stream_monitor.summaries.slots import pane_deltas
from stream_monitor.tools.workload import BenchTraffic, Workload, bench_config, row_messages

CONFIG = config_from_dict(
    {
        "models": [
            {
                "name": "m",
                "task": "binary",
                "features": {"x": "numeric", "c": "categorical", "y": "numeric"},
            },
            {"name": "k", "task": "multiclass", "features": {"x": "numeric"}},
        ],
        "limits": {"max_message_bytes": 400, "max_batch_events": 4},
    }
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3)
    | st.sampled_from(["m", "k", "v1", "", 0, 1, 1700000000, 1700000000123, "2023-11-14T22:13:20Z"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
GOOD = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["m", "k"]),
        "features": st.fixed_dictionaries(
            {
                "x": st.floats(allow_nan=False) | st.none() | st.booleans() | INT64,
                "c": st.sampled_from(["a", "b", None, 3]),
                "y": st.floats(-1e3, 1e3),
            }
        ),
        "prediction": st.floats(0, 1),
        "timestamp": st.sampled_from([1700000000.5, 1700000000123, 1700000060]),
    },
    optional={
        "model_version": st.sampled_from(["v1", 2, "2", None]),
        "label": st.integers(0, 1),
        "event_id": st.text(max_size=3),
    },
)
BAD_VERSION = st.tuples(GOOD, st.sampled_from([True, 1.0, "", 0, False, [1]])).map(
    lambda pair: {**pair[0], "model_version": pair[1]}
)
ANY_EVENT = st.fixed_dictionaries(
    {"model": st.sampled_from(["m", "k"]) | SCALARS},
    optional={
        "features": st.dictionaries(st.sampled_from(["x", "c", "y"]), VALUES) | VALUES,
        "prediction": VALUES,
        "timestamp": SCALARS,
        "model_version": st.sampled_from(["v1", 1, "1", None, True, 1.0, "", [1]]),
        "label": VALUES,
        "event_id": VALUES,
    },
)


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an int beyond 64 bits
        return b'{"model": "m", "features": {"x": 18446744073709551616000}}'


MESSAGES = st.lists(
    st.one_of(
        GOOD.map(dumps),
        GOOD.map(dumps),
        BAD_VERSION.map(dumps),
        ANY_EVENT.map(dumps),
        st.lists(st.one_of(GOOD, GOOD, BAD_VERSION, ANY_EVENT, SCALARS), max_size=5).map(dumps),
        st.sampled_from([b"", b"  ", b" {}", b"[]", b"null", b'{"model": "m"} x']),
        st.binary(max_size=12),
    ),
    max_size=8,
)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


BATCH_COLUMNS = ("event_ts", "prediction", "latency_ms", "labels", "event_ids", "message_index")


def assert_same(a: DecodeResult, b: DecodeResult) -> None:
    assert a.events == b.events
    assert a.rejects == b.rejects
    assert [(x.model, x.version) for x in a.batches] == [(x.model, x.version) for x in b.batches]
    for x, y in zip(a.batches, b.batches, strict=True):
        for name in BATCH_COLUMNS:
            assert same(getattr(x, name), getattr(y, name)), name
        assert x.features.keys() == y.features.keys()
        for name in x.features:
            assert same(x.features[name], y.features[name]), name
    assert len(a.labels) == len(b.labels)
    for x, y in zip(a.labels, b.labels, strict=True):
        for name in ("model", "event_ids", "labels", "event_ts", "message_index"):
            assert same(getattr(x, name), getattr(y, name)), name


class GeneralParser(MessageParser):
    """Parses message by message."""

    def _parse_all(self, values: Any, start: int, rejects: Any) -> None:
        return None


class GeneralGrouper(EventGrouper):
    """Groups event by event."""

    def groups(self, events: Any, indexes: Any) -> None:
        return None


class GeneralColumns(ColumnBuilder):
    """Reads each feature with ``dict.get``."""

    def _feature_values(self, model: str, feature_dicts: list[dict[str, Any]]) -> list[Any]:
        names = list(self.models[model].features)
        return [[features.get(name) for features in feature_dicts] for name in names]


class GeneralDecoder(Decoder):
    """The decoder with every fast path turned off: message by message, event by event."""

    def __init__(self, models: Any, fields: FieldMap, limits: LimitsConfig) -> None:
        super().__init__(models, fields, limits, typed=False)
        self.parser = GeneralParser(self.limits)
        self.grouper = GeneralGrouper(self.models, self.fields)
        self.columns = GeneralColumns(self.models, self.fields)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(MESSAGES, st.sampled_from([None, 0, 1700000123000]))
def test_fast_and_general_decoding_agree(values: list[bytes], timestamp_ms: int | None) -> None:
    messages = [RawMessage(v, timestamp_ms=timestamp_ms) for v in values]
    fast = Decoder(CONFIG.models, CONFIG.fields, CONFIG.limits).decode(messages)
    general = GeneralDecoder(CONFIG.models, CONFIG.fields, CONFIG.limits).decode(messages)
    assert_same(fast, general)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(MESSAGES, st.sampled_from([None, 1700000123000]), st.sampled_from([1, 150, 400]))
def test_chunks_of_any_size_decode_like_one(
    values: list[bytes], timestamp_ms: int | None, chunk_bytes: int
) -> None:
    messages = [RawMessage(v, timestamp_ms=timestamp_ms) for v in values]
    whole = Decoder(CONFIG.models, CONFIG.fields, CONFIG.limits)
    whole.chunk_bytes = 10**9
    chunked = Decoder(CONFIG.models, CONFIG.fields, CONFIG.limits)
    chunked.chunk_bytes = chunk_bytes
    assert_same(chunked.decode(messages), whole.decode(messages))
    general = GeneralDecoder(CONFIG.models, CONFIG.fields, CONFIG.limits)
    general.chunk_bytes = chunk_bytes
    assert_same(general.decode(messages), whole.decode(messages))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(GOOD, min_size=1, max_size=12), st.integers(1, 4))
def test_row_and_micro_batch_messages_give_the_same_columns(
    events: list[dict[str, Any]], size: int
) -> None:
    decoder = Decoder(CONFIG.models, CONFIG.fields, LimitsConfig())
    rows = decoder.decode([RawMessage(orjson.dumps(e)) for e in events])
    micro = decoder.decode(
        [RawMessage(orjson.dumps(events[i : i + size])) for i in range(0, len(events), size)]
    )
    assert rows.rejects == micro.rejects == []
    for x, y in zip(rows.batches, micro.batches, strict=True):
        assert same(x.event_ts, y.event_ts) and same(x.prediction, y.prediction)
        for name in x.features:
            assert same(x.features[name], y.features[name])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=2)))
def test_numeric_column_follows_the_spec_rule_value_by_value(values: list[Any]) -> None:
    def rule(v: Any) -> float:
        if type(v) not in (bool, int, float):
            return math.nan
        try:
            number = float(v)
        except OverflowError:
            return math.nan
        return number if math.isfinite(number) else math.nan

    expected = np.array([rule(v) for v in values], dtype=np.float64)
    assert same(numeric_column(values), expected)


@pytest.mark.parametrize("bad", [b"true", b"false", b"Infinity", b"-1", b"NaN", b"1e999"])
def test_a_bad_timestamp_is_rejected_whatever_its_neighbours(bad: bytes) -> None:
    good = b'{"model": "m", "features": {"x": 1.0}, "prediction": 0.5, "timestamp": 1700000000}'
    raw = b'{"model": "m", "features": {"x": 1.0}, "prediction": 0.5, "timestamp": %s}' % bad
    for neighbours in (0, 3):
        messages = [RawMessage(good)] * neighbours + [RawMessage(raw)]
        result = Decoder(CONFIG.models, CONFIG.fields, CONFIG.limits).decode(messages)
        assert [(r.message_index, r.reason) for r in result.rejects] == [
            (neighbours, "bad_timestamp")
        ]
        assert sum(len(b) for b in result.batches) == neighbours
        assert all(np.isfinite(b.event_ts).all() for b in result.batches)


@pytest.mark.parametrize(("raw_time", "seconds"), [(b"0", 0.0), (b"1", 1.0), (b"0.5", 0.5)])
def test_a_time_in_the_first_second_is_kept_whatever_its_neighbours(
    raw_time: bytes, seconds: float
) -> None:
    # Booleans pack as 0 and 1: such times are read value by value, and must still count.
    good = b'{"model": "m", "features": {"x": 1.0}, "prediction": 0.5, "timestamp": 1700000000}'
    early = b'{"model": "m", "features": {"x": 1.0}, "prediction": 0.5, "timestamp": %s}' % raw_time
    for neighbours in (0, 3):
        messages = [RawMessage(good)] * neighbours + [RawMessage(early)]
        result = Decoder(CONFIG.models, CONFIG.fields, CONFIG.limits).decode(messages)
        assert result.rejects == []
        times = np.concatenate([b.event_ts for b in result.batches])
        assert times.tolist() == [1700000000.0] * neighbours + [seconds]


@pytest.mark.parametrize("enabled", [True, False])
def test_decoding_restores_the_garbage_collector(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        Decoder(CONFIG.models, CONFIG.fields, CONFIG.limits).decode([RawMessage(b"[1]")])
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def columns(rng: np.random.Generator) -> list[Any]:
    from stream_monitor.summaries.column_bins import ColumnSlots

    start, result = 1, []
    for number in range(int(rng.integers(1, 8))):
        size = int(rng.integers(1, 14))
        counts = rng.integers(0, 50, size).tolist()
        if number % 2:
            bins: Any = NumericBins(np.arange(size - 1, dtype=float))
        else:
            bins = CategoricalBins([f"c{i}" for i in range(size - 1)], [])
        result.append(ColumnSlots(f"f{number}", start, bins, ColumnProfile("x", counts, 0)))
        start += result[-1].width
    return result


@pytest.mark.parametrize("seed", range(40))
def test_stability_of_all_columns_equals_psi_of_each_to_the_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    slots = columns(rng)
    width = slots[-1].start + slots[-1].width
    reader = StabilityColumns(slots, 1e-4)
    for scale in (0, 1, 7, 10**6):
        vector = rng.integers(0, scale + 1, width).astype(float)
        index, present = reader.read(vector)
        for value, total, column in zip(index, present, slots, strict=True):
            counts = vector[column.start : column.start + column.size]
            assert value == psi(np.asarray(column.reference.counts), counts, 1e-4)
            assert total == float(counts.sum())


@pytest.mark.parametrize("n_panes", [1, 2, 9])
def test_one_bincount_counts_what_one_per_column_counts(n_panes: int) -> None:
    rng = np.random.default_rng(n_panes)
    rows = 500
    positions = [rng.integers(-1, 40, rows) for _ in range(6)]
    pane_rows = rng.integers(0, n_panes, rows)
    expected = np.zeros((n_panes, 40))
    for column in positions:
        for pane, slot in zip(pane_rows, column, strict=True):
            if slot >= 0:
                expected[pane, slot] += 1
    assert np.array_equal(pane_deltas(40, pane_rows, n_panes, positions), expected)


EDGE = st.floats(allow_nan=False) | st.sampled_from([0.0, -0.0, 1.0, math.inf, -math.inf])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(EDGE, max_size=MAX_BLOCK_EDGES), min_size=1, max_size=5),
    st.lists(EDGE | st.just(math.nan), min_size=0, max_size=20),
)
def test_block_binning_and_histogram_equal_a_binary_search_per_column(
    edges: list[list[float]], values: list[float]
) -> None:
    bins = [NumericBins(e) for e in edges]
    rows = np.array([np.roll(values, shift) for shift in range(len(bins))], dtype=np.float64)
    rows = rows.reshape(len(bins), len(values))
    expected = [b.index(row) for b, row in zip(bins, rows, strict=True)]
    block = NumericBinsBlock(bins)
    got = block.index(rows)
    assert got.dtype == np.int64
    assert all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True))
    counts = [np.bincount(e, minlength=b.size + 1) for b, e in zip(bins, expected, strict=True)]
    histogram = block.histogram(rows)
    assert histogram.dtype == np.int64
    assert histogram.tolist() == np.concatenate(counts).tolist()


TEXT = st.text(alphabet="abc", max_size=2)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(TEXT, unique=True, max_size=3), st.lists(TEXT, max_size=3)),
        min_size=1,
        max_size=4,
    ),
    st.lists(TEXT | st.none(), min_size=0, max_size=20),
)
def test_categorical_block_binning_equals_a_lookup_per_value(
    columns: list[tuple[list[str], list[str]]], values: list[str | None]
) -> None:
    """Every column's values (the list rotated per column) from one block, against the
    rule value by value: a top category its bin, None the null slot, any other value the
    ``other`` bin, new when the reference never had it; each moved to its column's start."""
    bins = [CategoricalBins(top, known=top + more) for top, more in columns]
    starts = [10 * (column + 1) for column in range(len(bins))]
    rows = [values[shift:] + values[:shift] for shift in range(len(bins))]
    expected_positions, expected_new = [], []
    for b, (top, more), start, row in zip(bins, columns, starts, rows, strict=True):
        for value in row:
            if value is None:
                position = b.null_index
            elif value in top:
                position = top.index(value)
            else:
                position = b.other_index
            expected_positions.append(start + position)
            expected_new.append(value is not None and value not in top + more)
    positions, new = CategoricalBinsBlock(bins, starts).index(rows)
    assert positions.dtype == np.int64
    assert positions.tolist() == expected_positions
    assert new.tolist() == expected_new


def per_column_pane_deltas(
    layout: CounterLayout, batch: ModelBatch, pane_rows: np.ndarray, n_panes: int
) -> np.ndarray:
    """:meth:`CounterLayout.pane_deltas` one column at a time (one bincount per array)."""
    positions = [np.full(len(batch), 0, dtype=np.int64)]
    positions.extend(layout.prediction.positions(batch.prediction))
    for name, slots in layout.features.items():
        positions.extend(slots.positions(batch.features[name]))
    positions.extend(layout.latency.positions(batch.latency_ms))
    labels = label_column(layout.model.task, batch.labels)
    positions.extend(layout.quality.positions(batch.prediction, labels))
    if layout.estimate is not None:  # the label-free estimate's score histogram
        positions.extend(layout.estimate.positions(batch.prediction))
    sum_slots = np.concatenate((layout.latency.sum_slots, layout.quality.sum_slots))
    sums = np.concatenate(
        (layout.latency.sums(batch.latency_ms), layout.quality.sums(batch.prediction, labels)),
        axis=1,
    )
    return pane_deltas(layout.width, pane_rows, n_panes, positions, sum_slots, sums)


@pytest.mark.parametrize("bins", [3, 10, MAX_BLOCK_EDGES + 5])
def test_layout_counts_what_each_column_counts(bins: int) -> None:
    workload = Workload(events=3000, features=8, categorical=2, categories=5)
    config = bench_config(workload)
    model = replace(config.models[0], bins=bins)
    events = BenchTraffic(workload, rate_per_s=50.0).take(workload.events)
    for event in events[::7]:
        event["features"]["num_00"] = None
    for event in events[::11]:
        event["features"]["num_01"] = "7"
    decoded = Decoder([model], config.fields, config.limits).decode(row_messages(events))
    batch = decoded.batches[0]
    reference = build_reference(model, [batch.take(np.arange(1000))], source="test")
    layout = CounterLayout(model, reference)
    rng = np.random.default_rng(bins)
    for n_panes in (1, 4):
        pane_rows = rng.integers(0, n_panes, len(batch))
        expected = per_column_pane_deltas(layout, batch, pane_rows, n_panes)
        assert np.array_equal(layout.pane_deltas(batch, pane_rows, n_panes), expected)

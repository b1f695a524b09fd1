"""The aggregator on its own: partials records built with the codec, merged into a real engine."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stream_monitor.decode.batches import RawMessage
from stream_monitor.engine import Engine
from stream_monitor.evaluate import DriftEvent
from stream_monitor.scaleout.aggregator import Aggregator
from stream_monitor.scaleout.partials import (
    PanePartial,
    Record,
    WatermarkReport,
    decode_record,
    encode_pane,
    encode_watermarks,
    fingerprint,
    pane_key,
    partition_of,
    watermark_key,
)
from stream_monitor.state.keys import PartitionKey, VersionKey
from stream_monitor.summaries.reference import Reference
from tests.conftest import make_config
from tests.unit.scaleout.test_partials import (
    PARTIALS,
    TOPIC,
    baselines,
    equal_one_engine,
    messages,
    stream,
    windows_of,
)
from tests.unit.test_engine import START

FRAUD = ("fraud-detector", "v1")
PRICE = ("price-estimator", "v1")
SOURCES = [(TOPIC, 0), (TOPIC, 1)]


@pytest.fixture(scope="module")
def refs() -> dict[str, Reference]:
    """Baselines of both models (their first ten minutes of traffic)."""
    return baselines(stream(minutes=10))


@pytest.fixture(scope="module")
def batches() -> list[list[RawMessage]]:
    """24 minutes of both models (drift from minute 12) on input partitions 0 and 1."""
    mine = [m for m in messages(stream(minutes=24)) if m.partition in (0, 1)]
    return [mine[i : i + 500] for i in range(0, len(mine), 500)]


def ingest_engine(refs: dict[str, Reference]) -> Engine:
    """An engine as an ingest replica runs it: it judges nothing and keeps unpublished panes."""
    engine = Engine(make_config(), refs)
    engine.judging = False
    return engine


def pane_record(
    source: PartitionKey, version: VersionKey, pane: int, vector: np.ndarray, offset: int, ref: str
) -> PanePartial:
    """A pane partial as an aggregator reads it from the topic."""
    record = decode_record(pane_key(source, version, pane), encode_pane(vector, offset, ref))
    assert isinstance(record, PanePartial)
    return record


def report_record(
    source: PartitionKey, watermarks: dict[VersionKey, float], offset: int | None
) -> WatermarkReport:
    """A watermark report as an aggregator reads it from the topic."""
    record = decode_record(watermark_key(source), encode_watermarks(watermarks, offset))
    assert isinstance(record, WatermarkReport)
    return record


def partials_of(engine: Engine) -> dict[int, list[Record]]:
    """Each partials partition's records for the panes the engine changed since the last call:
    pane partials on their model's partition, then every source's report on every partition."""
    found: dict[int, list[Record]] = {p: [] for p in range(PARTIALS)}
    for source, ledger in engine.store.ledgers.items():
        changed, _ = ledger.take_unpublished()
        for (version, pane), vector in sorted(changed.items(), key=lambda item: item[0]):
            reference = engine.states[version].reference
            assert reference is not None and ledger.next_offset is not None
            record = pane_record(
                source, version, pane, vector, ledger.next_offset, fingerprint(reference)
            )
            found[partition_of(version[0], PARTIALS)].append(record)
        report = report_record(source, dict(ledger.watermarks), ledger.next_offset)
        for records in found.values():
            records.append(report)
    return found


def assert_same_windows(
    found: dict[Any, np.ndarray], expected: dict[Any, np.ndarray], keys: Any = None
) -> None:
    keys = expected.keys() if keys is None else keys
    assert keys and found.keys() >= set(keys)
    for key in keys:
        np.testing.assert_allclose(found[key], expected[key], rtol=1e-12, atol=1e-9)


def aggregated(
    refs: dict[str, Reference], batches: list[list[RawMessage]]
) -> tuple[Aggregator, list[DriftEvent]]:
    """An aggregator fed, batch after batch, the partials of two ingest engines (one per
    source partition), and the drift events it found judging after each batch."""
    ingest = {source: ingest_engine(refs) for source in SOURCES}
    aggregator = Aggregator(Engine(make_config(), refs), PARTIALS)
    aggregator.assign(range(PARTIALS))
    events = []
    for batch in batches:
        for (_, partition), engine in ingest.items():
            engine.process([m for m in batch if m.partition == partition])
            for partials_partition, records in partials_of(engine).items():
                aggregator.apply(records, partials_partition)
        events += aggregator.engine.evaluate(now_s=START)
    return aggregator, events


def test_partials_of_two_source_partitions_merge_to_one_engine_fed_every_event(
    refs: dict[str, Reference], batches: list[list[RawMessage]]
) -> None:
    aggregator, events = aggregated(refs, batches)
    equal_one_engine(make_config(), refs, batches, aggregator, events)
    assert aggregator.engine.invalid_total["late_partial"] == 0


def test_an_older_copy_of_a_pane_is_ignored_and_a_newer_one_replaces_it(
    refs: dict[str, Reference],
) -> None:
    aggregator = Aggregator(Engine(make_config(), refs), PARTIALS)
    reference = fingerprint(refs["fraud-detector"])
    source = SOURCES[0]
    pane = int(START // 60) + 3
    state = aggregator.engine.state(*FRAUD)
    assert state is not None and state.layout is not None
    width = state.layout.width
    first, stale, newer = (np.arange(width) * k for k in (1.0, 5.0, 2.0))
    partition = partition_of(FRAUD[0], PARTIALS)
    aggregator.apply([pane_record(source, FRAUD, pane, first, 10, reference)], partition)
    aggregator.apply([report_record(source, {FRAUD: pane * 60.0 + 30}, 10)], partition)
    assert state.windows is not None and np.array_equal(state.windows.window("5m"), first)
    aggregator.apply([pane_record(source, FRAUD, pane, stale, 9, reference)], partition)
    ledger = aggregator.engine.store.ledgers[source]
    assert np.array_equal(ledger.panes[FRAUD][pane], first)
    assert np.array_equal(state.windows.window("5m"), first)
    aggregator.apply([pane_record(source, FRAUD, pane, newer, 11, reference)], partition)
    assert np.array_equal(ledger.panes[FRAUD][pane], newer)
    assert np.array_equal(state.windows.window("5m"), newer)  # replaced, not added
    assert sum(aggregator.engine.invalid_total.values()) == 0


def test_a_partial_counted_against_another_reference_or_layout_is_a_state_conflict(
    refs: dict[str, Reference],
) -> None:
    aggregator = Aggregator(Engine(make_config(), refs), PARTIALS)
    state = aggregator.engine.state(*FRAUD)
    assert state is not None and state.layout is not None
    width = state.layout.width
    pane = int(START // 60)
    source = SOURCES[0]
    reference = fingerprint(refs["fraud-detector"])
    assert fingerprint(refs["price-estimator"]) != reference
    partition = partition_of(FRAUD[0], PARTIALS)
    conflicts = [
        pane_record(source, FRAUD, pane, np.ones(width), 5, fingerprint(refs["price-estimator"])),
        pane_record(source, FRAUD, pane, np.ones(width + 1), 6, reference),  # another layout
    ]
    aggregator.apply(conflicts, partition)
    assert aggregator.engine.invalid_total["state_conflict"] == 2
    assert source not in aggregator.engine.store.ledgers  # nothing of them was kept
    aggregator.apply([pane_record(source, FRAUD, pane, np.ones(width), 4, reference)], partition)
    assert aggregator.engine.store.ledgers[source].panes[FRAUD][pane].tolist() == [1.0] * width
    assert aggregator.engine.invalid_total["state_conflict"] == 2


def test_drop_forgets_the_models_and_reports_of_the_dropped_partials_partitions(
    refs: dict[str, Reference], batches: list[list[RawMessage]]
) -> None:
    aggregator, _ = aggregated(refs, batches[:8])
    engine = aggregator.engine
    dropped = partition_of(FRAUD[0], PARTIALS)
    kept = set(range(PARTIALS)) - {dropped}
    assert partition_of(PRICE[0], PARTIALS) in kept
    assert aggregator.owns(FRAUD[0], {dropped}) and not aggregator.owns(PRICE[0], {dropped})
    before = windows_of(engine)
    before_ledgers = {key: ledger.panes[FRAUD] for key, ledger in engine.store.ledgers.items()}
    before_marks = {key: dict(ledger.watermarks) for key, ledger in engine.store.ledgers.items()}
    source = SOURCES[0]
    price_mark = engine.store.ledgers[source].watermark(PRICE)

    ahead = report_record(source, {PRICE: price_mark + 600}, 10**6)
    for partition in kept:  # not every partials partition read reported it: not followed
        aggregator.apply([ahead], partition)
    assert engine.store.ledgers[source].watermark(PRICE) == price_mark

    aggregator.drop({dropped})
    assert FRAUD not in engine.states and PRICE in engine.states
    for ledger in engine.store.ledgers.values():
        assert FRAUD not in ledger.panes and FRAUD not in ledger.watermarks
    price_windows = [key for key in before if key[:2] == PRICE]
    assert_same_windows(windows_of(engine), before, price_windows)

    further = report_record(source, {PRICE: price_mark + 660}, 2 * 10**6)
    for partition in kept:  # the dropped partition is no longer waited for
        aggregator.apply([further], partition)
    assert engine.store.ledgers[source].watermark(PRICE) == price_mark + 660

    held = {
        (source, pane): vector.copy()
        for source, ledger in before_ledgers.items()
        for pane, vector in ledger.items()
    }
    resent: list[Record] = [
        pane_record(source, FRAUD, pane, vector, 0, fingerprint(refs["fraud-detector"]))
        for (source, pane), vector in held.items()
    ]
    resent += [report_record(source, marks, 3 * 10**6) for source, marks in before_marks.items()]
    for partition in range(PARTIALS):  # offsets seen before the drop are forgotten: all merged
        aggregator.apply(resent, partition)
    assert engine.invalid_total["late_partial"] == 0
    fraud_windows = [key for key in before if key[:2] == FRAUD]
    assert_same_windows(windows_of(engine), before, fraud_windows)

"""Partial summaries: the codec, and ingest engines + an aggregator equal to one engine.

These run in one process without a broker (the records go through a list in
arrival order); tests/broker/test_scale_out.py runs the same through Kafka with real
replica processes.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import orjson
import pytest

from stream_monitor.decode.batches import RawMessage
from stream_monitor.engine import Engine
from stream_monitor.scaleout.aggregator import Aggregator
from stream_monitor.scaleout.partials import (
    PanePartial,
    Record,
    WatermarkReport,
    decode_record,
    encode_pane,
    encode_watermarks,
    pane_key,
    partition_of,
    watermark_key,
)
from stream_monitor.scaleout.publisher import PartialPublisher
from stream_monitor.summaries.reference import Reference
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import make_config
from tests.unit.test_engine import START

TOPIC, PARTITIONS, PARTIALS = "events", 4, 3


class ListWriter:
    """Collects produced records in order per partials partition (what a topic keeps)."""

    def __init__(self) -> None:
        self.log: list[tuple[int, bytes | None, bytes | None]] = []

    def produce(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        assert partition is not None and 0 <= partition < PARTIALS
        self.log.append((partition, key, value))

    def records(self, start: int = 0) -> list[Record]:
        decoded = [decode_record(key, value) for _, key, value in self.log[start:]]
        return [r for r in decoded if r is not None]

    def by_partition(self, start: int = 0) -> dict[int, list[Record]]:
        """The records from ``start`` on, per partials partition, each in its log order."""
        found: dict[int, list[Record]] = {p: [] for p in range(PARTIALS)}
        for partition, key, value in self.log[start:]:
            record = decode_record(key, value)
            if record is not None:
                found[partition].append(record)
        return found


def stream(minutes: int = 24) -> list[dict[str, Any]]:
    traffic = SyntheticTraffic(seed=5)
    events: list[dict[str, Any]] = []
    for minute in range(minutes):
        ts = START + minute * 60.0
        events += traffic.fraud(200, ts, drifted=minute >= 12)
        events += traffic.price(100, ts, drifted=minute >= 16)
    return events


def messages(events: list[dict[str, Any]]) -> list[RawMessage]:
    """Events spread over partitions by event id, with per-partition offsets."""
    offsets = [0] * PARTITIONS
    out = []
    for event in events:
        partition = zlib.crc32(str(event["event_id"]).encode()) % PARTITIONS
        out.append(RawMessage(orjson.dumps(event), None, TOPIC, partition, offsets[partition]))
        offsets[partition] += 1
    return out


def baselines(events: list[dict[str, Any]]) -> dict[str, Reference]:
    """References from the first minutes, through a throwaway engine's warm-up."""
    engine = Engine(make_config())
    engine.process([RawMessage(orjson.dumps(e)) for e in events if e["timestamp"] < START + 600])
    return {m: s.reference for (m, _), s in engine.states.items() if s.reference is not None}


def test_pane_records_round_trip_sparse() -> None:
    vector = np.zeros(500)
    vector[[3, 99, 499]] = [1.0, -2.5, 1e300]
    key = pane_key(("events", 2), ("m", "v1"), 123)
    value = encode_pane(vector, 77, "f00d")
    assert len(value) < 200  # three non-zero slots, not 500 floats
    record = decode_record(key, value)
    assert isinstance(record, PanePartial)
    assert (record.source, record.version, record.pane, record.offset) == (
        ("events", 2),
        ("m", "v1"),
        123,
        77,
    )
    assert record.reference == "f00d" and np.array_equal(record.vector, vector)
    marks = decode_record(watermark_key(("events", 2)), encode_watermarks({("m", "v1"): 9.5}, 3))
    assert marks == WatermarkReport(("events", 2), {("m", "v1"): 9.5}, True, 3)
    assert decode_record(key, None) is None


@pytest.fixture(scope="module")
def workload() -> tuple[Any, dict[str, Reference], list[list[RawMessage]]]:
    events = stream()
    all_messages = messages(events)
    batches = [all_messages[i : i + 700] for i in range(0, len(all_messages), 700)]
    return make_config(), baselines(events), batches


def scaled(
    config: Any,
    refs: dict[str, Reference],
    batches: list[list[RawMessage]],
    owners: dict[int, int],
    replicas: int,
    order: list[int] | None = None,
) -> tuple[Aggregator, list[Any], ListWriter]:
    """``replicas`` ingest engines (partition -> replica in ``owners``) and one aggregator.

    The aggregator reads every partials partition after each batch; with
    ``order``, one partition after the other in that order, judging after each.
    """
    writer = ListWriter()
    ingest = [Engine(config, refs) for _ in range(replicas)]
    publishers = [PartialPublisher(e, writer, "partials", PARTIALS) for e in ingest]  # type: ignore[arg-type]
    aggregator = Aggregator(Engine(config, refs), PARTIALS)
    aggregator.assign(range(PARTIALS))
    events = []
    read = 0
    for batch in batches:
        for replica, engine in enumerate(ingest):
            mine = [m for m in batch if owners[m.partition] == replica]
            if mine:
                engine.process(mine)
            publishers[replica].publish(list(engine.store.ledgers))
        found = writer.by_partition(read)
        read = len(writer.log)
        for partition in order or sorted(found):
            aggregator.apply(found[partition], partition)
            if order:
                events += aggregator.engine.evaluate(now_s=START)
        events += aggregator.engine.evaluate(now_s=START)
    return aggregator, events, writer


def windows_of(engine: Engine) -> dict[tuple[str, str, str], np.ndarray]:
    return {
        (s.model.name, s.version, name): s.windows.window(name).copy()
        for s in engine.states.values()
        if s.windows is not None
        for name in s.window_sizes
    }


def test_three_ingest_engines_and_an_aggregator_equal_one_engine(workload: Any) -> None:
    config, refs, batches = workload
    aggregator, events, _ = scaled(config, refs, batches, {0: 0, 1: 1, 2: 2, 3: 0}, 3)
    equal_one_engine(config, refs, batches, aggregator, events)


def test_reports_read_before_the_panes_they_cover_close_nothing_early(workload: Any) -> None:
    """Each report reaches every partials partition; read from one without a model, it must
    wait until the model's own partition delivered the panes before it (and its copy)."""
    config, refs, batches = workload
    hosting = {partition_of(m, PARTIALS) for m in ("fraud-detector", "price-estimator")}
    order = sorted(range(PARTIALS), key=lambda p: p in hosting)  # reports first, panes last
    assert order[0] not in hosting
    # Few large batches: each publication holds panes far behind the watermark it reports.
    whole = [m for batch in batches for m in batch]
    batches = [whole[i : i + len(whole) // 3] for i in range(0, len(whole), len(whole) // 3)]
    aggregator, events, _ = scaled(config, refs, batches, {0: 0, 1: 1, 2: 2, 3: 0}, 3, order)
    equal_one_engine(config, refs, batches, aggregator, events)


def equal_one_engine(
    config: Any,
    refs: dict[str, Reference],
    batches: list[list[RawMessage]],
    aggregator: Aggregator,
    events: list[Any],
) -> None:
    """The aggregator's drift events and windows are those of one engine reading every batch."""
    single = Engine(config, refs)
    expected_events = []
    for batch in batches:
        single.process(batch)
        expected_events += single.evaluate(now_s=START)
    expected_events += single.evaluate(now_s=START, final=True)
    events += aggregator.engine.evaluate(now_s=START, final=True)

    assert len(expected_events) > 5
    assert {e.model for e in expected_events} == {"fraud-detector", "price-estimator"}
    for model in ("fraud-detector", "price-estimator"):  # the same events in the same order
        mine = [e for e in events if e.model == model]
        theirs = [e for e in expected_events if e.model == model]
        assert [e.id for e in mine] == [e.id for e in theirs]
        for found, expected in zip(mine, theirs, strict=True):
            assert found.value == pytest.approx(expected.value, rel=1e-12, abs=1e-12)
    expected, found = windows_of(single), windows_of(aggregator.engine)
    assert expected.keys() == found.keys()
    for key, vector in expected.items():
        np.testing.assert_allclose(found[key], vector, rtol=1e-12, atol=1e-9, err_msg=str(key))


def test_re_sent_and_stale_partials_change_nothing(workload: Any) -> None:
    config, refs, batches = workload
    aggregator, _, writer = scaled(config, refs, batches, {0: 0, 1: 0, 2: 1, 3: 1}, 2)
    before = windows_of(aggregator.engine)
    for partition, records in writer.by_partition().items():
        stale = [
            PanePartial(r.source, r.version, r.pane, r.offset - 1, r.reference, r.vector * 0.5)
            for r in records
            if isinstance(r, PanePartial) and r.offset > 0
        ]
        aggregator.apply(records, partition)  # every partial again (a restarted replica re-sends)
        aggregator.apply(stale, partition)  # older copies (restored from an older checkpoint)
    after = windows_of(aggregator.engine)
    for key, vector in before.items():
        np.testing.assert_allclose(after[key], vector, rtol=1e-12, atol=1e-9, err_msg=str(key))


def test_a_partial_counted_against_another_reference_is_refused(workload: Any) -> None:
    config, refs, batches = workload
    aggregator, _, writer = scaled(config, refs, batches[:3], {p: 0 for p in range(4)}, 1)
    partial = next(r for r in writer.records() if isinstance(r, PanePartial))
    forged = PanePartial(
        partial.source, partial.version, partial.pane, 10**9, "another", partial.vector
    )
    aggregator.apply([forged], partition_of(partial.version[0], PARTIALS))
    assert aggregator.engine.invalid_total["state_conflict"] == 1


def test_offsets_of_forgotten_panes_are_pruned(workload: Any) -> None:
    config, refs, batches = workload
    aggregator, _, _ = scaled(config, refs, batches, {p: 0 for p in range(4)}, 1)
    held = dict(aggregator._offsets)
    source, version = next(iter(held))[:2]
    for pane in range(-5000, -2000):  # panes no ledger holds (long evicted)
        aggregator._offsets[(source, version, pane)] = 1
    aggregator.prune()
    ledgers = aggregator.engine.store.ledgers
    kept = {k: v for k, v in held.items() if k[2] in ledgers[k[0]].panes.get(k[1], {})}
    assert len(kept) > 50 and aggregator._offsets == kept

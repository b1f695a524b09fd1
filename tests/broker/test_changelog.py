"""Reading compacted partitions up to a marker, many at once, through the embedded broker."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Producer

from stream_monitor.kafka.changelog import read_changelog
from stream_monitor.tools.embedded import EmbeddedBroker


def test_one_read_returns_every_partitions_latest_values_and_empty_ones_empty(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    topic = topic_names("changelog", partitions=8)
    settings = {"bootstrap.servers": broker.bootstrap_servers}
    producer = Producer(settings)
    records = [
        (1, b"a", b"1"),
        (1, b"b", b"2"),
        (1, b"a", b"3"),  # a newer value of a
        (5, b"c", b"4"),
        (5, b"c", None),  # a tombstone
        (6, b"d", b"5"),
    ]
    for partition, key, value in records:
        producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(10) == 0

    first = read_changelog(settings, settings, topic, range(8))
    assert sorted(first) == list(range(8))
    assert first[1].latest == {b"a": b"3", b"b": b"2"}
    assert first[5].latest == {b"c": None}
    assert first[6].latest == {b"d": b"5"}
    for partition in (0, 2, 3, 4, 7):
        assert first[partition].latest == {}
        assert first[partition].next_offset == 1  # just past the marker at offset 0
    assert (first[1].next_offset, first[5].next_offset, first[6].next_offset) == (4, 3, 2)

    # Read again: the first read's markers are skipped, every value is still there.
    again = read_changelog(settings, settings, topic, [0, 1, 5])
    assert sorted(again) == [0, 1, 5]
    assert again[0].latest == {} and again[0].next_offset == 2
    assert again[1].latest == first[1].latest and again[1].next_offset == 5
    assert again[5].latest == first[5].latest
    assert read_changelog(settings, settings, topic, []) == {}

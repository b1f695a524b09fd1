"""Dead letters and drift events that cannot be delivered: retried, counted, never fatal.

The failures are real librdkafka ones: records above the producer's ``message.max.bytes``
(refused when produced) and records to a broker that never answers (timed out after
``message.timeout.ms``). Through the embedded broker, see ``tests/broker/test_fuzz_kafka.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import KafkaException, Producer

from stream_monitor.decode.batches import RawMessage, Reject
from stream_monitor.kafka.producer import DeliveryError, TopicWriter
from stream_monitor.sinks.dead_letters import DeadLetters, fit, letter_headers, record_bytes
from stream_monitor.sinks.prometheus import build_registry
from stream_monitor.snapshot import Snapshot
from tests.conftest import closed_port

TIMEOUT_MS = 200


@pytest.fixture
def nowhere() -> Iterator[Callable[..., Producer]]:
    """Producers of a broker that never answers; their queues are purged at the end."""
    producers: list[Producer] = []
    with closed_port() as port:

        def make(**settings: object) -> Producer:
            producer = Producer(
                {
                    "bootstrap.servers": f"127.0.0.1:{port}",
                    "message.timeout.ms": TIMEOUT_MS,
                    "enable.idempotence": False,
                    "log_level": 0,
                    **settings,
                }
            )
            producers.append(producer)
            return producer

        yield make
    for producer in producers:
        producer.purge()
        producer.flush(0)


def until(condition: Callable[[], bool], poll: Callable[[], None], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        poll()
        time.sleep(0.02)


def rejected(size: int) -> tuple[list[RawMessage], list[Reject]]:
    message = RawMessage(bytes(range(256)) * (size // 256) + b"x" * (size % 256), 1, "in", 3, 42)
    return [message], [Reject(0, "oversized", f"{size} bytes")]


@pytest.mark.parametrize("max_bytes", [4096, 1_000_000])
def test_a_letter_too_large_is_cut_to_a_prefix_the_producer_accepts(
    nowhere: Callable[..., Producer], max_bytes: int
) -> None:
    producer = nowhere(**{"message.max.bytes": max_bytes})
    (message,), (reject,) = rejected(2 * max_bytes)
    headers = letter_headers(message, reject)
    with pytest.raises(KafkaException, match="MSG_SIZE_TOO_LARGE"):
        producer.produce("dlq", value=message.value, headers=list(headers))
    value, cut = fit(message.value or b"", headers, max_bytes)
    producer.produce("dlq", value=value, headers=list(cut))  # fits now
    assert (message.value or b"").startswith(value)
    # No shorter than it must be: the headers and a record batch of one take < 512 bytes.
    assert record_bytes(value, cut) == max_bytes and len(value) > max_bytes - 512
    assert cut == [
        *headers,
        ("stream-monitor.truncated", b"true"),
        ("stream-monitor.original.bytes", str(2 * max_bytes).encode()),
    ]
    small = b'{"model": "m"}'
    assert fit(small, headers, max_bytes) == (small, headers)


def test_a_failed_dead_letter_is_sent_again_with_backoff_then_dropped_and_counted(
    nowhere: Callable[..., Producer],
) -> None:
    now = [0.0]
    letters = DeadLetters(nowhere(), "dlq", 4096, retries=2, backoff_s=5.0, clock=lambda: now[0])
    letters.forward(*rejected(100))
    until(lambda: letters.failures["_MSG_TIMED_OUT"] == 1, letters.poll)
    assert (letters.failures, letters.waiting(), letters.dropped) == ({"_MSG_TIMED_OUT": 1}, 1, 0)
    time.sleep(3 * TIMEOUT_MS / 1000)
    letters.poll()  # within its backoff: not sent again
    assert (letters.failures["_MSG_TIMED_OUT"], letters.waiting()) == (1, 1)
    now[0] += 5.0
    until(lambda: letters.failures["_MSG_TIMED_OUT"] == 2, letters.poll)
    assert (letters.waiting(), letters.dropped) == (1, 0)
    now[0] += 9.9  # the backoff doubled: 10 s
    letters.poll()
    assert letters.waiting() == 1
    now[0] += 0.1
    until(lambda: letters.dropped == 1, letters.poll)
    assert (letters.failures, letters.waiting(), letters.dropped) == ({"_MSG_TIMED_OUT": 3}, 0, 1)


def test_a_dead_letter_refused_for_good_is_dropped_at_once(
    nowhere: Callable[..., Producer],
) -> None:
    producer = nowhere(**{"message.max.bytes": 4096})  # smaller than the letters are cut to
    letters = DeadLetters(producer, "dlq", 8192, retries=5)
    letters.forward(*rejected(6000))
    assert (letters.failures, letters.waiting(), letters.dropped) == (
        {"MSG_SIZE_TOO_LARGE": 1},
        0,
        1,
    )


def test_state_records_stay_must_deliver_and_only_undeliverable_drift_events_are_dropped(
    nowhere: Callable[..., Producer],
) -> None:
    writer = TopicWriter(nowhere(**{"message.max.bytes": 4096}))
    writer.produce("changelog", b'["commit", "in", 0]', b"{}", partition=0)
    writer.produce("drift", b"m", b'{"metric": "psi"}', droppable=True)  # times out: retried
    writer.produce("drift", b"m", b"x" * 5000, droppable=True)  # too large: dropped
    assert writer.dropped == 1
    for _ in range(3):  # neither the state record nor the drift event that timed out is lost
        with pytest.raises(DeliveryError, match="2 failed and re-queued, 0 in flight"):
            writer.confirm(5 * TIMEOUT_MS / 1000)
    assert writer.dropped == 1
    with pytest.raises(KafkaException, match="MSG_SIZE_TOO_LARGE"):
        writer.produce("changelog", b"k", b"x" * 5000)  # state is never dropped quietly


def test_delivery_counters_reach_prometheus() -> None:
    snapshot = Snapshot(
        dead_letter_failures={"_MSG_TIMED_OUT": 3, "TOPIC_AUTHORIZATION_FAILED": 1},
        dead_letters_dropped=2,
        drift_events_dropped=1,
    )
    registry = build_registry(lambda: snapshot)
    failures = "stream_monitor_dead_letter_failures_total"
    assert registry.get_sample_value(failures, {"reason": "_MSG_TIMED_OUT"}) == 3
    assert registry.get_sample_value(failures, {"reason": "TOPIC_AUTHORIZATION_FAILED"}) == 1
    assert registry.get_sample_value("stream_monitor_dead_letters_dropped_total") == 2
    assert registry.get_sample_value("stream_monitor_drift_events_dropped_total") == 1
    empty = build_registry(Snapshot)
    assert empty.get_sample_value("stream_monitor_dead_letters_dropped_total") == 0
    assert empty.get_sample_value("stream_monitor_drift_events_dropped_total") == 0

"""Hostile bytes through the embedded broker: the service survives, counts and dead-letters all.

A seeded mix goes to the input topic from two clients (confluent-kafka and, to prove
that another client's bytes decode the same, kafka-python): random bytes of many
lengths (empty included), hostile JSON from a seeded generator (a deterministic
stand-in for hypothesis' ``@given``), oversized messages (up to 2 MB, past the
producers' default ``message.max.bytes``), micro-batches that are empty, too large or
mixed, and valid events. Dead letters larger than the dead-letter producer's limit
are cut to fit; every one is checked against the original, and the committed offsets
against the end of the input. An oracle written independently of
``decode.py`` states, for every message, the rejections whose reason is certain
(``empty``, ``oversized``, ``batch_too_large``, ``malformed_json``, ``not_an_object``,
``unknown_model``), how many valid events it holds and how many hostile events of a
configured model it holds (those may be counted or rejected for any other reason).

The hostile events go to ``fraud-detector``, which has a baseline (no warm-up), and
the valid events to ``price-estimator`` (one version per producing client), so the
hostile watermarks never make a valid event late. Strings that can reach the state
(versions, feature values) hold no lone surrogates, and categorical values no integers
beyond float range: each of these stops the service (the xfail tests at the end).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from kafka import KafkaProducer

from stream_monitor.config import KafkaConfig, MonitorConfig
from stream_monitor.config_file import config_from_dict
from stream_monitor.decode.batches import REASONS, RawMessage
from stream_monitor.decode.decoder import Decoder
from stream_monitor.engine import Engine
from stream_monitor.kafka.service import MonitorService
from stream_monitor.sinks.prometheus import build_registry
from stream_monitor.summaries.reference import Reference, build_reference
from stream_monitor.tools.embedded import EmbeddedBroker
from tests.conftest import (
    TEST_WINDOWS,
    committed_offsets,
    consume_all,
    kafka_section,
    wait_for,
)

MAX_MESSAGE_BYTES = 2000
MAX_BATCH_EVENTS = 5
MAX_VERSIONS = 3
PARTITIONS = 2
HOSTILE = "fraud-detector"
VALID = "price-estimator"
CONFIGURED = frozenset({HOSTILE, VALID})
#: Reasons the oracle can be sure of; the others depend on the decoder's order of checks.
CERTAIN = (
    "empty",
    "oversized",
    "batch_too_large",
    "malformed_json",
    "not_an_object",
    "unknown_model",
)
UNCERTAIN = tuple(r for r in REASONS if r not in CERTAIN)
#: Reasons no input causes here: they need a label join, a restored checkpoint or partials.
NOT_FROM_INPUT = ("late_label", "state_conflict", "late_partial")
HEADER = "stream-monitor."
SOURCE_HEADERS = ("source.topic", "source.partition", "source.offset")
TRUNCATION_HEADERS = ("truncated", "original.bytes")
#: The dead-letter producer's message.max.bytes in the main test: small, so cutting is cheap.
DEAD_LETTER_MAX_BYTES = 4096
#: Around librdkafka's default message.max.bytes (1000000, also the dead-letter default)
#: and Apache Kafka's default broker limit (1048588); the embedded broker takes them all.
LARGE_SIZES = (999_000, 1_000_000, 1_048_576, 2_097_152)

MODELS: list[dict[str, Any]] = [
    {
        "name": HOSTILE,
        "task": "binary",
        "features": {"amount": "numeric", "merchant": "categorical"},
    },
    {
        "name": VALID,
        "task": "regression",
        "features": {"area_m2": "numeric", "district": "categorical"},
        "reference": {"warmup_events": 10},
    },
]


def config_for(
    broker: EmbeddedBroker, events: str, drift: str, dead_letter: str, **kafka: Any
) -> MonitorConfig:
    return config_from_dict(
        {
            "kafka": {
                **kafka_section(
                    broker,
                    f"fuzz-{events}",
                    events=events,
                    drift_events=drift,
                    dead_letter=dead_letter,
                ),
                **kafka,
            },
            "windows": {**TEST_WINDOWS, "sizes": ["5m", "1h"]},
            "drift": {"min_window_events": 50},
            "limits": {
                "max_message_bytes": MAX_MESSAGE_BYTES,
                "max_batch_events": MAX_BATCH_EVENTS,
                "max_versions_per_model": MAX_VERSIONS,
            },
            "models": MODELS,
        }
    )


def hostile_baseline(config: MonitorConfig) -> dict[str, Reference]:
    """A reference for the hostile model, so that none of its versions warms up."""
    rng = random.Random(5)
    events = [
        {
            "model": HOSTILE,
            "timestamp": 1_700_000_000 + i,
            "features": {"amount": rng.lognormvariate(3, 1), "merchant": f"m{rng.randrange(20)}"},
            "prediction": rng.random(),
        }
        for i in range(500)
    ]
    decoded = Decoder(config.models, config.fields, config.limits).decode(
        [RawMessage(orjson.dumps(e), 1) for e in events]
    )
    model = config.model(HOSTILE)
    assert model is not None and not decoded.rejects
    return {HOSTILE: build_reference(model, decoded.batches, source="fuzz-baseline")}


# -- the oracle ------------------------------------------------------------------------


@dataclass
class Expected:
    """What one message should turn into."""

    reasons: Counter[str] = field(default_factory=Counter)  # certain rejections
    accepted: int = 0  # valid events (all of the VALID model)
    uncertain: int = 0  # hostile events of a configured model, or without a model string


def expect(value: bytes | None) -> Expected:
    """The oracle: what a message value must give, from the README's table of reasons."""
    result = Expected()
    raw = value or b""
    if not raw.strip():
        result.reasons["empty"] += 1
        return result
    if len(raw) > MAX_MESSAGE_BYTES:
        result.reasons["oversized"] += 1
        return result
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        result.reasons["malformed_json"] += 1
        return result
    if isinstance(parsed, dict):
        _expect_event(parsed, result)
    elif not isinstance(parsed, list):
        result.reasons["not_an_object"] += 1
    elif not parsed:
        result.reasons["empty"] += 1
    elif len(parsed) > MAX_BATCH_EVENTS:
        result.reasons["batch_too_large"] += 1
    else:
        for element in parsed:
            if isinstance(element, dict):
                _expect_event(element, result)
            else:
                result.reasons["not_an_object"] += 1
    return result


def _expect_event(event: dict[str, Any], result: Expected) -> None:
    model = event.get("model")
    if isinstance(model, str) and model not in CONFIGURED:
        result.reasons["unknown_model"] += 1
    elif model == VALID:
        result.accepted += 1  # only the valid generator names this model
    else:
        result.uncertain += 1


# -- the generators --------------------------------------------------------------------

ALPHABET = "abcXYZ019 _-.:/\\\"'\t\n\x00\x7f\u00e9\u00fc\u4e2d\U0001f600\u2028\u200b"
STAMPS: list[Any] = [
    None,
    1,
    -5,
    0,
    1e300,
    2**80,
    True,
    math.nan,
    math.inf,
    "garbage",
    "2024-02-30T00:00:00Z",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59+14:00",
    [],
    {},
]


def text(rng: random.Random, surrogates: bool = False, max_len: int = 12) -> str:
    chars = [rng.choice(ALPHABET) for _ in range(rng.randint(0, max_len))]
    if surrogates and rng.random() < 0.5:
        chars.insert(rng.randint(0, len(chars)), chr(rng.randint(0xD800, 0xDFFF)))
    return "".join(chars)


def scalar(rng: random.Random, huge: bool = True) -> Any:
    """Any JSON scalar; ``huge`` allows integers beyond float range (see the xfail tests)."""
    choices: list[Callable[[], Any]] = [
        lambda: None,
        lambda: rng.random() < 0.5,
        lambda: rng.randint(-(2**70), 2**70),
        lambda: 10 ** rng.randint(20, 400 if huge else 300),
        lambda: rng.uniform(-1e6, 1e6),
        lambda: rng.choice([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324]),
        lambda: text(rng),
        lambda: rng.choice(["", "NaN", "1e999", "0.5", "true", "null"]),
    ]
    return rng.choice(choices)()


def value(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value (NaN and Infinity included), at most three levels deep."""
    roll = rng.random()
    if depth < 3 and roll < 0.15:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if depth < 3 and roll < 0.3:
        return {text(rng): value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return scalar(rng)


def hostile_event(rng: random.Random, now_s: float) -> dict[str, Any]:
    """An inference event of the hostile model (or of no model) with hostile fields."""
    event: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.6:
        event["model"] = HOSTILE
    elif roll < 0.75:
        event["model"] = value(rng)  # never a configured name: text() is too short
    elif roll < 0.85:
        event["model"] = "ghost-" + text(rng, surrogates=True)
    fields: dict[str, Callable[[], Any]] = {
        "model_version": lambda: rng.choice(["v1", "v2", 1, None, True, "", 3.5, [], text(rng)]),
        "timestamp": lambda: (
            now_s - rng.uniform(0, 900) if rng.random() < 0.6 else rng.choice(STAMPS)
        ),
        "features": lambda: (
            {
                name: rng.choice(
                    [
                        value(rng) if name != "merchant" else scalar(rng, huge=False),
                        value(rng, 1) if name != "merchant" else [value(rng, 2)],
                        rng.uniform(0, 100),
                        f"m{rng.randrange(30)}",
                    ]
                )
                for name in ("amount", "merchant", text(rng))
                if rng.random() < 0.8
            }
            if rng.random() < 0.8
            else value(rng)
        ),
        "prediction": lambda: rng.random() if rng.random() < 0.6 else value(rng),
        "label": lambda: value(rng),
        "event_id": lambda: value(rng),
        "latency_ms": lambda: value(rng),
    }
    for name, make in fields.items():
        if rng.random() < 0.75:
            event[name] = make()
    for _ in range(rng.randint(0, 2)):
        event[text(rng, surrogates=True)] = text(rng, surrogates=True)  # ignored keys
    return event


def dumps(rng: random.Random, data: Any) -> bytes:
    """JSON as Python writes it (NaN literals), ASCII-escaped or raw UTF-8.

    Lone surrogates are always escaped (``\\ud800``): written raw they are not UTF-8,
    and the decoder accepts them (see ``test_non_utf8_event_is_malformed_json``).
    """
    if rng.random() < 0.5:
        with contextlib.suppress(UnicodeEncodeError):
            return json.dumps(data, ensure_ascii=False).encode("utf-8")
    return json.dumps(data).encode("ascii")


class HostileMix:
    """The seeded message mix of hostile bytes, hostile JSON and valid events; valid events
    carry the producing client as their version."""

    def __init__(self, seed: int, version: str, now_s: float) -> None:
        self.rng = random.Random(seed)
        self.version = version
        self.now_s = now_s
        self.clock_s = now_s - 1200.0  # valid event time, increasing message by message

    def valid(self, pad: int = 0) -> dict[str, Any]:
        self.clock_s += 0.05
        rng = self.rng
        event: dict[str, Any] = {
            "event_id": f"{self.version}-{self.clock_s:.3f}",
            "model": VALID,
            "model_version": self.version,
            "timestamp": round(self.clock_s, 3),
            "features": {"area_m2": rng.gauss(80, 20), "district": f"d{rng.randrange(12)}"},
            "prediction": rng.uniform(1e5, 5e5),
        }
        if pad:
            event["note"] = "x" * pad
        return event

    def messages(self) -> list[bytes | None]:
        rng = self.rng
        out: list[bytes | None] = []
        # Random bytes of many lengths, across the size limit and the dead-letter limit,
        # the empty message included.
        for length in [0, 1, 2, 3, 4, 7, 64, 1999, 2000, 2001, 4095, 4096, 4097, 8192]:
            out.append(rng.randbytes(length))
        out += [rng.randbytes(rng.randint(0, 3000)) for _ in range(150)]
        # Hostile JSON: events of the hostile model (or of none), and any JSON value.
        out += [dumps(rng, hostile_event(rng, self.now_s)) for _ in range(400)]
        out += [dumps(rng, rng.choice([scalar(rng), value(rng, 2)])) for _ in range(60)]
        # Mixed micro-batches of at most MAX_BATCH_EVENTS: valid events, unknown models,
        # non-objects and at most one hostile event each.
        for _ in range(80):
            makers: list[Callable[[], Any]] = [
                self.valid,
                lambda: {"model": "ghost-" + text(rng), "features": {}, "prediction": 1},
                lambda: scalar(rng),
                lambda: [value(rng)],
            ]
            batch = [rng.choice(makers)() for _ in range(rng.randint(1, MAX_BATCH_EVENTS - 1))]
            if rng.random() < 0.5:
                batch.insert(rng.randint(0, len(batch)), hostile_event(rng, self.now_s))
            out.append(dumps(rng, batch))
        # Micro-batches too large (small enough not to be oversized).
        for _ in range(25):
            size = rng.randint(MAX_BATCH_EVENTS + 1, 3 * MAX_BATCH_EVENTS)
            out.append(orjson.dumps([{"model": VALID}] * size))
        out += [orjson.dumps([self.valid() for _ in range(MAX_BATCH_EVENTS + 1)])]
        # Oversized: valid events padded, random bytes, whitespace around an event.
        for _ in range(30):
            out.append(orjson.dumps(self.valid(pad=rng.randint(MAX_MESSAGE_BYTES, 30_000))))
        out += [rng.randbytes(rng.randint(MAX_MESSAGE_BYTES + 1, 20_000)) for _ in range(10)]
        event = orjson.dumps(self.valid())
        out.append(event + b" " * (MAX_MESSAGE_BYTES + 1 - len(event)))  # one byte too many
        event = orjson.dumps(self.valid())
        out.append(event + b" " * (MAX_MESSAGE_BYTES - len(event)))  # exactly at the limit
        out.append(b"\n " + orjson.dumps(self.valid()) + b"\r\n")
        # Empty: blank, empty micro-batches.
        out += [b"", b" ", b"\n\t \r", b"[]", b" [ ]\n"]
        # Malformed: truncated, not UTF-8, nested too deep, bare words.
        out += [
            b"{",
            b'{"model": "price-estimator"',
            b"\xff\xfe\xfd",
            b'{"model": "price-estimator", "x": "\xc3\x28"}',
            b"[" * (MAX_MESSAGE_BYTES - 1),
            b"nul",
            b"{'model': 'price-estimator'}",
        ]
        # Valid events and micro-batches of valid events.
        out += [orjson.dumps(self.valid()) for _ in range(200)]
        for _ in range(40):
            out.append(orjson.dumps([self.valid() for _ in range(rng.randint(2, 5))]))
        # Shuffled: the valid events' times span ~30 s, within the allowed lateness.
        rng.shuffle(out)
        return out


# -- running the service ---------------------------------------------------------------


@dataclass
class Produced:
    value: bytes | None
    client: str
    partition: int = -1
    offset: int = -1


def produce_confluent(bootstrap: str, topic: str, values: list[bytes | None]) -> list[Produced]:
    produced = [Produced(v, "confluent") for v in values]
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "enable.idempotence": True,
            "message.max.bytes": 2 * max(LARGE_SIZES),
        }
    )

    def delivered(item: Produced) -> Callable[[Any, Any], None]:
        def report(error: Any, message: Any) -> None:
            assert error is None, error
            item.partition, item.offset = message.partition(), message.offset()

        return report

    for item in produced:
        key = b"tombstone" if item.value is None else None
        producer.produce(topic, value=item.value, key=key, on_delivery=delivered(item))
        producer.poll(0)
    assert producer.flush(30) == 0
    return produced


def produce_kafka_python(bootstrap: str, topic: str, values: list[bytes]) -> list[Produced]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    futures = [producer.send(topic, value=value) for value in values]
    producer.flush()
    produced = []
    for value, future in zip(values, futures, strict=True):
        metadata = future.get(timeout=30)
        produced.append(Produced(value, "kafka-python", metadata.partition, metadata.offset))
    producer.close()
    return produced


@contextmanager
def running(service: MonitorService) -> Iterator[tuple[threading.Thread, list[BaseException]]]:
    """The service's loop in a thread; exceptions it raises are collected, not lost."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop() -> None:
        try:
            service.run(stop)
        except BaseException as exc:
            errors.append(exc)

    service.connection.wait_for_broker()
    thread = threading.Thread(target=loop, name="monitor", daemon=True)
    thread.start()
    try:
        yield thread, errors
    finally:
        stop.set()
        thread.join(timeout=30)


def stack_of(thread: threading.Thread) -> str:
    """Where ``thread`` is now (for a service that did not stop in time)."""
    frame = sys._current_frames().get(thread.ident or -1)
    return "".join(traceback.format_stack(frame)) if frame is not None else "(thread ended)"


def describe(errors: list[BaseException]) -> str:
    """What the service raised, with tracebacks (for assertion messages)."""
    return "\n".join("".join(traceback.format_exception(e)) for e in errors)


def consumed_all(engine: Engine, topic: str, end_offsets: dict[int, int]) -> bool:
    for partition, end in end_offsets.items():
        ledger = engine.store.ledgers.get((topic, partition))
        if ledger is None or ledger.next_offset != end:
            return False
    return True


def headers_of(message: Any) -> dict[str, str]:
    return {
        name.removeprefix(HEADER): (raw or b"").decode("utf-8", "replace")
        for name, raw in message.headers() or []
    }


def check_letter(letter: Any, original: bytes, max_bytes: int) -> bool:
    """Assert that a dead letter holds ``original``, or its first bytes cut to fit; whether cut.

    A letter is cut when it must be (the original alone fills ``max_bytes``), never when
    the original and its headers fit easily, and then no shorter than the headers need.
    """
    headers = headers_of(letter)
    value = letter.value() or b""
    cut = "truncated" in headers
    expected = {"reason", "detail", *SOURCE_HEADERS, *(TRUNCATION_HEADERS if cut else ())}
    assert set(headers) == expected, headers
    if not cut:
        assert value == original
        assert len(original) < max_bytes
        return False
    assert headers["truncated"] == "true"
    assert int(headers["original.bytes"]) == len(original)
    assert original.startswith(value) and len(value) < len(original)
    assert max_bytes - 512 < len(value) < max_bytes
    assert len(original) > max_bytes - 512
    return True


# -- the tests -------------------------------------------------------------------------


def test_hostile_input_is_counted_and_dead_lettered_byte_for_byte(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    events_topic = topic_names("fuzz-events", partitions=PARTITIONS)
    dead_letter = topic_names("fuzz-dlq")
    config = config_for(
        broker,
        events_topic,
        topic_names("fuzz-drift"),
        dead_letter,
        dead_letter_max_bytes=DEAD_LETTER_MAX_BYTES,
    )
    now_s = time.time()
    confluent_values = HostileMix(seed=11, version="confluent", now_s=now_s).messages()
    confluent_values.insert(0, None)  # a tombstone: no value at all
    rng = random.Random(13)  # messages past the producers' default limit (confluent-kafka only)
    for size in LARGE_SIZES:
        confluent_values.insert(rng.randrange(len(confluent_values)), rng.randbytes(size))
    python_values = HostileMix(seed=12, version="kafka-python", now_s=now_s).messages()
    produced = produce_confluent(broker.bootstrap_servers, events_topic, confluent_values)
    produced += produce_kafka_python(
        broker.bootstrap_servers, events_topic, [v or b"" for v in python_values]
    )
    by_source = {(p.partition, p.offset): p for p in produced}
    assert len(by_source) == len(produced)
    end_offsets = {
        partition: 1 + max(o for p, o in by_source if p == partition)
        for partition in range(PARTITIONS)
    }
    expected = {key: expect(item.value) for key, item in by_source.items()}

    service = MonitorService(config, Engine(config, hostile_baseline(config)))
    engine = service.engine
    with running(service) as (thread, errors):
        wait_for(
            lambda: not thread.is_alive() or consumed_all(engine, events_topic, end_offsets),
            180,  # about 12 s on an idle 2-core machine
            "every message to be read",
        )
        assert consumed_all(engine, events_topic, end_offsets), (
            {key: ledger.next_offset for key, ledger in engine.store.ledgers.items()},
            end_offsets,
        )
        time.sleep(1.5)  # one more checkpoint: dead letters are confirmed before commits
        assert thread.is_alive(), describe(errors)
    assert not thread.is_alive(), stack_of(thread)
    assert errors == [], describe(errors)
    committed = committed_offsets(
        broker.bootstrap_servers, config.kafka.group_id, events_topic, PARTITIONS
    )
    assert committed == end_offsets

    # Counts: exact for the certain reasons and for the valid events.
    invalid = Counter(engine.invalid_total)
    assert set(invalid) <= set(REASONS), set(invalid) - set(REASONS)
    assert {r for r in REASONS if not invalid[r]} == set(NOT_FROM_INPUT)
    certain = sum((e.reasons for e in expected.values()), Counter())
    assert {r: invalid[r] for r in CERTAIN} == {r: certain[r] for r in CERTAIN}
    for client in ("confluent", "kafka-python"):
        accepted = sum(
            expected[key].accepted for key, item in by_source.items() if item.client == client
        )
        assert accepted > 200
        assert engine.events_total[(VALID, client)] == accepted, client
    assert {version for model, version in engine.events_total if model == VALID} == {
        "confluent",
        "kafka-python",
    }
    # Every hostile event of a configured model was counted or rejected once (a late
    # event is in both events_total and invalid_total["late"]).
    hostile = sum(e.uncertain for e in expected.values())
    counted = sum(n for (model, _), n in engine.events_total.items() if model == HOSTILE)
    rejected = sum(invalid[r] for r in UNCERTAIN)
    assert counted + rejected - invalid["late"] <= hostile <= counted + rejected
    assert counted > 0 and rejected > 0
    assert invalid["too_many_versions"] > 0

    # Dead letters: the original bytes, once per message and reason, with their source.
    expected_letters = sum(len(+e.reasons) for e in expected.values()) + rejected
    letters = consume_all(broker.bootstrap_servers, dead_letter, expected_letters, linger_s=1.0)
    assert len(letters) == expected_letters
    reasons_of: dict[tuple[int, int], list[str]] = {}
    cut: set[int] = set()
    for letter in letters:
        headers = headers_of(letter)
        assert headers["source.topic"] == events_topic
        source = (int(headers["source.partition"]), int(headers["source.offset"]))
        assert source in by_source, source
        original = by_source[source].value or b""
        if check_letter(letter, original, DEAD_LETTER_MAX_BYTES):
            cut.add(len(original))
        reasons_of.setdefault(source, []).append(headers["reason"])
    assert set(LARGE_SIZES) | {4096, 4097, 8192} <= cut
    letter_counts = Counter(r for reasons in reasons_of.values() for r in reasons)
    for reason in CERTAIN:
        messages_with = sum(1 for e in expected.values() if e.reasons[reason])
        assert letter_counts[reason] == messages_with, reason
    for reason in UNCERTAIN:
        assert letter_counts[reason] == invalid[reason], reason
    for source, expectation in expected.items():
        reasons = reasons_of.get(source, [])
        assert len(reasons) == len(set(reasons)), (source, reasons)
        extra = set(reasons) - set(expectation.reasons)
        assert set(+expectation.reasons) <= set(reasons), (source, reasons, expectation)
        assert len(extra) <= min(expectation.uncertain, 1), (source, reasons, expectation)
        assert extra <= set(UNCERTAIN), (source, reasons)


def run_messages(
    broker: EmbeddedBroker,
    topic_names: Callable[..., str],
    steps: list[list[bytes]],
    baselines: bool = False,
) -> tuple[MonitorService, list[BaseException], bool, list]:
    """Produce each step's messages after the service consumed the previous ones.

    Returns the service, what it raised, whether it was still alive at the end, and
    the dead letters.
    """
    events_topic, dead_letter = topic_names("fuzz-events"), topic_names("fuzz-dlq")
    config = config_for(broker, events_topic, topic_names("fuzz-drift"), dead_letter)
    service = MonitorService(config, Engine(config, hostile_baseline(config) if baselines else {}))
    produced = 0
    with running(service) as (thread, errors):
        for values in steps:
            produce_confluent(broker.bootstrap_servers, events_topic, list(values))
            produced += len(values)
            ends = {0: produced}
            wait_for(
                lambda ends=ends: (
                    not thread.is_alive() or consumed_all(service.engine, events_topic, ends)
                ),
                30,
                f"{produced} messages to be read",
            )
        time.sleep(2.5)  # two checkpoints
        alive = thread.is_alive()
    rejected = sum(service.engine.invalid_total.values())
    letters = (
        consume_all(broker.bootstrap_servers, dead_letter, rejected, 10, linger_s=1.0)
        if rejected
        else []
    )
    return service, errors, alive, letters


def valid_event(ts: float, version: str = "v1", district: str = "d1") -> bytes:
    return orjson.dumps(
        {
            "model": VALID,
            "model_version": version,
            "timestamp": ts,
            "features": {"area_m2": 70.0, "district": district},
            "prediction": 250000.0,
        }
    )


def test_lone_surrogate_does_not_stop_the_service(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    now_s = time.time() - 60
    poison = valid_event(now_s, version="\\ud800").replace(b"\\\\ud800", b"\\ud800")
    assert b'"model_version":"\\ud800"' in poison
    steps = [[valid_event(now_s + i) for i in range(12)] + [poison], [valid_event(now_s + 20)]]
    service, errors, alive, _ = run_messages(broker, topic_names, steps)
    assert errors == [] and alive, describe(errors)
    engine = service.engine
    assert sum(engine.events_total.values()) + sum(engine.invalid_total.values()) == 14


def test_late_warmup_event_does_not_stop_the_service(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    now_s = time.time() - 600
    late = valid_event(now_s - 300, district="late")  # older than allowed_lateness_s (120 s)
    warmup = [valid_event(now_s + i) for i in range(8)] + [late]
    steps = [warmup, [valid_event(now_s + 10)]]  # the 10th event completes the warm-up
    service, errors, alive, letters = run_messages(broker, topic_names, steps)
    assert errors == [] and alive, describe(errors)
    assert service.engine.invalid_total["late"] == 1
    # It is counted and logged, but its message was consumed in an earlier batch and is no
    # longer at hand, so it cannot be dead-lettered (README, Bad input).
    assert letters == []


def test_non_utf8_event_is_malformed_json(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    now_s = time.time() - 60
    utf16 = json.dumps(json.loads(valid_event(now_s))).encode("utf-16")
    surrogate = valid_event(now_s + 1)[:-1] + b', "note": "\xed\xa0\x80"}'
    with pytest.raises(UnicodeDecodeError):
        surrogate.decode("utf-8")
    service, errors, alive, letters = run_messages(broker, topic_names, [[utf16, surrogate]])
    assert errors == [] and alive, describe(errors)
    assert service.engine.invalid_total["malformed_json"] == 2
    assert sum(service.engine.events_total.values()) == 0
    assert sorted(m.value() for m in letters) == sorted([utf16, surrogate])


def test_huge_integer_category_does_not_stop_the_service(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    now_s = time.time() - 60
    huge = valid_event(now_s, district="HUGE").replace(b'"HUGE"', b"1" + b"0" * 400)
    assert len(huge) < MAX_MESSAGE_BYTES
    steps = [[valid_event(now_s + i) for i in range(12)] + [huge, valid_event(now_s + 13)]]
    service, errors, alive, _ = run_messages(broker, topic_names, steps)
    assert errors == [] and alive, describe(errors)
    engine = service.engine
    assert sum(engine.events_total.values()) + sum(engine.invalid_total.values()) == 14


def test_messages_past_the_dead_letter_limit_are_cut_to_fit(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    """Issue 12: 1-2 MB messages, oversized, are dead-lettered within the default limit."""
    now_s = time.time() - 60
    rng = random.Random(21)
    values = [valid_event(now_s), *(rng.randbytes(n) for n in LARGE_SIZES), valid_event(now_s)]
    service, errors, alive, letters = run_messages(broker, topic_names, [values])
    assert errors == [] and alive, describe(errors)
    engine = service.engine
    assert engine.invalid_total == {"oversized": len(LARGE_SIZES)}
    assert sum(engine.events_total.values()) == 2
    max_bytes = KafkaConfig().dead_letter_max_bytes
    cut = {}
    for letter in letters:
        offset = int(headers_of(letter)["source.offset"])
        cut[offset] = check_letter(letter, values[offset], max_bytes)
    assert cut == {1: False, 2: True, 3: True, 4: True}  # 999000 bytes fit with their headers
    kafka = service.config.kafka
    committed = committed_offsets(broker.bootstrap_servers, kafka.group_id, kafka.topics.events, 1)
    assert committed == {0: len(values)}


def test_undeliverable_dead_letters_are_retried_counted_and_dropped(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    """A dead-letter topic the broker refuses: each letter is tried twice, counted, dropped.

    The first attempt learns that the topic is invalid (``TOPIC_EXCEPTION``); librdkafka
    may fail the second itself (``_UNKNOWN_TOPIC``).
    """
    events_topic = topic_names("fuzz-events")
    config = config_for(
        broker, events_topic, topic_names("fuzz-drift"), "not a topic!", dead_letter_retries=1
    )
    values = [b"{", b"", random.Random(5).randbytes(3000), valid_event(time.time() - 60)]
    produce_confluent(broker.bootstrap_servers, events_topic, list(values))
    service = MonitorService(config, Engine(config))
    with running(service) as (thread, errors):
        wait_for(
            lambda: not thread.is_alive() or service.snapshot().dead_letters_dropped >= 3,
            30,
            "three dead letters dropped",
        )
        time.sleep(1.5)  # one more checkpoint
        assert thread.is_alive(), describe(errors)
    assert errors == [], describe(errors)
    snapshot = service.snapshot()
    failures = snapshot.dead_letter_failures
    assert set(failures) <= {"TOPIC_EXCEPTION", "_UNKNOWN_TOPIC"}, failures
    assert (sum(failures.values()), snapshot.dead_letters_dropped) == (6, 3)
    registry = build_registry(service.snapshot)
    name = "stream_monitor_dead_letter_failures_total"
    for reason, count in failures.items():
        assert registry.get_sample_value(name, {"reason": reason}) == count
    assert registry.get_sample_value("stream_monitor_dead_letters_dropped_total") == 3
    assert sum(service.engine.invalid_total.values()) == 3
    committed = committed_offsets(broker.bootstrap_servers, config.kafka.group_id, events_topic, 1)
    assert committed == {0: len(values)}

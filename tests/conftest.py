"""Shared fixtures and factories: the embedded broker (one per session), configs, producing
and consuming, polling, ``stream-monitor run`` processes and reading their metrics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import yaml
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from stream_monitor.cli import main
from stream_monitor.config import MonitorConfig
from stream_monitor.config_file import config_from_dict
from stream_monitor.decode.batches import RawMessage
from stream_monitor.engine import Engine
from stream_monitor.kafka.service import MonitorService
from stream_monitor.sinks.prometheus import MetricsServer, build_registry, build_service_registry
from stream_monitor.tools.broker_runs import METRICS_LINE
from stream_monitor.tools.embedded import EmbeddedBroker
from tests.prometheus_server import MISSING_PROMETHEUS

#: The repository (the project root).
ROOT = Path(__file__).resolve().parent.parent
#: The test sets, one folder and one marker each.
SUITES = ("unit", "broker", "process")

T = TypeVar("T")

#: Prometheus samples keyed by (metric name, sorted labels).
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]

#: Consumer-group settings that suit the embedded broker (eager assignor, short timeouts).
TEST_KAFKA = {
    "assignment_strategy": "range",
    "session_timeout_ms": 6000,
    "max_poll_interval_ms": 10000,
    "commit_interval_s": 1,
    "poll_timeout_s": 0.2,
    "statistics_interval_ms": 1000,
    "startup_timeout_s": 10,
}

#: Windows of the tests: 60 s panes, short windows, idle partitions let go after 3 s.
TEST_WINDOWS = {
    "pane_s": 60,
    "sizes": ["5m", "15m"],
    "allowed_lateness_s": 120,
    "idle_timeout_s": 3,
}

FRAUD_MODEL = {
    "name": "fraud-detector",
    "task": "binary",
    "features": {
        "amount": "numeric",
        "account_age_days": "numeric",
        "merchant_category": "categorical",
        "country": "categorical",
    },
    "reference": {"warmup_events": 1000},
}

PRICE_MODEL = {
    "name": "price-estimator",
    "task": "regression",
    "features": {"area_m2": "numeric", "rooms": "numeric", "district": "categorical"},
    "reference": {"warmup_events": 1000},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder, so each set runs on its own (``-m unit`` and so on)."""
    for item in items:
        parts = Path(str(item.path)).relative_to(ROOT).parts
        if parts[0] == "tests" and parts[1] in SUITES:
            item.add_marker(parts[1])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line saying how many tests skipped because Prometheus is not installed, and the fix."""
    skipped = terminalreporter.stats.get("skipped", [])
    missing = sum(1 for report in skipped if MISSING_PROMETHEUS in str(report.longrepr))
    if missing:
        terminalreporter.write_line(
            f"{missing} test(s) skipped: the prometheus and promtool binaries are not installed "
            "(Debian/Ubuntu: sudo apt-get install prometheus)",
            yellow=True,
        )


def make_config(**overrides: Any) -> MonitorConfig:
    """A config for the synthetic models; keyword arguments replace top-level sections."""
    data: dict[str, Any] = {
        "models": [FRAUD_MODEL, PRICE_MODEL],
        "windows": TEST_WINDOWS,
        "drift": {"min_window_events": 200},
    }
    data.update(overrides)
    return config_from_dict(data)


def as_messages(events: list[dict[str, Any]]) -> list[RawMessage]:
    """Events as raw messages (one event per message)."""
    return [RawMessage(orjson.dumps(event), 1) for event in events]


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """The embedded Tansu broker, started once for the test session."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def topic_names(broker: EmbeddedBroker) -> Callable[..., str]:
    """Creates a fresh topic and returns its name."""

    def create(prefix: str = "t", partitions: int = 1) -> str:
        return fresh_topic(broker, prefix, partitions)

    return create


def fresh_topic(broker: EmbeddedBroker, prefix: str = "t", partitions: int = 1) -> str:
    """Create a topic with a unique name; its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    broker.create_topics([name], partitions=partitions)
    return name


def committed_offsets(bootstrap: str, group_id: str, topic: str, partitions: int) -> dict[int, int]:
    """The offsets ``group_id`` committed on each partition of ``topic`` (-1001: none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id})
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10)}
    finally:
        consumer.close()


def start_service(
    config: MonitorConfig, engine: Engine
) -> tuple[MonitorService, threading.Event, threading.Thread]:
    """A :class:`MonitorService` running in a thread once the broker answered; set the
    event to stop it (it checkpoints as it stops) and join the thread."""
    service = MonitorService(config, engine)
    stop = threading.Event()
    service.connection.wait_for_broker()
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    return service, stop, thread


# -- configs and files -------------------------------------------------------------------


def kafka_section(broker: EmbeddedBroker, group_id: str, **topics: str) -> dict[str, Any]:
    """The ``kafka`` config section for the embedded broker: :data:`TEST_KAFKA`, the group
    and the topics (``events=...``, ``drift_events=...``, ...)."""
    return {
        "bootstrap_servers": broker.bootstrap_servers,
        "group_id": group_id,
        "topics": topics,
        **TEST_KAFKA,
    }


def broker_config(
    broker: EmbeddedBroker, group_id: str, topics: Mapping[str, str], **sections: Any
) -> dict[str, Any]:
    """Config data for a service on the embedded broker: :func:`kafka_section`, /metrics on
    any free port, the test windows and both synthetic models; keyword arguments replace
    top-level sections."""
    data: dict[str, Any] = {
        "kafka": kafka_section(broker, group_id, **topics),
        "metrics": {"host": "127.0.0.1", "port": 0},
        "windows": TEST_WINDOWS,
        "drift": {"min_window_events": 200},
        "models": [FRAUD_MODEL, PRICE_MODEL],
    }
    data.update(sections)
    return data


def write_config(path: Path, data: Mapping[str, Any]) -> Path:
    """``data`` as a YAML config file at ``path``; the path."""
    path.write_text(yaml.safe_dump(dict(data)))
    return path


def write_jsonl(path: Path, events: Iterable[Mapping[str, Any]]) -> Path:
    """``events`` as a JSON Lines file at ``path``; the path."""
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    return path


def write_baselines(config_file: Path, reference: Path) -> None:
    """Run ``stream-monitor baseline`` over ``reference`` for every model of the config,
    writing each to the file its ``reference.baseline`` names."""
    data = yaml.safe_load(config_file.read_text())
    for model in data["models"]:
        status = main(
            ["baseline", "--config", str(config_file), "--model", model["name"],
             "--input", str(reference), "--output", model["reference"]["baseline"]]
        )  # fmt: skip
        assert status == 0, model["name"]


def replay_metrics(config_file: Path, events: list[dict[str, Any]], folder: Path) -> str:
    """The Prometheus text ``stream-monitor replay`` writes after ``events``, in order."""
    lines = write_jsonl(folder / "replay-events.jsonl", events)
    out = folder / "replay.prom"
    status = main(
        ["replay", "--config", str(config_file), "--input", str(lines),
         "--metrics-out", str(out)]
    )  # fmt: skip
    assert status == 0
    return out.read_text()


# -- polling ---------------------------------------------------------------------------


def wait_for(condition: Callable[[], T], timeout_s: float = 30.0, what: str = "the condition") -> T:
    """Poll ``condition`` until it returns something true; that value.

    Raises :class:`AssertionError` naming ``what`` once ``timeout_s`` passed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.1)


def settled(read: Callable[[], T], timeout_s: float, quiet_s: float = 4.0) -> T:
    """``read()`` once it returned the same non-empty value for ``quiet_s`` (or at the
    deadline, the last value read)."""
    deadline, since = time.monotonic() + timeout_s, time.monotonic()
    last = read()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        found = read()
        if found != last or not found:
            last, since = found, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


# -- Kafka -----------------------------------------------------------------------------

#: A record to produce: an event (sent as JSON) or bytes (sent as they are).
Record = Mapping[str, Any] | bytes


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[Record],
    key: str | Callable[[Any], object] | None = None,
    partition: int | None = None,
) -> None:
    """Produce ``records`` in order and wait until all are delivered.

    ``key`` is the event field to key by, or a function of the record, or ``None``
    (no key); ``partition`` pins every record to one partition.
    """
    key_of = itemgetter(key) if isinstance(key, str) else key
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    pinned = {} if partition is None else {"partition": partition}
    for record in records:
        value = record if isinstance(record, bytes) else orjson.dumps(record)
        record_key = None if key_of is None else str(key_of(record)).encode()
        producer.produce(topic, value=value, key=record_key, **pinned)
        producer.poll(0)
    assert producer.flush(30) == 0, f"records not delivered to {topic}"


def consume_all(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0, linger_s: float = 0.0
) -> list[Message]:
    """Up to ``expected`` records of ``topic`` from the start (then ``linger_s`` more to look)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{topic}-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < expected and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(500, 0.5) if m.error() is None]
    if linger_s:
        messages += [m for m in consumer.consume(500, linger_s) if m.error() is None]
    consumer.close()
    return messages


def drift_events_by_id(broker: EmbeddedBroker, topic: str) -> dict[str, dict[str, Any]]:
    """The drift events on ``topic`` by id (a re-sent event has the same id and content)."""
    messages = consume_all(broker.bootstrap_servers, topic, 10**6, timeout_s=4)
    return {event["id"]: event for event in (orjson.loads(m.value()) for m in messages)}


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections while the block runs: it is bound here
    and never listened on, so nothing else can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# -- metrics ---------------------------------------------------------------------------


def samples(text: str, *names: str) -> Series:
    """Samples of the named metrics in Prometheus text, keyed by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in names
    }


def registry_samples(registry: CollectorRegistry, *names: str) -> Series:
    """Samples of the named metrics read from ``registry``, keyed as :func:`samples`."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name in names
    }


def frozen_registry(service: MonitorService) -> CollectorRegistry:
    """The metrics of ``service`` as they are now (a registry over one snapshot)."""
    snapshot = service.snapshot()
    return build_registry(lambda: snapshot)


def serve_metrics(service: MonitorService) -> MetricsServer:
    """``/metrics`` and ``/readyz`` of ``service`` on a loopback port the OS picked
    (``server.port``); stop it at the end."""
    registry = build_service_registry(service.snapshot)
    return MetricsServer(registry, "127.0.0.1", 0, service.ready).start()


def scrape(port: int, path: str = "/metrics") -> str:
    """The body of ``http://127.0.0.1:<port><path>`` (raises :class:`OSError` if unreachable)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


# -- ``stream-monitor run`` processes ----------------------------------------------------

#: The line ``run`` logs once its /metrics server is bound; the port is the bound one.


class MonitorProcess:
    """One ``stream-monitor run`` process, its stderr logged to a file in ``folder``.

    The config should say ``metrics.port: 0``: the process binds a free port and logs it,
    and :attr:`port` reads it from the log, so no test depends on a port staying free.
    """

    def __init__(
        self,
        config_file: Path,
        folder: Path,
        role: str = "all",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config_file, self.role = config_file, role
        self.log = folder / f"{role}-{uuid.uuid4().hex[:8]}.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    def start(self) -> MonitorProcess:
        """Start (or start again) the process."""
        self._port = None
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stream_monitor", "run", "--config",
                 str(self.config_file), "--role", self.role],
                stdout=subprocess.DEVNULL, stderr=log, env=self.env,
            )  # fmt: skip
        return self

    @property
    def port(self) -> int | None:
        """The /metrics port the process reported (``None`` until it did)."""
        if self._port is None:
            found = METRICS_LINE.search(self.log_text())
            self._port = int(found.group(1)) if found else None
        return self._port

    def log_text(self) -> str:
        """What the process wrote to stderr so far."""
        return self.log.read_text(errors="replace")

    def log_tail(self) -> str:
        """How it exited and the end of its log (shown when it did not exit cleanly)."""
        return f"{self.role} on :{self.port}, {self.exit_status()}: ...{self.log_text()[-3000:]}"

    def exit_status(self) -> str:
        """``running``, ``exit N`` or the signal that ended it (a crash: ``SIGSEGV``, say)."""
        code = self.process.poll() if self.process is not None else None
        if code is None:
            return "running"
        return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"

    def series(self, *names: str) -> Series:
        """The named samples of its /metrics (empty while it does not answer yet)."""
        port = self.port
        if port is None:
            return {}
        try:
            return samples(scrape(port), *names)
        except OSError:
            return {}

    def consumed(self) -> float:
        """Valid events it counted."""
        return sum(self.series("stream_monitor_events_total").values())

    def kill(self) -> None:
        """SIGKILL: no checkpoint, no clean exit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit status (``None`` if never started)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

"""What the broker benchmarks share: sending their messages, and ``stream-monitor run`` processes.

:func:`send_messages` produces the benchmark's messages to a topic of the
embedded broker; :class:`MonitorProcess` starts one ``stream-monitor run``
child process on a config, and :func:`counted` and :func:`ready` read its
``/metrics`` and ``/readyz``.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from stream_monitor.decode.batches import RawMessage

#: Session timeout of the timed processes: Apache Kafka's default group.min.session.timeout.ms.
SESSION_TIMEOUT_MS = 6000


def send_messages(
    bootstrap_servers: str,
    topic: str,
    messages: Sequence[RawMessage],
    partitions: int = 1,
    **settings: Any,
) -> None:
    """Produce ``messages`` round robin over ``partitions`` partitions of ``topic``, then flush.

    Each message keeps its timestamp; while the producer's queue is full, it waits.
    The producer (``settings`` add to its own) is gone on return: a client left
    connected would log its reconnection attempts once the broker stops.
    """
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 20, **settings})
    for index, message in enumerate(messages):
        while True:
            try:
                producer.produce(
                    topic,
                    value=message.value,
                    partition=index % partitions,
                    timestamp=message.timestamp_ms or 0,
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)


def kafka_settings(
    bootstrap: str, group: str, topics: tuple[str, str], **settings: Any
) -> dict[str, Any]:
    """The ``kafka`` section of a benchmark process, quick to join and to poll.

    ``group`` reads the events topic, the first of ``topics``, and sends drift
    events to the second; ``settings`` add to the rest.
    """
    events, drift_events = topics
    return {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "topics": {"events": events, "drift_events": drift_events},
        "assignment_strategy": "range",
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "max_poll_interval_ms": 10000,
        "poll_timeout_s": 0.1,
        **settings,
    }


#: The line ``stream-monitor run`` logs once it serves /metrics, with the port it bound.
METRICS_LINE = re.compile(r"serving /metrics on \S+:(\d+)\n")


def counted(port: int | None) -> float:
    """Valid plus invalid events a process counted (0 while it does not answer)."""
    if port is None:
        return 0.0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    names = ("stream_monitor_events_total", "stream_monitor_invalid_events_total")
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in names
    )


def ready(port: int) -> bool:
    """Whether ``/readyz`` answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class MonitorProcess:
    """One ``stream-monitor run`` process of a config, its config and log kept in ``directory``."""

    def __init__(
        self, config: dict[str, Any], directory: Path, name: str, role: str = "all"
    ) -> None:
        self._port: int | None = None
        data = {**config, "metrics": {"host": "127.0.0.1", "port": 0}}  # any free port
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        self.log = directory / f"{name}.log"
        command = [sys.executable, "-m", "stream_monitor", "run", "--config", str(path)]
        self.started = time.time()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "--role", role], stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def port(self) -> int | None:
        """The /metrics port the process bound and logged (None until it did)."""
        if self._port is None and self.log.exists():
            found = METRICS_LINE.search(self.log.read_text(errors="replace"))
            self._port = int(found.group(1)) if found else None
        return self._port

    def wait_ready(self, timeout_s: float) -> float | None:
        """Seconds from the start to ``/readyz`` answering 200 (None: not within the timeout)."""
        while time.time() - self.started < timeout_s:
            port = self.port
            if port is not None and ready(port):
                return time.time() - self.started
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        return None

    def terminate(self) -> None:
        """SIGTERM: the process checkpoints, leaves the group and exits."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        """Wait for the process to exit (after a minute, kill it)."""
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM, then wait for the process."""
        self.terminate()
        self.wait()

"""``stream-monitor bench --broker --restore-partitions 4,32,128``: start-up and restore.

For each partition count, ``stream-monitor run`` processes read an input topic
of that many partitions on the embedded broker, and each is timed from its
start to ``/readyz`` answering 200:

* **empty**: a fresh consumer group, so a changelog with nothing to restore;
* **with state**: the benchmark's events are spread over every partition; a
  first process counts them all and checkpoints as it stops (SIGTERM), then a
  second process of the same group restores that state and is timed.

Each process logs how long its restore took and how many changelog records
(and bytes) it read; the time it joined the consumer group comes from its
``assigned`` log line. On the embedded broker the join takes half of
``session.timeout.ms`` (the broker holds a first JoinGroup that long for other
members to arrive), so the benchmark uses the smallest session timeout Apache
Kafka accepts by default, 6 s, and reports the join apart.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from stream_monitor.decode.batches import RawMessage
from stream_monitor.tools.bench_scale import counted
from stream_monitor.tools.embedded import EmbeddedBroker, free_port

#: Session timeout of the timed processes: Apache Kafka's default group.min.session.timeout.ms.
SESSION_TIMEOUT_MS = 6000
RESTORED = re.compile(
    r"restored \d+ of \d+ partitions from (?P<records>\d+) changelog records "
    r"\((?P<bytes>\d+) bytes\) in (?P<seconds>[0-9.]+)s"
)
ASSIGNED = re.compile(r"^(?P<at>\S+ \S+) INFO \S+: assigned ", re.MULTILINE)


def ready(port: int) -> bool:
    """Whether ``/readyz`` answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class Process:
    """One ``stream-monitor run`` process of a config, its log kept in a file."""

    def __init__(self, config: dict[str, Any], directory: Path, name: str) -> None:
        self.port = free_port()
        data = {**config, "metrics": {"host": "127.0.0.1", "port": self.port}}
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        self.log = directory / f"{name}.log"
        command = [sys.executable, "-m", "stream_monitor", "run", "--config", str(path)]
        self.started = time.time()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float) -> float | None:
        """Seconds from the start to ``/readyz`` answering 200 (None: not within the timeout)."""
        while time.time() - self.started < timeout_s:
            if ready(self.port):
                return time.time() - self.started
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        return None

    def stop(self) -> None:
        """SIGTERM (the process checkpoints and leaves the group), then wait for it."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def report(self, ready_s: float | None) -> dict[str, Any]:
        """Ready, joined and restore times, and what the restore read (from the log)."""
        text = self.log.read_text(errors="replace")
        restored = RESTORED.search(text)
        assigned = ASSIGNED.search(text)
        joined_s = None
        if assigned is not None:
            at = datetime.strptime(assigned["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            joined_s = max(0.0, at - self.started)
        return {
            "ready_s": ready_s,
            "joined_s": joined_s,
            "restore_s": float(restored["seconds"]) if restored else None,
            "records": int(restored["records"]) if restored else None,
            "bytes": int(restored["bytes"]) if restored else None,
        }


def timed_start(config: dict[str, Any], directory: Path, name: str) -> dict[str, Any]:
    """Start a process, time it to ready, stop it; its :meth:`Process.report`."""
    process = Process(config, directory, name)
    try:
        ready_s = process.wait_ready(120.0)
    finally:
        process.stop()
    return process.report(ready_s)


def fill(config: dict[str, Any], directory: Path, name: str, expected: int) -> bool:
    """Run a process until it counted ``expected`` events, then stop it (it checkpoints)."""
    process = Process(config, directory, name)
    try:
        deadline = time.monotonic() + 300.0
        while counted(process.port) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        return counted(process.port) >= expected
    finally:
        process.stop()


def produce_spread(
    bootstrap: str, topic: str, messages: Sequence[RawMessage], partitions: int
) -> None:
    """Produce ``messages`` round robin over ``partitions`` partitions of ``topic``."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
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
    producer.flush(60)


def measure_restore(
    config: dict[str, Any], messages: Sequence[RawMessage], partition_counts: Sequence[int]
) -> dict[str, Any]:
    """Ready and restore times of ``stream-monitor run`` for each partition count."""
    runs = []
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)

        def kafka(group: str, topic: str, reset: str) -> dict[str, Any]:
            return {
                **config,
                "kafka": {
                    "bootstrap_servers": broker.bootstrap_servers,
                    "group_id": group,
                    "topics": {"events": topic, "drift_events": "bench-restore-drift"},
                    "assignment_strategy": "range",
                    "session_timeout_ms": SESSION_TIMEOUT_MS,
                    "max_poll_interval_ms": 10000,
                    "poll_timeout_s": 0.1,
                    "auto_offset_reset": reset,
                },
            }

        for partitions in partition_counts:
            topic = f"bench-restore-{partitions}"
            broker.create_topics([topic], partitions=partitions)
            produce_spread(broker.bootstrap_servers, topic, messages, partitions)
            name = f"empty-{partitions}"
            empty = timed_start(kafka(name, topic, "latest"), directory, name)
            stateful = kafka(f"state-{partitions}", topic, "earliest")
            complete = fill(stateful, directory, f"fill-{partitions}", len(messages))
            restored = timed_start(stateful, directory, f"restore-{partitions}")
            runs.append(
                {
                    "partitions": partitions,
                    "empty": empty,
                    "state": {**restored, "events": len(messages), "complete": complete},
                }
            )
    return {"session_timeout_ms": SESSION_TIMEOUT_MS, "runs": runs}


def format_rows(report: dict[str, Any]) -> list[str]:
    """The table rows of a :func:`measure_restore` report."""

    def seconds(value: float | None, width: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width - 2}.2f} s"

    lines = [
        f"start-up and restore (`stream-monitor run`, session.timeout.ms "
        f"{report['session_timeout_ms']:,}):",
        f"  {'partitions':>10}  {'changelog':<18}{'ready':>10}{'joined':>10}{'restore':>10}"
        f"{'records':>10}{'MiB':>8}",
    ]
    for run in report["runs"]:
        state = run["state"]
        for label, row in (("empty", run["empty"]), (f"{state['events']:,} events", state)):
            mib = (row["bytes"] or 0) / 1024 / 1024
            lines.append(
                f"  {run['partitions']:>10}  {label:<18}{seconds(row['ready_s'], 10)}"
                f"{seconds(row['joined_s'], 10)}{seconds(row['restore_s'], 10)}"
                f"{row['records'] if row['records'] is not None else '-':>10}{mib:>8.2f}"
            )
    return lines

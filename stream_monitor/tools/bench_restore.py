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
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream_monitor.decode.batches import RawMessage
from stream_monitor.tools.broker_runs import (
    SESSION_TIMEOUT_MS,
    MonitorProcess,
    counted,
    kafka_settings,
    send_messages,
)
from stream_monitor.tools.embedded import EmbeddedBroker

RESTORED = re.compile(
    r"restored \d+ of \d+ partitions from (?P<records>\d+) changelog records "
    r"\((?P<bytes>\d+) bytes\) in (?P<seconds>[0-9.]+)s"
)
ASSIGNED = re.compile(r"^(?P<at>\S+Z) INFO \S+: assigned ", re.MULTILINE)


def start_report(process: MonitorProcess, ready_s: float | None) -> dict[str, Any]:
    """Ready, joined and restore times of ``process``, and what its restore read (from its log)."""
    text = process.log.read_text(errors="replace")
    restored = RESTORED.search(text)
    assigned = ASSIGNED.search(text)
    joined_s = None
    if assigned is not None:
        stamp = datetime.strptime(assigned["at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        at = stamp.replace(tzinfo=UTC).timestamp()
        joined_s = max(0.0, at - process.started)
    return {
        "ready_s": ready_s,
        "joined_s": joined_s,
        "restore_s": float(restored["seconds"]) if restored else None,
        "records": int(restored["records"]) if restored else None,
        "bytes": int(restored["bytes"]) if restored else None,
    }


def timed_start(config: dict[str, Any], directory: Path, name: str) -> dict[str, Any]:
    """Start a process, time it to ready, stop it; its :func:`start_report`."""
    process = MonitorProcess(config, directory, name)
    try:
        ready_s = process.wait_ready(120.0)
    finally:
        process.stop()
    return start_report(process, ready_s)


def fill(config: dict[str, Any], directory: Path, name: str, expected: int) -> bool:
    """Run a process until it counted ``expected`` events, then stop it (it checkpoints)."""
    process = MonitorProcess(config, directory, name)
    try:
        deadline = time.monotonic() + 300.0
        while counted(process.port) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        return counted(process.port) >= expected
    finally:
        process.stop()


def measure_restore(
    config: dict[str, Any], messages: Sequence[RawMessage], partition_counts: Sequence[int]
) -> dict[str, Any]:
    """Ready and restore times of ``stream-monitor run`` for each partition count."""
    runs = []
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)

        def kafka(group: str, topic: str, reset: str) -> dict[str, Any]:
            settings = kafka_settings(
                broker.bootstrap_servers,
                group,
                (topic, "bench-restore-drift"),
                auto_offset_reset=reset,
            )
            return {**config, "kafka": settings}

        for partitions in partition_counts:
            topic = f"bench-restore-{partitions}"
            broker.create_topics([topic], partitions=partitions)
            send_messages(broker.bootstrap_servers, topic, messages, partitions)
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

"""``stream-monitor bench --broker --ingest-replicas 1,2``: the ingest stage, scaled out.

The row messages of the benchmark are produced once to a topic of the
embedded broker; then, for each replica count, that many ``stream-monitor run
--role ingest`` processes (a fresh consumer group each) read the whole topic:
decode, count into panes, publish partials, checkpoint, commit. Throughput is
the events they counted over the time from the first counted event to the
last, read from their ``/metrics``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml
from prometheus_client.parser import text_string_to_metric_families

from stream_monitor.config_file import config_from_dict
from stream_monitor.decode.batches import RawMessage, concat_batches
from stream_monitor.decode.decoder import Decoder
from stream_monitor.summaries.reference import build_reference, save_reference
from stream_monitor.tools.embedded import EmbeddedBroker, free_port

#: Events of each model that make its baseline file.
BASELINE_EVENTS = 5000


def counted(port: int) -> float:
    """Valid plus invalid events a replica counted (0 while it does not answer)."""
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


def with_baselines(
    config: dict[str, Any], messages: Sequence[RawMessage], directory: Path
) -> dict[str, Any]:
    """``config`` with a baseline file per model, built from the first messages."""
    parsed = config_from_dict(config)
    result = Decoder(parsed.models, parsed.fields, parsed.limits).decode(
        list(messages[: BASELINE_EVENTS * len(parsed.models)])
    )
    models = []
    for model_data, model in zip(config["models"], parsed.models, strict=True):
        batches = [b for b in result.batches if b.model == model.name]
        reference = build_reference(model, [concat_batches(batches)], source="bench")
        path = directory / f"{model.name}.baseline.json"
        save_reference(reference, path)
        models.append({**model_data, "reference": {"baseline": str(path)}})
    return {**config, "models": models}


def run_replicas(config_file: Path, replicas: int, expected: int, timeout_s: float) -> dict:
    """Start ``replicas`` ingest processes; time them from the first counted event to the last."""
    ports = [free_port() for _ in range(replicas)]
    processes = []
    for port in ports:
        data = yaml.safe_load(config_file.read_text())
        data["metrics"] = {"host": "127.0.0.1", "port": port}
        path = config_file.with_name(f"ingest-{port}.yaml")
        path.write_text(yaml.safe_dump(data))
        command = [sys.executable, "-m", "stream_monitor", "run", "--config", str(path)]
        processes.append(
            subprocess.Popen(
                [*command, "--role", "ingest"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    started = time.perf_counter()
    first = last = None
    before = started  # the last look that found nothing counted: the run began after it
    seen = 0.0
    try:
        deadline = started + timeout_s
        while seen < expected and time.perf_counter() < deadline:
            time.sleep(0.05)
            now_seen = sum(counted(port) for port in ports)
            now = time.perf_counter()
            if not now_seen:
                before = now
            elif first is None:
                first = before
            if now_seen > seen:
                seen, last = now_seen, now
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
    seconds = (last - first) if first is not None and last is not None else 0.0
    return {
        "replicas": replicas,
        "events": int(seen),
        "seconds": seconds,
        "events_per_s": seen / seconds if seconds > 0 else 0.0,
        "startup_s": (first - started) if first is not None else None,
        "complete": seen >= expected,
    }


def measure_ingest(
    config: dict[str, Any],
    messages: Sequence[RawMessage],
    replica_counts: Sequence[int],
    partitions: int = 4,
) -> dict[str, Any]:
    """Ingest throughput through the embedded broker for each replica count."""
    from confluent_kafka import Producer

    topic = "bench-scale-events"
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        broker.create_topics([topic], partitions=partitions)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 20})
        for index, message in enumerate(messages):
            while True:
                try:
                    producer.produce(topic, value=message.value, partition=index % partitions)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(60)
        data = with_baselines(config, messages, Path(tmp))
        runs = []
        for replicas in replica_counts:
            data["kafka"] = {
                "bootstrap_servers": broker.bootstrap_servers,
                "group_id": f"bench-ingest-{replicas}",
                "topics": {"events": topic, "drift_events": "bench-scale-drift"},
                "assignment_strategy": "range",
                "session_timeout_ms": 6000,
                "max_poll_interval_ms": 10000,
                "poll_timeout_s": 0.1,
            }
            data["evaluation_interval_s"] = 0.2
            config_file = Path(tmp) / f"ingest-{replicas}.yaml"
            config_file.write_text(yaml.safe_dump(orjson.loads(orjson.dumps(data))))
            runs.append(run_replicas(config_file, replicas, len(messages), 300.0))
    base = runs[0]["events_per_s"] or 1.0
    for run in runs:
        run["ratio_to_first"] = run["events_per_s"] / base
    return {"partitions": partitions, "runs": runs}

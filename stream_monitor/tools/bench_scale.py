"""``stream-monitor bench --broker --ingest-replicas 1,2``: the ingest stage, scaled out.

The row messages of the benchmark are produced once to a topic of the
embedded broker; then, for each replica count, that many ``stream-monitor run
--role ingest`` processes (a fresh consumer group each) read the whole topic:
decode, count into panes, publish partials, checkpoint, commit. Throughput is
the events they counted over the time from the first counted event to the
last, read from their ``/metrics``, with each replica's share of the events.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stream_monitor.config_file import config_from_dict
from stream_monitor.decode.batches import RawMessage, concat_batches
from stream_monitor.decode.decoder import Decoder
from stream_monitor.summaries.reference import build_reference, save_reference
from stream_monitor.tools.broker_runs import MonitorProcess, counted, kafka_settings, send_messages
from stream_monitor.tools.embedded import EmbeddedBroker

#: Events of each model that make its baseline file.
BASELINE_EVENTS = 5000
#: Runs of one replica count at most: a replica that joins the group after the others
#: read most of the backlog (their join completed first) counts less than half its share,
#: and the run measures fewer replicas than it names, so it is run again.
ATTEMPTS = 3


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


def run_replicas(
    config: dict[str, Any], directory: Path, replicas: int, expected: int, timeout_s: float
) -> dict[str, Any]:
    """Start ``replicas`` ingest processes; time them from the first counted event to the last."""
    processes = [
        MonitorProcess(config, directory, f"ingest-{replicas}-{number}", role="ingest")
        for number in range(replicas)
    ]
    started = time.perf_counter()
    first = last = None
    before = started  # the last look that found nothing counted: the run began after it
    seen = 0.0
    counts = [0.0] * replicas
    try:
        deadline = started + timeout_s
        while seen < expected and time.perf_counter() < deadline:
            time.sleep(0.05)
            counts = [counted(process.port) for process in processes]
            now_seen = sum(counts)
            now = time.perf_counter()
            if not now_seen:
                before = now
            elif first is None:
                first = before
            if now_seen > seen:
                seen, last = now_seen, now
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()
    seconds = (last - first) if first is not None and last is not None else 0.0
    return {
        "replicas": replicas,
        "events": int(seen),
        "seconds": seconds,
        "events_per_s": seen / seconds if seconds > 0 else 0.0,
        "startup_s": (first - started) if first is not None else None,
        "complete": seen >= expected,
        "shares": [count / seen if seen else 0.0 for count in counts],
    }


def measure_ingest(
    config: dict[str, Any],
    messages: Sequence[RawMessage],
    replica_counts: Sequence[int],
    partitions: int = 4,
) -> dict[str, Any]:
    """Ingest throughput through the embedded broker for each replica count."""
    topic = "bench-scale-events"
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        broker.create_topics([topic], partitions=partitions)
        send_messages(broker.bootstrap_servers, topic, messages, partitions)
        directory = Path(tmp)
        data = with_baselines(config, messages, directory)
        data["evaluation_interval_s"] = 0.2
        runs = []
        for replicas in replica_counts:
            for attempt in range(1, ATTEMPTS + 1):
                data["kafka"] = kafka_settings(
                    broker.bootstrap_servers,
                    f"bench-ingest-{replicas}-{attempt}",
                    (topic, "bench-scale-drift"),
                )
                run = run_replicas(data, directory, replicas, len(messages), 300.0)
                run["attempts"] = attempt
                if min(run["shares"]) >= 0.5 / replicas:
                    break
            runs.append(run)
    base = runs[0]["events_per_s"] or 1.0
    for run in runs:
        run["ratio_to_first"] = run["events_per_s"] / base
    return {"partitions": partitions, "runs": runs}

"""``stream-monitor demo``: embedded broker, drifting synthetic traffic, the monitor.

Everything runs in one process: the Tansu broker as a child process, a
synthetic inference service producing to ``inference-events``, the monitor
service consuming it, and a printer that reads ``drift-events`` like any
downstream consumer would.
"""

from __future__ import annotations

import heapq
import importlib.resources
import os
import random
import signal
import threading
import time

import orjson
from confluent_kafka import Consumer, Producer

from stream_monitor.config_file import load_config
from stream_monitor.engine import Engine
from stream_monitor.kafka.client_log import ClientLogSummary
from stream_monitor.kafka.service import MonitorService
from stream_monitor.kafka.settings import client_log
from stream_monitor.sinks.prometheus import MetricsPortError, serve_metrics
from stream_monitor.tools.drift_lines import DriftLines
from stream_monitor.tools.embedded import EmbeddedBroker
from stream_monitor.tools.synthetic import DRIFTING_FEATURES, SyntheticTraffic

EVENTS_PER_SECOND = 200
#: The price estimator's challenger version ``v2``: its share of the traffic, and how much
#: wider its errors are than the champion's (30%: a slightly worse model).
CHALLENGER_SHARE = 0.2
CHALLENGER_ERROR_SCALE = 1.3
TICK_S = 0.1


def produce_traffic(
    bootstrap: str, topics: tuple[str, str], stop: threading.Event, drift_after_s: float
) -> None:
    """Send both models' events at ``EVENTS_PER_SECOND`` each until ``stop``; drift later.

    The price estimator's labels are inline; the fraud detector's arrive on the
    labels topic 2 to 20 seconds later, out of order. A fifth of the price
    estimator's traffic goes to a challenger version ``v2`` with wider errors.
    """
    events_topic, labels_topic = topics
    summary = ClientLogSummary(client_log)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "logger": summary})
    traffic = SyntheticTraffic(seed=11)
    challenger = SyntheticTraffic(seed=12, version="v2")
    rng = random.Random(11)
    delayed: list[tuple[float, str, bytes]] = []
    started = time.monotonic()
    per_tick = int(EVENTS_PER_SECOND * TICK_S)
    while not stop.is_set():
        drifted = time.monotonic() - started >= drift_after_s
        now = time.time()
        for event in traffic.fraud(per_tick, now, drifted):
            label = {"event_id": event["event_id"], "model": event["model"]}
            label["label"], label["timestamp"] = event.pop("label"), now
            due = time.monotonic() + rng.uniform(2.0, 20.0)
            heapq.heappush(delayed, (due, str(event["event_id"]), orjson.dumps(label)))
            producer.produce(
                events_topic, key=str(event["event_id"]).encode(), value=orjson.dumps(event)
            )
        challenger_share = int(per_tick * CHALLENGER_SHARE)
        price = traffic.price(per_tick - challenger_share, now, drifted)
        price += challenger.price(challenger_share, now, drifted, CHALLENGER_ERROR_SCALE)
        for event in price:
            producer.produce(
                events_topic, key=str(event["event_id"]).encode(), value=orjson.dumps(event)
            )
        while delayed and delayed[0][0] <= time.monotonic():
            _, key, value = heapq.heappop(delayed)
            producer.produce(labels_topic, key=key.encode(), value=value)
        producer.poll(0)
        summary.flush()
        stop.wait(TICK_S)
    producer.flush(5)
    summary.flush(final=True)


def print_drift_events(bootstrap: str, topic: str, stop: threading.Event) -> None:
    """Read the drift-events topic and print readable lines: a transition in several
    windows as one line, flapping folded (:mod:`stream_monitor.tools.drift_lines`)."""
    summary = ClientLogSummary(client_log)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "stream-monitor-demo-printer",
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 6000,
            "logger": summary,
        }
    )
    consumer.subscribe([topic])
    lines = DriftLines(time.monotonic)
    try:
        while not stop.is_set():
            for message in consumer.consume(100, 0.25):
                value = message.value()
                if message.error() is None and value:
                    lines.add(orjson.loads(value))
            for line in lines.due():
                print(line, flush=True)
            summary.flush()
    finally:
        consumer.close()
        summary.flush(final=True)
        for line in lines.flush():
            print(line, flush=True)


def run_demo(seconds: float | None, port: int, drift_after_s: float) -> int:
    """Run the demo until Ctrl-C or ``seconds``."""
    stop = threading.Event()
    with EmbeddedBroker() as broker:
        broker.create_topics(["inference-events", "inference-labels"], partitions=3)
        broker.create_topics(["drift-events"])
        os.environ["STREAM_MONITOR_DEMO_BROKER"] = broker.bootstrap_servers
        os.environ["STREAM_MONITOR_DEMO_PORT"] = str(port)  # 0: any free port, printed below
        config_file = importlib.resources.files("stream_monitor.tools").joinpath("demo_config.yaml")
        with importlib.resources.as_file(config_file) as path:
            config = load_config(path)
        service = MonitorService(config, Engine(config))
        metrics, hint = config.metrics, "use --port (0: any free port)"
        try:
            server = serve_metrics(
                service.snapshot, metrics.host, metrics.port, service.ready, hint
            )
        except MetricsPortError:
            service.connection.close()
            raise
        drifting = "; ".join(f"{m}: {', '.join(f)}" for m, f in DRIFTING_FEATURES.items())
        print(
            f"stream-monitor demo: broker {broker.bootstrap_servers}, "
            f"metrics http://{config.metrics.host}:{server.port}/metrics\n"
            f"two models at {EVENTS_PER_SECOND} events/s each; after {drift_after_s:g}s "
            f"the traffic drifts ({drifting}, and the scores). "
            f"Windows {', '.join(config.windows.sizes)}; Ctrl-C stops.",
            flush=True,
        )
        threads = [
            threading.Thread(target=service.run, args=(stop,), name="monitor"),
            threading.Thread(
                target=produce_traffic,
                args=(
                    broker.bootstrap_servers,
                    ("inference-events", "inference-labels"),
                    stop,
                    drift_after_s,
                ),
                name="traffic",
            ),
            threading.Thread(
                target=print_drift_events,
                args=(broker.bootstrap_servers, "drift-events", stop),
                name="printer",
            ),
        ]
        for thread in threads:
            thread.start()
        handlers = {
            signum: signal.signal(signum, lambda *_: stop.set())
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            stop.wait(seconds)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            server.stop()
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
    print("stream-monitor demo: stopped", flush=True)
    return 0

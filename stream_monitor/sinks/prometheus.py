"""Prometheus exposition: a collector that reads the engine's last snapshot.

No metric is touched per event: the consumer loop publishes an immutable
:class:`~stream_monitor.engine.Snapshot` after each evaluation and
:meth:`SnapshotCollector.collect` turns it into fresh metric families on every
scrape, so series of retired model versions simply stop appearing.

``/metrics`` also serves :class:`IdentityCollector` (the monitor's build and each
live model version's reference and metadata) and prometheus-client's process,
platform and garbage-collector metrics. ``replay --metrics-out`` writes the
snapshot's metrics alone, so that its file depends on the input events only.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from stream_monitor import __version__
from stream_monitor.evaluate import LEVELS
from stream_monitor.metric_names import QUALITY_METRICS
from stream_monitor.model_metadata import METADATA_KEYS
from stream_monitor.sinks.estimate_metrics import estimate_families
from stream_monitor.sinks.version_metrics import version_families
from stream_monitor.snapshot import Snapshot

WINDOW_LABELS = ["model", "version", "window"]
FEATURE_LABELS = [*WINDOW_LABELS, "feature"]


class SnapshotCollector(Collector):
    """Builds the metric families (README, Prometheus metrics) from ``get_snapshot()``."""

    def __init__(self, get_snapshot: Callable[[], Snapshot]) -> None:
        self.get_snapshot = get_snapshot

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family of the current snapshot."""
        snapshot = self.get_snapshot()
        yield from _counters(snapshot)
        yield from _windows(snapshot)
        yield from _quality(snapshot)
        yield from estimate_families(snapshot)
        yield from _confusion(snapshot)
        yield from _latency(snapshot)
        yield from _severities(snapshot)
        yield from _kafka(snapshot)
        yield from version_families(snapshot)


def _counters(snapshot: Snapshot) -> Iterable[Metric]:
    events = CounterMetricFamily(
        "stream_monitor_events", "Valid inference events consumed.", labels=["model", "version"]
    )
    for (model, version), count in sorted(snapshot.events_total.items()):
        events.add_metric([model, version], count)
    invalid = CounterMetricFamily(
        "stream_monitor_invalid_events", "Events not used, by reason.", labels=["reason"]
    )
    for reason, count in sorted(snapshot.invalid_total.items()):
        invalid.add_metric([reason], count)
    drift = CounterMetricFamily(
        "stream_monitor_drift_events",
        "Drift events emitted (severity transitions).",
        labels=["model", "version", "metric", "severity"],
    )
    for labels, count in sorted(snapshot.drift_events_total.items()):
        drift.add_metric(list(labels), count)
    skipped = CounterMetricFamily(
        "stream_monitor_windows_skipped",
        "Window ends never judged: judging fell more than windows.max_unjudged_s behind.",
        labels=["model", "version"],
    )
    for (model, version), count in sorted(snapshot.windows_skipped_total.items()):
        skipped.add_metric([model, version], count)
    return events, invalid, drift, skipped


def _windows(snapshot: Snapshot) -> Iterable[Metric]:
    def gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, documentation, labels=labels)

    window_events = gauge(
        "stream_monitor_window_events", "Events in the sliding window.", WINDOW_LABELS
    )
    throughput = gauge(
        "stream_monitor_throughput_events_per_second",
        "Events per second of event time in the window.",
        WINDOW_LABELS,
    )
    psi = gauge(
        "stream_monitor_psi", "Population stability index of the prediction.", WINDOW_LABELS
    )
    csi = gauge(
        "stream_monitor_csi", "Characteristic stability index of a feature.", FEATURE_LABELS
    )
    nulls = gauge(
        "stream_monitor_feature_null_ratio", "Share of null values of a feature.", FEATURE_LABELS
    )
    new = gauge(
        "stream_monitor_new_category_ratio",
        "Share of a categorical feature's values never seen in the reference.",
        FEATURE_LABELS,
    )
    for sample in snapshot.windows:
        labels = [sample.model, sample.version, sample.window]
        stats = sample.stats
        window_events.add_metric(labels, stats.events)
        throughput.add_metric(labels, sample.throughput_per_s)
        psi.add_metric(labels, stats.psi)
        for feature, value in stats.csi.items():
            csi.add_metric([*labels, feature], value)
        for feature, value in stats.null_ratio.items():
            nulls.add_metric([*labels, feature], value)
        for feature, value in stats.new_category_ratio.items():
            new.add_metric([*labels, feature], value)
    return window_events, throughput, psi, csi, nulls, new


def _quality(snapshot: Snapshot) -> Iterable[Metric]:
    labeled = GaugeMetricFamily(
        "stream_monitor_labeled_events", "Labeled events in the window.", labels=WINDOW_LABELS
    )
    gauges = {
        name: GaugeMetricFamily(f"stream_monitor_{name}", doc, labels=WINDOW_LABELS)
        for name, doc in QUALITY_METRICS.items()
    }
    detections = GaugeMetricFamily(
        "stream_monitor_concept_drift_detections",
        "Concept-drift detections raised on the error stream within the window.",
        labels=WINDOW_LABELS,
    )
    for sample in snapshot.windows:
        labels = [sample.model, sample.version, sample.window]
        labeled.add_metric(labels, sample.quality.get("labeled", 0.0))
        detections.add_metric(labels, sample.detections)
        for name, gauge in gauges.items():
            value = sample.quality.get(name)
            if value is not None and math.isfinite(value):
                gauge.add_metric(labels, value)
    joins = CounterMetricFamily(
        "stream_monitor_label_joins",
        "Delayed labels by outcome: joined, late (pane gone), expired, orphan, evicted.",
        labels=["outcome"],
    )
    pending = GaugeMetricFamily(
        "stream_monitor_label_join_pending",
        "Predictions waiting for their label, and labels waiting for their prediction.",
        labels=["kind"],
    )
    for outcome, count in sorted(snapshot.label_joins.items()):
        if outcome.startswith("pending_"):
            pending.add_metric([outcome.removeprefix("pending_")], count)
        else:
            joins.add_metric([outcome], count)
    return [labeled, detections, joins, pending, *gauges.values()]


def _confusion(snapshot: Snapshot) -> Iterable[Metric]:
    matrix = GaugeMetricFamily(
        "stream_monitor_confusion_matrix",
        "Labeled events in the window by actual and predicted class (binary: 0/1 at the "
        "threshold; multiclass: the configured classes and other).",
        labels=[*WINDOW_LABELS, "actual", "predicted"],
    )
    class_labels = [*WINDOW_LABELS, "class"]
    precision = GaugeMetricFamily(
        "stream_monitor_class_precision",
        "Precision of one class of a multiclass model: hits over predictions of the class.",
        labels=class_labels,
    )
    recall = GaugeMetricFamily(
        "stream_monitor_class_recall",
        "Recall of one class of a multiclass model: hits over labels of the class.",
        labels=class_labels,
    )
    for sample in snapshot.windows:
        confusion = sample.confusion
        if confusion is None:
            continue
        labels = [sample.model, sample.version, sample.window]
        for actual, row in zip(confusion.classes, confusion.counts, strict=True):
            for predicted, count in zip(confusion.classes, row, strict=True):
                matrix.add_metric([*labels, actual, predicted], count)
        if not any(map(any, confusion.counts)):
            continue  # no labels: every class's precision and recall is undefined
        for cls, value in confusion.precision.items():
            precision.add_metric([*labels, cls], value)
        for cls, value in confusion.recall.items():
            recall.add_metric([*labels, cls], value)
    return matrix, precision, recall


def _latency(snapshot: Snapshot) -> Iterable[Metric]:
    # A summary (quantiles, count, sum) of the window: Prometheus reserves the
    # ``quantile`` label for summaries. Windows do not add up across pods; use the
    # histogram below for that.
    name = "stream_monitor_latency_quantile_seconds"
    quantiles = Metric(
        name,
        "Inference latency quantiles in the window (log-bucket sketch, 1% relative error).",
        "summary",
    )
    for sample in snapshot.windows:
        labels = {"model": sample.model, "version": sample.version, "window": sample.window}
        for q, value in sample.latency.quantiles_s.items():
            if math.isfinite(value):
                quantiles.add_sample(name, {**labels, "quantile": str(q)}, value)
        quantiles.add_sample(f"{name}_count", labels, sample.latency.count)
        quantiles.add_sample(f"{name}_sum", labels, sample.latency.sum_s)
    histogram = HistogramMetricFamily(
        "stream_monitor_inference_latency_seconds",
        "Inference latency of every event since the monitor started.",
        labels=["model", "version"],
    )
    for (model, version), counts in sorted(snapshot.latency_histograms.items()):
        buckets = [(floatToGoString(bound), count) for bound, count in counts.buckets]
        histogram.add_metric([model, version], buckets, counts.sum_s)
    return quantiles, histogram


def _severities(snapshot: Snapshot) -> Iterable[Metric]:
    labels = [*WINDOW_LABELS, "metric", "feature"]
    status = GaugeMetricFamily(
        "stream_monitor_drift_status", "Drift severity: 0 ok, 1 warn, 2 alert.", labels=labels
    )
    for key, severity in snapshot.severities.items():
        status.add_metric(
            [key.model, key.version, key.window, key.metric, key.feature or ""], LEVELS[severity]
        )
    thresholds = GaugeMetricFamily(
        "stream_monitor_drift_threshold",
        "The warn and alert levels a drift metric is judged against.",
        labels=[*labels, "level"],
    )
    for key, (warn, alert) in snapshot.thresholds.items():
        base = [key.model, key.version, key.window, key.metric, key.feature or ""]
        thresholds.add_metric([*base, "warn"], warn)
        thresholds.add_metric([*base, "alert"], alert)
    critical = GaugeMetricFamily(
        "stream_monitor_drift_critical_value",
        "The value a drift metric must pass to alert apart from sampling noise at this "
        "window's size (PSI, CSI and quality metrics).",
        labels=labels,
    )
    for key, value in snapshot.critical_values.items():
        critical.add_metric(
            [key.model, key.version, key.window, key.metric, key.feature or ""], value
        )
    return status, thresholds, critical


def _kafka(snapshot: Snapshot) -> Iterable[Metric]:
    lag = GaugeMetricFamily(
        "stream_monitor_consumer_lag",
        "Messages between the consumer position and the partition's high watermark.",
        labels=["topic", "partition"],
    )
    for (topic, partition), value in sorted(snapshot.consumer_lag.items()):
        lag.add_metric([topic, str(partition)], value)
    failures = CounterMetricFamily(
        "stream_monitor_dead_letter_failures",
        "Failed deliveries of dead letters (every attempt), by Kafka error name.",
        labels=["reason"],
    )
    for reason, count in sorted(snapshot.dead_letter_failures.items()):
        failures.add_metric([reason], count)
    dead_dropped = CounterMetricFamily(
        "stream_monitor_dead_letters_dropped",
        "Dead letters given up on (retries spent, or refused for good).",
        value=snapshot.dead_letters_dropped,
    )
    drift_dropped = CounterMetricFamily(
        "stream_monitor_drift_events_dropped",
        "Drift events dropped because Kafka can never accept them (too large, invalid).",
        value=snapshot.drift_events_dropped,
    )
    families: list[Metric] = [lag, failures, dead_dropped, drift_dropped]
    if snapshot.broker_up is not None:
        up = GaugeMetricFamily(
            "stream_monitor_up", "1 while the Kafka broker is reachable, else 0."
        )
        up.add_metric([], 1.0 if snapshot.broker_up else 0.0)
        families.append(up)
    return families


class IdentityCollector(Collector):
    """``stream_monitor_build_info`` and ``stream_monitor_model_info``: what runs, on what.

    Both are info gauges (value 1) to join on: ``stream_monitor_model_info`` has one
    series per live model version, labelled with its reference and every metadata
    key (empty where the config leaves a key out, which Prometheus drops).
    """

    def __init__(self, get_snapshot: Callable[[], Snapshot], version: str = __version__) -> None:
        self.get_snapshot = get_snapshot
        self.version = version

    def collect(self) -> Iterator[Metric]:
        """Yield the build and model info families."""
        build = GaugeMetricFamily(
            "stream_monitor_build_info", "The monitor's package version.", labels=["version"]
        )
        build.add_metric([self.version], 1.0)
        yield build
        info = GaugeMetricFamily(
            "stream_monitor_model_info",
            "A live model version: its reference (baseline digest or warmup:<n>) and metadata.",
            labels=["model", "version", "reference", *METADATA_KEYS],
        )
        for item in self.get_snapshot().model_info:
            metadata = [item.metadata.get(key, "") for key in METADATA_KEYS]
            info.add_metric([item.model, item.version, item.reference, *metadata], 1.0)
        yield info


def build_registry(get_snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A fresh registry holding only the snapshot collector (what ``--metrics-out`` writes)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(get_snapshot))
    return registry


def build_service_registry(get_snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """What ``/metrics`` serves: the snapshot, the identity, and the process's own metrics.

    The process (CPU, memory, open files), platform and garbage-collector
    collectors are prometheus-client's default ones, registered on this registry
    as they are on its global one.
    """
    registry = build_registry(get_snapshot)
    registry.register(IdentityCollector(get_snapshot))
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus text format (what ``--metrics-out`` writes)."""
    return generate_latest(registry)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class MetricsPortError(RuntimeError):
    """The /metrics address could not be bound (the port is in use, or not allowed)."""


class MetricsServer:
    """Serves ``/metrics``, ``/healthz`` (process alive) and ``/readyz`` (ready to work).

    Raises :class:`MetricsPortError` when the address cannot be bound.
    """

    def __init__(
        self, registry: CollectorRegistry, host: str, port: int, ready: Callable[[], bool]
    ) -> None:
        metrics_app = make_wsgi_app(registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/healthz":
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"ok\n"]
            if path == "/readyz":
                ok = ready()
                start_response(
                    "200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")]
                )
                return [b"ready\n" if ok else b"not ready\n"]
            return metrics_app(environ, start_response)

        try:
            self._server = make_server(
                host, port, app, _ThreadingWSGIServer, handler_class=_QuietHandler
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise MetricsPortError(f"cannot serve /metrics on {host}:{port}: {reason}") from None
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    def start(self) -> MetricsServer:
        """Start serving in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def serve_metrics(
    snapshot: Callable[[], Snapshot], host: str, port: int, ready: Callable[[], bool], hint: str
) -> MetricsServer:
    """Serve ``/metrics`` for ``snapshot``, started.

    An address that cannot be bound raises :class:`MetricsPortError` ending
    with ``hint`` (which setting or flag to change).
    """
    try:
        return MetricsServer(build_service_registry(snapshot), host, port, ready).start()
    except MetricsPortError as exc:
        raise MetricsPortError(f"{exc}; {hint}") from None

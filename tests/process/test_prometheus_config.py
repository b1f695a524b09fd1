"""The alert rules and the Grafana dashboard against a real Prometheus server.

A synthetic exporter serves every metric of the contract (SPEC section 5), with one model
(``fraud-detector``) drifting in every way the rules watch and one (``price-estimator``)
healthy. Prometheus scrapes it every second with ``config/prometheus/alerts.yaml`` loaded, so
the tests check that every PromQL expression is accepted *and* matches the series the monitor
exports, that every rule evaluates without error, and that each alert goes pending on the
drifting model with its annotations filled in.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import yaml
from prometheus_client import GC_COLLECTOR, PROCESS_COLLECTOR
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from stream_monitor.metric_names import DROP_METRICS, ESTIMATED_METRICS, RISE_METRICS
from stream_monitor.sinks.prometheus import IdentityCollector
from stream_monitor.sinks.version_metrics import version_families
from stream_monitor.snapshot import ModelInfo, Snapshot, VersionComparison
from tests.conftest import ROOT
from tests.dashboard import (
    data_panels,
    iter_panels,
    label_values_to_promql,
    load_dashboard,
    substitute,
    variable_query,
)
from tests.exporters import SELECTED, PodSeries, RegistryExporter
from tests.prometheus_server import PrometheusError, PrometheusServer, require_prometheus

ALERTS = ROOT / "config" / "prometheus" / "alerts.yaml"

# The exported metric names: SPEC section 5 plus our extensions.
WINDOW_GAUGES = [
    "window_events",
    "psi",
    "labeled_events",
    *DROP_METRICS,
    *RISE_METRICS,
    "throughput_events_per_second",
]
# Exported only for models that compare versions (a champion and a challenger).
VERSION_METRICS = (
    "stream_monitor_version_traffic_share",
    "stream_monitor_version_psi",
    "stream_monitor_version_csi",
    "stream_monitor_version_quality_delta",
)
CHALLENGER = "4"

KNOWN_METRICS = {f"stream_monitor_{name}" for name in WINDOW_GAUGES} | {
    "stream_monitor_events_total",
    "stream_monitor_invalid_events_total",
    "stream_monitor_csi",
    "stream_monitor_feature_null_ratio",
    "stream_monitor_new_category_ratio",
    "stream_monitor_drift_status",
    "stream_monitor_drift_threshold",
    "stream_monitor_latency_quantile_seconds",
    "stream_monitor_inference_latency_seconds_bucket",
    "stream_monitor_inference_latency_seconds_sum",
    "stream_monitor_inference_latency_seconds_count",
    "stream_monitor_drift_events_total",
    "stream_monitor_windows_skipped_total",
    "stream_monitor_consumer_lag",
    "stream_monitor_up",
    "stream_monitor_dead_letters_dropped_total",
    "stream_monitor_drift_events_dropped_total",
    "stream_monitor_drift_critical_value",
    "stream_monitor_confusion_matrix",
    "stream_monitor_class_precision",
    "stream_monitor_class_recall",
    "stream_monitor_model_info",
    "stream_monitor_build_info",
}
KNOWN_METRICS |= set(VERSION_METRICS)
# The label-free estimate of binary models whose reference has labels.
KNOWN_METRICS |= {f"stream_monitor_estimated_{name}" for name in ESTIMATED_METRICS}
KNOWN_METRICS |= {"stream_monitor_estimation_error"}

# Concrete values for the dashboard's variables (multi-value variables expand to a regex).
GRAFANA_VARIABLES = {
    "model": "fraud-detector|price-estimator",
    "version": ".*",
    "window": "1h",
    "feature": ".*",
    "namespace": SELECTED.namespace,
    "workload": "fraud-api",
    "pod": SELECTED.name,
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}

DRIFTING, HEALTHY, RETIRED = "fraud-detector", "price-estimator", "legacy-scorer"
VERSION = "3"
WINDOWS = ("5m", "1h")
FEATURES = ("amount", "merchant_category")
# The metadata blocks: the drifting model's inference service runs the SELECTED pod.
METADATA = (
    (
        DRIFTING,
        {"owner": "risk", "kubernetes_namespace": "serving", "kubernetes_workload": "fraud-api"},
    ),
    (HEALTHY, {"owner": "pricing"}),
)
# Alerts that must stay silent while the monitor is scraped and reports stream_monitor_up.
SILENT_ALERTS = {"StreamMonitorDown", "StreamMonitorAbsent"}
# The classes of each model's confusion matrix: the drifting model is binary, the healthy one
# stands in for a multiclass model (per-class precision and recall).
CLASSES = {DRIFTING: ("0", "1"), HEALTHY: ("low", "high", "other")}


# ---------------------------------------------------------------------------- inputs


def load_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title/refId, expression) of every panel target."""
    return [
        (f"{panel['title']}/{target.get('refId', '?')}", target["expr"])
        for panel in data_panels(load_dashboard())
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def dashboard_extra_queries() -> list[tuple[str, str]]:
    """Template variable queries and annotation queries."""
    dashboard = load_dashboard()
    queries = [
        (f"variable {v['name']}", label_values_to_promql(variable_query(v)))
        for v in dashboard["templating"]["list"]
        if v.get("type") == "query"
    ]
    queries += [
        (f"annotation {a['name']}", a["expr"])
        for a in dashboard.get("annotations", {}).get("list", [])
        if a.get("expr")
    ]
    return queries


def all_expressions() -> list[str]:
    return (
        [expr for _, expr in dashboard_targets()]
        + [expr for _, expr in dashboard_extra_queries()]
        + [rule["expr"] for rule in load_rules()]
    )


# ---------------------------------------------------------------------------- exporter


class SyntheticMonitor:
    """Builds the metric families a drifting and a healthy model would export."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        t = time.monotonic() - self.started
        wl = ["model", "version", "window"]
        gauges = {
            name: GaugeMetricFamily(f"stream_monitor_{name}", name, labels=wl)
            for name in WINDOW_GAUGES
        }
        csi = GaugeMetricFamily("stream_monitor_csi", "csi", labels=[*wl, "feature"])
        null_ratio = GaugeMetricFamily(
            "stream_monitor_feature_null_ratio", "null", labels=[*wl, "feature"]
        )
        new_cat = GaugeMetricFamily(
            "stream_monitor_new_category_ratio", "new", labels=[*wl, "feature"]
        )
        status = GaugeMetricFamily(
            "stream_monitor_drift_status", "status", labels=[*wl, "metric", "feature"]
        )
        threshold = GaugeMetricFamily(
            "stream_monitor_drift_threshold", "thr", labels=[*wl, "metric", "feature", "level"]
        )
        quantiles = GaugeMetricFamily(
            "stream_monitor_latency_quantile_seconds", "q", labels=[*wl, "quantile"]
        )
        critical = GaugeMetricFamily(
            "stream_monitor_drift_critical_value", "crit", labels=[*wl, "metric", "feature"]
        )
        confusion = GaugeMetricFamily(
            "stream_monitor_confusion_matrix", "cm", labels=[*wl, "actual", "predicted"]
        )
        per_class = [
            GaugeMetricFamily(f"stream_monitor_class_{name}", name, labels=[*wl, "class"])
            for name in ("precision", "recall")
        ]
        estimated = {
            name: GaugeMetricFamily(f"stream_monitor_estimated_{name}", name, labels=wl)
            for name in ESTIMATED_METRICS
        }
        error = GaugeMetricFamily("stream_monitor_estimation_error", "e", labels=[*wl, "metric"])
        for model in (DRIFTING, HEALTHY):
            drifting = model == DRIFTING
            for window in WINDOWS:
                key = [model, VERSION, window]
                for name in WINDOW_GAUGES:
                    value = {"window_events": 5000, "psi": 0.4 if drifting else 0.02}.get(name, 0.7)
                    gauges[name].add_metric(key, value)
                status.add_metric([*key, "psi", ""], 2 if drifting else 0)
                status.add_metric([*key, "auc", ""], 2 if drifting else 0)
                status.add_metric([*key, "concept_drift", ""], 2 if drifting else 0)
                for feature in FEATURES:
                    drift = 0.5 if feature == "amount" else 0.12
                    csi.add_metric([*key, feature], drift if drifting else 0.01)
                    null_ratio.add_metric([*key, feature], 0.3 if drifting else 0.0)
                    new_cat.add_metric([*key, feature], 0.01)
                    level = (2 if feature == "amount" else 1) if drifting else 0
                    status.add_metric([*key, "csi", feature], level)
                    status.add_metric([*key, "null_ratio", feature], 2 if drifting else 0)
                    for metric in ("csi", "null_ratio"):
                        threshold.add_metric([*key, metric, feature, "warn"], 0.1)
                        threshold.add_metric([*key, metric, feature, "alert"], 0.25)
                    critical.add_metric([*key, "csi", feature], 0.03)
                critical.add_metric([*key, "psi", ""], 0.03)
                threshold.add_metric([*key, "psi", "", "warn"], 0.1)
                threshold.add_metric([*key, "psi", "", "alert"], 0.25)
                for q, value in (("0.5", 0.05), ("0.9", 0.2), ("0.99", 0.8 if drifting else 0.1)):
                    quantiles.add_metric([*key, q], value)
                if drifting:  # the binary model: its label-free estimate and its error
                    for name, family in estimated.items():
                        family.add_metric(key, 0.6)
                        error.add_metric([*key, name], -0.1)
                    for level, line in (("warn", 0.05), ("alert", 0.1)):
                        threshold.add_metric([*key, "estimation_error", "auc", level], line)
                classes = CLASSES[model]
                for actual in classes:
                    for predicted in classes:
                        count = 100 if actual == predicted else 10
                        confusion.add_metric([*key, actual, predicted], count)
                    if len(classes) > 2:
                        for family in per_class:
                            family.add_metric([*key, actual], 0.9)
        yield from gauges.values()
        yield from (csi, null_ratio, new_cat, status, threshold, critical, quantiles, confusion)
        yield from per_class
        yield from (*estimated.values(), error)

        events = CounterMetricFamily("stream_monitor_events", "e", labels=["model", "version"])
        events.add_metric([DRIFTING, VERSION], 50 * t)
        events.add_metric([HEALTHY, VERSION], 50 * t)
        events.add_metric([RETIRED, "1"], 1000)  # no new events: StreamMonitorNoEvents
        yield events
        invalid = CounterMetricFamily("stream_monitor_invalid_events", "i", labels=["reason"])
        invalid.add_metric(["malformed_json"], 10 * t)
        invalid.add_metric(["unknown_model"], 1 * t)
        yield invalid
        drift_events = CounterMetricFamily(
            "stream_monitor_drift_events", "d", labels=["model", "version", "metric", "severity"]
        )
        drift_events.add_metric([DRIFTING, VERSION, "psi", "alert"], 1 + int(t / 5))
        yield drift_events
        skipped = CounterMetricFamily(
            "stream_monitor_windows_skipped", "s", labels=["model", "version"]
        )
        skipped.add_metric([DRIFTING, VERSION], 2 * t)
        skipped.add_metric([HEALTHY, VERSION], 0)
        yield skipped
        yield CounterMetricFamily("stream_monitor_dead_letters_dropped", "dl", value=int(t))
        yield CounterMetricFamily("stream_monitor_drift_events_dropped", "dd", value=int(t / 5))

        latency = HistogramMetricFamily(
            "stream_monitor_inference_latency_seconds", "l", labels=["model", "version"]
        )
        for model, slow_share in ((DRIFTING, 0.2), (HEALTHY, 0.0)):
            n = 100 * t
            buckets = [
                ("0.05", n * 0.5),
                ("0.25", n * (1 - slow_share)),
                ("0.5", n * (1 - slow_share)),
                ("1.0", n),
                ("+Inf", n),
            ]
            latency.add_metric([model, VERSION], buckets=buckets, sum_value=n * 0.2)
        yield latency

        lag = GaugeMetricFamily("stream_monitor_consumer_lag", "lag", labels=["topic", "partition"])
        lag.add_metric(["inference-events", "0"], 200_000 + 100 * t)
        lag.add_metric(["inference-events", "1"], 10)
        yield lag
        yield GaugeMetricFamily("stream_monitor_up", "broker reachable", value=0)


class VersionFamilies:
    """The champion-against-challenger gauges of one snapshot, as the monitor exports them."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        return version_families(self.snapshot)


def monitor_registry() -> CollectorRegistry:
    """The synthetic monitor, its identity and process metrics, and the cluster's pod series."""
    snapshot = Snapshot(
        model_info=tuple(
            ModelInfo(model, VERSION, "warmup:1000", metadata) for model, metadata in METADATA
        ),
        version_comparisons=tuple(
            VersionComparison(
                DRIFTING, CHALLENGER, VERSION, window, 0.3, {"amount": 0.2}, {"auc": -0.04}
            )
            for window in WINDOWS
        ),
        traffic_shares={
            (DRIFTING, version, window): share
            for window in WINDOWS
            for version, share in ((VERSION, 0.8), (CHALLENGER, 0.2))
        },
    )
    registry = CollectorRegistry()
    versions = VersionFamilies(snapshot)
    collectors = (SyntheticMonitor(), IdentityCollector(lambda: snapshot), PodSeries(), versions)
    for collector in collectors:
        registry.register(collector)
    for collector in (PROCESS_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Prometheus scraping the synthetic monitor, with the alert rules loaded."""
    require_prometheus()
    workdir = tmp_path_factory.mktemp("prometheus")
    with (
        RegistryExporter(monitor_registry()) as exporter,
        PrometheusServer(workdir, targets=[exporter.target], rule_files=[ALERTS]) as server,
    ):
        # rate() and deriv() need two samples; histogram_quantile needs two of each bucket.
        server.wait_for("rate(stream_monitor_inference_latency_seconds_bucket[1m])")
        server.wait_for("deriv(stream_monitor_consumer_lag[1m])")
        yield server


# ---------------------------------------------------------------------------- rules


def test_promtool_check_rules() -> None:
    promtool = require_prometheus("promtool")["promtool"]
    done = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in done.stdout


def test_every_rule_has_for_severity_and_annotations() -> None:
    rules = load_rules()
    assert len(rules) >= 10
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name}: no 'for:'"
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), name
        text = annotations["summary"] + annotations["description"]
        expr = rule["expr"]
        windowed = re.search(
            r"stream_monitor_(psi|csi|drift_status|latency_quantile_seconds)\b", expr
        )
        if windowed:
            for label in ("model", "version", "window"):
                assert f"$labels.{label}" in text, f"{name}: annotations do not name the {label}"
        if re.search(r"stream_monitor_(csi|drift_status)\b", expr) and 'metric="psi"' not in expr:
            assert "$labels.feature" in text, f"{name}: annotations do not name the feature"


def test_rules_cover_the_issue() -> None:
    exprs = {rule["alert"]: " ".join(rule["expr"].split()) for rule in load_rules()}
    joined = "\n".join(exprs.values())
    assert 'stream_monitor_drift_status{metric="psi"} == 2' in joined
    assert 'stream_monitor_drift_status{metric="csi"} == 2' in joined
    assert re.search(r'stream_monitor_drift_status\{metric=~"[^"]*\bauc\b[^"]*\brmse\b', joined)
    assert 'stream_monitor_latency_quantile_seconds{quantile="0.99"} >' in joined
    assert "histogram_quantile(0.99," in joined
    assert "rate(stream_monitor_invalid_events_total[5m])" in joined
    assert "deriv(stream_monitor_consumer_lag[15m]) > 0" in joined
    assert 'up{job=~".*stream-monitor.*"} == 0' in joined
    assert "absent(stream_monitor_up)" in joined
    assert "stream_monitor_up == 0" in joined


def test_rules_evaluate_without_errors(prometheus: PrometheusServer) -> None:
    deadline = time.monotonic() + 30
    while True:
        groups = prometheus.api("rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule.get("health") != "unknown" for rule in rules):
            break
        assert time.monotonic() < deadline, f"rules never evaluated: {rules}"
        time.sleep(0.5)
    assert len(rules) == len(load_rules())
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not broken


def test_each_alert_goes_pending_on_the_drifting_model(prometheus: PrometheusServer) -> None:
    expected = {rule["alert"] for rule in load_rules()} - SILENT_ALERTS
    deadline = time.monotonic() + 45
    while True:
        alerts = prometheus.api("alerts")["data"]["alerts"]
        active = {alert["labels"]["alertname"] for alert in alerts}
        if expected <= active or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(expected - active) == []
    assert not active & SILENT_ALERTS
    assert not [a for a in alerts if a["labels"].get("model") == HEALTHY], "healthy model alerted"
    for alert in alerts:
        labels, annotations = alert["labels"], alert["annotations"]
        text = annotations["summary"] + " " + annotations["description"]
        assert "<no value>" not in text and "{{" not in text, text
        for label in ("model", "version", "window", "feature"):
            if labels.get(label):
                assert labels[label] in text, f"{labels['alertname']}: {label} not in {text!r}"
    by_name = {alert["labels"]["alertname"]: alert for alert in alerts}
    assert by_name["StreamMonitorFeatureDrift"]["labels"]["feature"] == "amount"
    assert float(by_name["StreamMonitorPredictionDrift"]["value"]) == pytest.approx(0.4)


# ---------------------------------------------------------------------------- dashboard


def test_dashboard_structure() -> None:
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("model", "version", "window"):
        query = variable_query(variables[name])
        assert query.startswith("label_values(stream_monitor_window_events"), query
        assert query.rstrip(" )").endswith(name), query
    panels = data_panels(dashboard)
    ids = [panel["id"] for panel in iter_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        title = panel.get("title")
        assert title, panel
        assert panel.get("datasource") == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel.get("targets"), f"{title}: no targets"
        for target in panel["targets"]:
            assert target.get("expr"), f"{title}: empty target"
            assert target.get("datasource", {}).get("uid") == "${datasource}", title
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, title


def test_dashboard_shows_every_metric_and_the_thresholds() -> None:
    exprs = [expr for _, expr in dashboard_targets()]
    joined = "\n".join(exprs)
    for name in sorted(
        KNOWN_METRICS
        - {
            "stream_monitor_inference_latency_seconds_sum",
            "stream_monitor_inference_latency_seconds_count",
        }
    ):
        assert re.search(rf"\b{name}\b", joined), f"the dashboard never shows {name}"
    assert "histogram_quantile(0.99" in joined
    panels = {panel["title"]: panel for panel in data_panels(load_dashboard())}
    for title, metric in (
        ("Prediction drift (PSI)", "psi"),
        ("Feature drift (CSI) per feature", "csi"),
    ):
        panel_exprs = " ".join(t["expr"] for t in panels[title]["targets"])
        assert "stream_monitor_drift_threshold{" in panel_exprs, title
        assert f'metric="{metric}"' in panel_exprs, title
        styled = {o["matcher"]["options"] for o in panels[title]["fieldConfig"]["overrides"]}
        assert styled == {"warn threshold", "alert threshold"}, title
    ranked = panels["Features ranked by CSI"]
    assert ranked["type"] == "table"
    assert ranked["targets"][0]["instant"] is True
    assert "sort_desc(stream_monitor_csi" in ranked["targets"][0]["expr"]


def test_only_known_metric_names_are_queried() -> None:
    used = set()
    for expr in all_expressions():
        used |= set(re.findall(r"\bstream_monitor_[a-z0-9_]+", expr))
    assert sorted(used - KNOWN_METRICS) == []


@pytest.mark.parametrize(
    "expr", [rule["expr"] for rule in load_rules()], ids=[r["alert"] for r in load_rules()]
)
def test_rule_expression_is_accepted(prometheus: PrometheusServer, expr: str) -> None:
    answer = prometheus.query(expr)
    assert answer["status"] == "success", answer


@pytest.mark.parametrize(
    ("where", "expr"), dashboard_targets(), ids=[where for where, _ in dashboard_targets()]
)
def test_dashboard_query_returns_data(prometheus: PrometheusServer, where: str, expr: str) -> None:
    """Accepted by Prometheus and matching the exported series (an empty panel fails)."""
    try:
        result = prometheus.result(substitute(expr, GRAFANA_VARIABLES))
    except PrometheusError as exc:
        pytest.fail(f"{where}: {exc}")
    assert result, f"{where}: no series for {substitute(expr, GRAFANA_VARIABLES)}"


@pytest.mark.parametrize(
    ("where", "expr"),
    dashboard_extra_queries(),
    ids=[where for where, _ in dashboard_extra_queries()],
)
def test_dashboard_variable_and_annotation_queries(
    prometheus: PrometheusServer, where: str, expr: str
) -> None:
    answer = prometheus.query(substitute(expr, GRAFANA_VARIABLES))
    assert answer["status"] == "success", f"{where}: {answer}"
    if where.startswith("variable"):
        assert answer["data"]["result"], (
            f"{where}: no values for {substitute(expr, GRAFANA_VARIABLES)}"
        )

"""The inference service's resources: dashboard rows and alert rules against a real Prometheus.

Two targets are scraped: the monitor (``/metrics`` as served, from a snapshot with the
fraud model's metadata naming namespace ``serving`` and workload ``fraud-api``) and a
cluster endpoint with cAdvisor and kube-state-metrics series for three pods: the fraud
model's (``SELECTED``), a ``fraud-api-canary`` Deployment's, and a same-named pod in another
namespace. The dashboard's variables, run as Grafana runs them, must lead from the model to
its pod alone; every panel of the "Service resources" row must show that pod and only it,
with the rates the endpoint serves; the monitor's process row must show the monitor alone;
and the saturation rules must fire for the selected pod and no other.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import PROCESS_COLLECTOR
from prometheus_client.registry import CollectorRegistry

from stream_monitor.sinks.prometheus import build_service_registry
from stream_monitor.snapshot import ModelInfo, Snapshot
from tests.conftest import ROOT
from tests.dashboard import (
    label_values_to_promql,
    load_dashboard,
    row_panels,
    substitute,
    variable_query,
)
from tests.exporters import CANARY, ELSEWHERE, SELECTED, PodSeries, RegistryExporter
from tests.prometheus_server import PrometheusServer, require_prometheus

RULES = ROOT / "config" / "prometheus" / "inference-service-alerts.yaml"
RATE_INTERVAL_S = 10
MODEL = "fraud-detector"
SNAPSHOT = Snapshot(
    model_info=(
        ModelInfo(
            MODEL,
            "3",
            "warmup:1000",
            {
                "owner": "risk",
                "kubernetes_namespace": "serving",
                "kubernetes_workload": "fraud-api",
            },
        ),
        ModelInfo(
            MODEL,
            "4",
            "warmup:1000",
            {
                "owner": "risk",
                "kubernetes_namespace": "serving",
                "kubernetes_workload": "fraud-api",
            },
        ),
        ModelInfo(
            "price-estimator",
            "1",
            "sha256:ab",
            {"kubernetes_namespace": "serving", "kubernetes_workload": "price-api"},
        ),
    )
)
MIB = 1024.0**2
#: (panel title, refId) -> the value the selected pod's series must have.
EXPECTED = {
    ("CPU usage", "A"): SELECTED.cpu_cores,
    ("CPU usage", "B"): SELECTED.cpu_limit_cores,
    ("Memory working set", "A"): SELECTED.memory_bytes,
    ("Memory working set", "B"): SELECTED.memory_limit_bytes,
    ("CPU throttling", "A"): SELECTED.throttled_share,
    ("Network receive / transmit", "A"): SELECTED.receive_bytes_per_s,
    ("Network receive / transmit", "B"): SELECTED.transmit_bytes_per_s,
    ("Filesystem reads / writes", "A"): SELECTED.read_bytes_per_s,
    ("Filesystem reads / writes", "B"): SELECTED.write_bytes_per_s,
    ("Container restarts", "A"): SELECTED.restarts_per_s * RATE_INTERVAL_S,
}
SERVICE_ROW = "Service resources (the inference service's pods)"
ALERTS = (
    "InferenceServiceCPUThrottled",
    "InferenceServiceMemoryNearLimit",
    "InferenceServiceRestarting",
)


def cluster_registry() -> CollectorRegistry:
    """The cluster's pod series, and process metrics as any other exporter has them."""
    registry = CollectorRegistry()
    registry.register(PodSeries())
    registry.register(PROCESS_COLLECTOR)
    return registry


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_prometheus()
    workdir = tmp_path_factory.mktemp("prometheus")
    with (
        RegistryExporter(build_service_registry(lambda: SNAPSHOT)) as monitor,
        RegistryExporter(cluster_registry()) as cluster,
        PrometheusServer(workdir, [monitor.target, cluster.target], [RULES]) as server,
    ):
        server.wait_for(f"rate(container_cpu_usage_seconds_total[{RATE_INTERVAL_S}s])")
        # rate() extrapolates little once the series spans the whole range.
        time.sleep(RATE_INTERVAL_S + 2)
        yield server


def resolved_variables(prometheus: PrometheusServer, model: str) -> dict[str, list[str]]:
    """Run the dashboard's variables in order, as Grafana does once ``model`` is picked."""
    values: dict[str, list[str]] = {"model": [model]}
    for variable in load_dashboard()["templating"]["list"]:
        if variable["name"] not in ("namespace", "workload", "pod"):
            continue
        current = {name: "|".join(found) for name, found in values.items()}
        query = label_values_to_promql(substitute(variable_query(variable), current))
        label = query.split("(", 1)[1].split(")", 1)[0]
        values[variable["name"]] = sorted(s["metric"][label] for s in prometheus.result(query))
    return values


def test_the_variables_lead_from_the_model_to_its_pods(prometheus: PrometheusServer) -> None:
    found = resolved_variables(prometheus, MODEL)
    assert found == {
        "model": [MODEL],
        "namespace": ["serving"],
        "workload": ["fraud-api"],
        "pod": [SELECTED.name],  # not fraud-api-canary-…, not staging's namesake
    }
    assert resolved_variables(prometheus, "price-estimator")["pod"] == []


def panel_values(prometheus: PrometheusServer) -> dict[str, str]:
    variables = {name: "|".join(v) for name, v in resolved_variables(prometheus, MODEL).items()}
    return {**variables, "__rate_interval": f"{RATE_INTERVAL_S}s", "__range": "1m"}


@pytest.mark.parametrize(("title", "ref"), sorted(EXPECTED))
def test_each_resource_panel_shows_the_selected_pod_only(
    prometheus: PrometheusServer, title: str, ref: str
) -> None:
    panels = {panel["title"]: panel for panel in row_panels(load_dashboard(), SERVICE_ROW)}
    (target,) = [t for t in panels[title]["targets"] if t["refId"] == ref]
    expr = substitute(target["expr"], panel_values(prometheus))
    result = prometheus.result(expr)
    assert [series["metric"]["pod"] for series in result] == [SELECTED.name], expr
    value = float(result[0]["value"][1])
    if title == "Container restarts":  # whole restarts: 1 or 2 in 10 s at 0.2/s
        assert 1 <= value <= 3, expr
    else:
        assert value == pytest.approx(EXPECTED[(title, ref)], rel=0.1), expr


def test_every_resource_panel_and_target_is_checked() -> None:
    targets = {
        (panel["title"], target["refId"])
        for panel in row_panels(load_dashboard(), SERVICE_ROW)
        for target in panel["targets"]
    }
    assert targets == set(EXPECTED)
    joined = " ".join(
        t["expr"] for p in row_panels(load_dashboard(), SERVICE_ROW) for t in p["targets"]
    )
    for name in (
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_network_receive_bytes_total",
        "container_network_transmit_bytes_total",
        "container_fs_reads_bytes_total",
        "container_fs_writes_bytes_total",
        "kube_pod_container_status_restarts_total",
    ):
        assert name in joined


def test_the_process_row_shows_the_monitor_alone(prometheus: PrometheusServer) -> None:
    (build,) = prometheus.result("stream_monitor_build_info")
    monitor = build["metric"]["instance"]
    assert len(prometheus.result("process_resident_memory_bytes")) == 2  # the cluster's too
    values = panel_values(prometheus)
    for panel in row_panels(load_dashboard(), "Monitor process"):
        for target in panel["targets"]:
            result = prometheus.result(substitute(target["expr"], values))
            where = f"{panel['title']}/{target['refId']}"
            assert result, where
            assert {series["metric"]["instance"] for series in result} == {monitor}, where
    rss = prometheus.result(
        "process_resident_memory_bytes and on (instance) stream_monitor_build_info"
    )
    assert float(rss[0]["value"][1]) > 10 * MIB


def test_the_model_info_table_shows_each_live_version(prometheus: PrometheusServer) -> None:
    (panel,) = [p for p in load_dashboard()["panels"] if p["title"] == "Model info"]
    expr = substitute(panel["targets"][0]["expr"], {"model": MODEL, "version": ".*"})
    rows = sorted((s["metric"] for s in prometheus.result(expr)), key=lambda m: m["version"])
    assert [(row["version"], row["reference"], row["owner"]) for row in rows] == [
        ("3", "warmup:1000", "risk"),
        ("4", "warmup:1000", "risk"),
    ]
    assert "description" not in rows[0]  # a key the config leaves out is no label at all


# ---------------------------------------------------------------------------- rules


def test_promtool_check_rules() -> None:
    promtool = require_prometheus("promtool")["promtool"]
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout


def test_rules_evaluate_and_fire_for_the_selected_pod_only(prometheus: PrometheusServer) -> None:
    deadline = time.monotonic() + 30
    while True:
        alerts = prometheus.api("alerts")["data"]["alerts"]
        if {a["labels"]["alertname"] for a in alerts} >= set(ALERTS):
            break
        assert time.monotonic() < deadline, f"not every alert went pending: {alerts}"
        time.sleep(0.5)
    rules = [r for g in prometheus.api("rules")["data"]["groups"] for r in g["rules"]]
    assert {r["name"]: r["health"] for r in rules} == dict.fromkeys(
        ["stream_monitor:inference_service_pod:info", *ALERTS], "ok"
    )
    for alert in alerts:
        labels = alert["labels"]
        assert (labels["namespace"], labels["pod"]) == (SELECTED.namespace, SELECTED.name)
        assert labels["workload"] == "fraud-api" and labels["container"] == "server"
        text = alert["annotations"]["summary"] + alert["annotations"]["description"]
        assert SELECTED.name in text and "fraud-api" in text and "<no value>" not in text
    (pod,) = prometheus.result("stream_monitor:inference_service_pod:info")
    assert pod["metric"] == {
        "__name__": "stream_monitor:inference_service_pod:info",
        "namespace": "serving",
        "pod": SELECTED.name,
        "workload": "fraud-api",
    }


def pod_series(pod: Any, name: str, labels: str = "", values: str = "") -> dict[str, str]:
    where = f'namespace="{pod.namespace}", pod="{pod.name}"'
    return {"series": f"{name}{{{where}{labels}}}", "values": values}


def unit_test(alert: str, series: list[dict[str, str]], value: str) -> dict[str, Any]:
    """A promtool case: ``series`` for all three pods; ``alert`` fires for SELECTED alone."""
    info = (
        'stream_monitor_model_info{model="fraud-detector", version="3", reference="warmup:1000", '
        'kubernetes_namespace="serving", kubernetes_workload="fraud-api", namespace="monitoring"}'
    )
    pods = [
        pod_series(p, "kube_pod_info", ', node="n1"', "1x40") for p in (SELECTED, CANARY, ELSEWHERE)
    ]
    labels = {
        "severity": "warning",
        "namespace": "serving",
        "pod": SELECTED.name,
        "container": "server",
        "workload": "fraud-api",
    }
    return {
        "interval": "1m",
        "input_series": [{"series": info, "values": "1x40"}, *pods, *series],
        "alert_rule_test": [
            {
                "eval_time": "30m",
                "alertname": alert,
                "exp_alerts": [
                    {"exp_labels": labels, "exp_annotations": annotations(alert, value)}
                ],
            },
        ],
    }


def annotations(alert: str, value: str) -> dict[str, str]:
    """The alert's annotations as Prometheus fills them in for the selected pod."""
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    (rule,) = [r for r in rules if r.get("alert") == alert]
    labels = {
        "workload": "fraud-api",
        "pod": SELECTED.name,
        "namespace": SELECTED.namespace,
        "container": "server",
    }

    def fill(text: str) -> str:
        text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
        return re.sub(r"\{\{ \$value[^}]*\}\}", value, text)

    return {key: fill(text) for key, text in rule["annotations"].items()}


def test_promtool_unit_tests_one_case_per_alert(tmp_path: Path) -> None:
    promtool = require_prometheus("promtool")["promtool"]
    main = ', container="server"'
    every = (SELECTED, CANARY, ELSEWHERE)
    periods = [pod_series(p, "container_cpu_cfs_periods_total", main, "0+600x40") for p in every]
    throttled = [  # 40% throttled, 60% for the canary, none in staging
        pod_series(p, "container_cpu_cfs_throttled_periods_total", main, f"0+{share}x40")
        for p, share in ((SELECTED, 240), (CANARY, 360), (ELSEWHERE, 0))
    ]
    memory = [
        pod_series(p, name, labels, f"{value:g}x40")
        for p in every
        for name, labels, value in (
            ("container_memory_working_set_bytes", main, p.memory_bytes),
            ("container_memory_working_set_bytes", ', container=""', p.memory_bytes),
            ("kube_pod_container_resource_limits", f'{main}, resource="memory"', 1024 * MIB),
            ("kube_pod_container_resource_limits", f'{main}, resource="cpu"', 2),
        )
    ]
    restarts = [  # two restarts of the selected pod, three of the canary's
        pod_series(p, "kube_pod_container_status_restarts_total", main, v)
        for p, v in ((SELECTED, "0x25 1 2x14"), (CANARY, "0x25 3x15"), (ELSEWHERE, "0x40"))
    ]
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            unit_test("InferenceServiceCPUThrottled", periods + throttled, "40%"),
            unit_test("InferenceServiceMemoryNearLimit", memory, "92.77%"),
            unit_test("InferenceServiceRestarting", restarts, "2"),
        ],
    }
    path = tmp_path / "inference-service-alerts.test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout

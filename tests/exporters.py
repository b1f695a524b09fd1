"""What the Prometheus tests scrape: a registry served on loopback, and a cluster's pod series.

:class:`PodSeries` exports, for a few inference-service pods, the series a Kubernetes cluster
has from kubelet/cAdvisor (``container_*``) and kube-state-metrics (``kube_pod_*``), with the
pod-level and pause-container duplicates cAdvisor adds, so that a query that forgets to leave
them out counts twice. Counters grow at fixed rates from the collector's start, so ``rate()``
of each is known.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry


class RegistryExporter:
    """Serves a registry's exposition text on a free loopback port (``target``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> RegistryExporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Pod:
    """One pod of an inference service with one container, and the rates it runs at."""

    namespace: str
    name: str
    cpu_cores: float
    throttled_share: float
    memory_bytes: float
    receive_bytes_per_s: float
    transmit_bytes_per_s: float
    read_bytes_per_s: float
    write_bytes_per_s: float
    restarts_per_s: float
    cpu_limit_cores: float = 2.0
    memory_limit_bytes: float = 1024.0**3
    container: str = "server"


#: A pod of the ``fraud-api`` Deployment in ``serving``: the fraud model's inference service.
SELECTED = Pod("serving", "fraud-api-7d4b9c8f6-x2kqp", 0.5, 0.4, 950 * 1024.0**2,
               2000.0, 8000.0, 100.0, 300.0, 0.2)  # fmt: skip
#: Another Deployment whose name starts like the selected one (``fraud-api-canary``).
CANARY = Pod("serving", "fraud-api-canary-6c5d4b3a2-m7n8p", 1.5, 0.6, 990 * 1024.0**2,
             5000.0, 7000.0, 400.0, 600.0, 0.5)  # fmt: skip
#: The same pod name in another namespace.
ELSEWHERE = Pod("staging", "fraud-api-7d4b9c8f6-x2kqp", 0.25, 0.0, 100 * 1024.0**2,
                1000.0, 1000.0, 10.0, 20.0, 0.0)  # fmt: skip
PODS = (SELECTED, CANARY, ELSEWHERE)
CFS_PERIODS_PER_S = 10.0


class PodSeries(Collector):
    """cAdvisor and kube-state-metrics series of ``pods`` (see the module docstring)."""

    def __init__(self, pods: tuple[Pod, ...] = PODS) -> None:
        self.pods = pods
        self.started = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        t = time.monotonic() - self.started
        where = ["namespace", "pod", "container"]

        def counter(name: str, extra: tuple[str, ...] = ()) -> CounterMetricFamily:
            return CounterMetricFamily(name, name, labels=[*where, *extra])

        cpu = counter("container_cpu_usage_seconds")
        memory = GaugeMetricFamily("container_memory_working_set_bytes", "ws", labels=where)
        periods = counter("container_cpu_cfs_periods")
        throttled = counter("container_cpu_cfs_throttled_periods")
        receive = counter("container_network_receive_bytes", ("interface",))
        transmit = counter("container_network_transmit_bytes", ("interface",))
        reads = counter("container_fs_reads_bytes", ("device",))
        writes = counter("container_fs_writes_bytes", ("device",))
        restarts = counter("kube_pod_container_status_restarts")
        limits = GaugeMetricFamily(
            "kube_pod_container_resource_limits", "limits", labels=[*where, "resource", "unit"]
        )
        info = GaugeMetricFamily("kube_pod_info", "pod", labels=["namespace", "pod", "node"])
        for pod in self.pods:
            main = [pod.namespace, pod.name, pod.container]
            whole = [pod.namespace, pod.name, ""]  # cAdvisor's pod-level cgroup
            pause = [pod.namespace, pod.name, "POD"]
            for labels in (main, whole):
                cpu.add_metric(labels, pod.cpu_cores * t)
                memory.add_metric(labels, pod.memory_bytes)
            cpu.add_metric(pause, 0.001 * t)
            memory.add_metric(pause, 1024.0**2)
            periods.add_metric(main, CFS_PERIODS_PER_S * t)
            throttled.add_metric(main, CFS_PERIODS_PER_S * pod.throttled_share * t)
            receive.add_metric([*whole, "eth0"], pod.receive_bytes_per_s * t)
            transmit.add_metric([*whole, "eth0"], pod.transmit_bytes_per_s * t)
            reads.add_metric([*main, "/dev/sda"], pod.read_bytes_per_s * t)
            writes.add_metric([*main, "/dev/sda"], pod.write_bytes_per_s * t)
            restarts.add_metric(main, float(int(pod.restarts_per_s * t)))
            limits.add_metric([*main, "cpu", "core"], pod.cpu_limit_cores)
            limits.add_metric([*main, "memory", "byte"], pod.memory_limit_bytes)
            info.add_metric([pod.namespace, pod.name, "node-1"], 1.0)
        yield from (cpu, memory, periods, throttled, receive, transmit, reads, writes)
        yield from (restarts, limits, info)

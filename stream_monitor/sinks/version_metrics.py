"""The champion-against-challenger gauges of models that compare versions.

Nothing is yielded while no model has ``compare_versions:``, so that a monitor
without it serves exactly what it served before.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from stream_monitor.snapshot import Snapshot

VERSION_LABELS = ["model", "version", "champion", "window"]


def version_families(snapshot: Snapshot) -> Iterable[Metric]:
    """Traffic share, version PSI and CSI and quality deltas of every live comparison."""
    if not snapshot.traffic_shares:
        return []
    share = GaugeMetricFamily(
        "stream_monitor_version_traffic_share",
        "The version's share (0..1) of its model's events in the window.",
        labels=["model", "version", "window"],
    )
    for labels, value in snapshot.traffic_shares.items():
        share.add_metric(list(labels), value)
    psi = GaugeMetricFamily(
        "stream_monitor_version_psi",
        "PSI of a challenger's prediction against its champion's in the same window.",
        labels=VERSION_LABELS,
    )
    csi = GaugeMetricFamily(
        "stream_monitor_version_csi",
        "CSI of a challenger's feature against its champion's in the same window.",
        labels=[*VERSION_LABELS, "feature"],
    )
    delta = GaugeMetricFamily(
        "stream_monitor_version_quality_delta",
        "A challenger's quality metric minus its champion's in the same window.",
        labels=[*VERSION_LABELS, "metric"],
    )
    for found in snapshot.version_comparisons:
        names = [found.model, found.version, found.champion, found.window]
        psi.add_metric(names, found.psi)
        for feature, value in found.csi.items():
            csi.add_metric([*names, feature], value)
        for metric, value in found.quality_delta.items():
            delta.add_metric([*names, metric], value)
    return share, psi, csi, delta

"""The label-free quality estimate of binary classifiers, and its error against the labels.

Nothing is yielded while no window has an estimate (no binary model whose
reference has labels), so that such a monitor serves exactly what it served before.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from stream_monitor.metric_names import ESTIMATED_METRICS
from stream_monitor.snapshot import Snapshot

WINDOW_LABELS = ["model", "version", "window"]
#: What each estimated gauge holds.
ESTIMATED_HELP = {
    "auc": "ROC AUC expected from the window's scores through the reference's calibration.",
    "accuracy": "Accuracy at the threshold expected from the window's scores.",
    "precision": "Precision at the threshold expected from the window's scores.",
    "recall": "Recall at the threshold expected from the window's scores.",
    "f1": "F1 at the threshold expected from the window's scores.",
}


def estimate_families(snapshot: Snapshot) -> Iterable[Metric]:
    """``stream_monitor_estimated_<metric>`` and ``stream_monitor_estimation_error{metric}``."""
    samples = [sample for sample in snapshot.windows if sample.estimate]
    if not samples:
        return []
    gauges = {
        name: GaugeMetricFamily(
            f"stream_monitor_estimated_{name}", ESTIMATED_HELP[name], labels=WINDOW_LABELS
        )
        for name in ESTIMATED_METRICS
    }
    error = GaugeMetricFamily(
        "stream_monitor_estimation_error",
        "Estimated minus realized quality metric, for windows with labels.",
        labels=[*WINDOW_LABELS, "metric"],
    )
    for sample in samples:
        labels = [sample.model, sample.version, sample.window]
        for name, gauge in gauges.items():
            value = sample.estimate.get(name)
            if value is not None and math.isfinite(value):
                gauge.add_metric(labels, value)
        for name, value in sample.estimation_error.items():
            error.add_metric([*labels, name], value)
    return [*gauges.values(), error]

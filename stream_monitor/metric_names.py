"""The names of the drift and quality metrics, in one place.

A drift event's ``metric`` is one of these names; each quality value of a
window is exported as the Prometheus gauge ``stream_monitor_<name>``.
"""

from __future__ import annotations

PSI = "psi"
CSI = "csi"
NULL_RATIO = "null_ratio"
NEW_CATEGORY_RATIO = "new_category_ratio"
#: Judged on every window with enough events.
STABILITY_METRICS = (PSI, CSI, NULL_RATIO, NEW_CATEGORY_RATIO)
#: Judged while a window holds a detection of the concept-drift detector.
CONCEPT_DRIFT = "concept_drift"
#: Judged when ``quality.latency_p99_ms`` is set.
LATENCY_P99 = "latency_p99"

#: Champion against challenger (``compare_versions``): a challenger's prediction and features.
VERSION_PSI = "version_psi"
VERSION_CSI = "version_csi"
#: A challenger's quality against the champion's is the drift metric ``version_<quality metric>``.
VERSION_PREFIX = "version_"

#: Label-free estimates of a binary classifier's quality are the drift metrics
#: ``estimated_<metric>``; the estimate minus the realized value is ``estimation_error``.
ESTIMATED_PREFIX = "estimated_"
ESTIMATED_METRICS = ("auc", "accuracy", "precision", "recall", "f1")
ESTIMATION_ERROR = "estimation_error"

#: Quality metrics judged as a drop from the reference value (absolute difference).
DROP_METRICS = ("auc", "gini", "ks", "accuracy", "precision", "recall", "f1", "r2")
#: Quality metrics judged as a relative rise over the reference value (0.2 = 20% worse).
RISE_METRICS = ("rmse", "mae", "log_loss", "brier")

#: The quality metrics each task's windows have (the others never apply to it).
TASK_QUALITY = {
    "binary": ("auc", "gini", "ks", "accuracy", "precision", "recall", "f1", "log_loss", "brier"),
    "multiclass": ("accuracy", "f1"),
    "regression": ("rmse", "mae", "r2"),
}

#: Every quality value of a window, in the order exported, with what it measures.
QUALITY_METRICS = {
    "auc": "Area under the ROC curve (binned scores, see score_bins).",
    "gini": "Gini coefficient, 2 * AUC - 1.",
    "ks": "Kolmogorov-Smirnov distance between positive and negative scores.",
    "accuracy": "Accuracy at the model's threshold.",
    "precision": "Precision at the model's threshold.",
    "recall": "Recall at the model's threshold.",
    "f1": "F1 at the model's threshold (macro F1 for multiclass).",
    "weighted_f1": "Support-weighted F1 (multiclass).",
    "log_loss": "Mean log loss.",
    "brier": "Brier score (mean squared error of the probability).",
    "rmse": "Root mean squared error.",
    "mae": "Mean absolute error.",
    "r2": "Coefficient of determination.",
    "mean_error": "Mean of prediction minus label (bias).",
}

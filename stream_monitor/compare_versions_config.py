"""A model's ``compare_versions:`` block: the champion and the lines a challenger is judged by.

::

    compare_versions:
      champion: v1            # or auto: the version with the most events in each window
      psi: {warn: 0.1, alert: 0.25}
      csi: {warn: 0.1, alert: 0.25}
      quality:                # a challenger's shortfall against the champion
        auc: {warn: 0.02, alert: 0.05}

``psi`` and ``csi`` default to the model's ``drift.psi`` and ``drift.csi``; the
quality lines default to the model's quality rules, for the metrics its task has.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stream_monitor.config import (
    CompareVersionsConfig,
    ConfigError,
    ModelConfig,
    Thresholds,
    warn_alert_levels,
)
from stream_monitor.metric_names import TASK_QUALITY

#: The keys of a ``compare_versions:`` block.
KEYS = ("champion", "psi", "csi", "quality")


def with_compare_versions(model: ModelConfig, value: Any, key: str) -> ModelConfig:
    """``model`` with the ``compare_versions:`` block found at ``key`` (unchanged when absent)."""
    compare = parse_compare_versions(value, key, model)
    return model if compare is None else replace(model, compare_versions=compare)


def parse_compare_versions(
    value: Any, key: str, model: ModelConfig
) -> CompareVersionsConfig | None:
    """The ``compare_versions:`` mapping at ``key`` of ``model``, checked (None when absent).

    >>> from stream_monitor.config import ModelConfig
    >>> model = ModelConfig("m", "binary", {"x": "numeric"})
    >>> parse_compare_versions({"champion": "v1"}, "models[0].compare_versions", model).champion
    'v1'
    >>> parse_compare_versions({"quality": {"rmse": {}}}, "c", model)
    Traceback (most recent call last):
    ...
    stream_monitor.config.ConfigError: c.quality.rmse: not a quality metric of a binary model \
(expected one of auc, gini, ks, accuracy, precision, recall, f1, log_loss, brier)
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping such as {{champion: auto}}, got {value!r}")
    for name in value:
        if name not in KEYS:
            raise ConfigError(f"{key}.{name}: unknown key (expected one of {', '.join(KEYS)})")
    champion = value.get("champion", "auto")
    if isinstance(champion, bool) or not isinstance(champion, str | int) or champion == "":
        raise ConfigError(f"{key}.champion: expected a model version or auto, got {champion!r}")
    metrics = TASK_QUALITY[model.task]
    quality = {m: pair for m, pair in model.quality.rules.items() if m in metrics}
    raw_quality = value.get("quality") or {}
    if not isinstance(raw_quality, dict):
        raise ConfigError(f"{key}.quality: expected a mapping of metric -> {{warn, alert}}")
    for metric, lines in raw_quality.items():
        if metric not in metrics:
            raise ConfigError(
                f"{key}.quality.{metric}: not a quality metric of a {model.task} model "
                f"(expected one of {', '.join(metrics)})"
            )
        default = quality.get(metric, (0.05, 0.10))
        found = warn_alert_levels(lines, f"{key}.quality.{metric}", Thresholds(*default))
        quality[metric] = (found.warn, found.alert)
    return CompareVersionsConfig(
        champion=str(champion),
        psi=warn_alert_levels(value.get("psi"), f"{key}.psi", model.drift.psi),
        csi=warn_alert_levels(value.get("csi"), f"{key}.csi", model.drift.csi),
        quality=quality,
    )

"""A model's ``estimation:`` block: the label-free quality estimate of a binary classifier.

::

    estimation:
      enabled: true                  # default; a reference without labels has no estimate
      min_labeled_per_bin: 100       # labeled reference events per calibration group
      error: {warn: 0.05, alert: 0.10}   # |estimate - realized| of an estimated metric
      false_alerts_per_day: 0.02     # the estimate's own budgets
      false_warnings_per_day: 0.2
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stream_monitor.config import (
    ConfigError,
    EstimationConfig,
    ModelConfig,
    Thresholds,
    warn_alert_levels,
)

#: The keys of an ``estimation:`` block.
KEYS = (
    "enabled",
    "min_labeled_per_bin",
    "error",
    "false_alerts_per_day",
    "false_warnings_per_day",
)


def with_estimation(model: ModelConfig, value: Any, key: str) -> ModelConfig:
    """``model`` with the ``estimation:`` block found at ``key`` (unchanged when absent)."""
    if value is None:
        return model
    return replace(model, estimation=parse_estimation(value, key, model))


def parse_estimation(value: Any, key: str, model: ModelConfig) -> EstimationConfig:
    """The ``estimation:`` mapping at ``key`` of ``model``, checked.

    >>> model = ModelConfig("m", "binary", {"x": "numeric"})
    >>> parse_estimation({"error": {"warn": 0.02}}, "models[0].estimation", model).error
    (0.02, 0.1)
    >>> parse_estimation({"min_labeled_per_bin": 0}, "e", model)
    Traceback (most recent call last):
    ...
    stream_monitor.config.ConfigError: e.min_labeled_per_bin: expected an integer of at least 1, \
got 0
    """
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping such as {{enabled: true}}, got {value!r}")
    for name in value:
        if name not in KEYS:
            raise ConfigError(f"{key}.{name}: unknown key (expected one of {', '.join(KEYS)})")
    base = EstimationConfig()
    enabled = value.get("enabled", base.enabled)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{key}.enabled: expected true or false, got {enabled!r}")
    if enabled and model.task != "binary" and "enabled" in value:
        raise ConfigError(f"{key}.enabled: only binary models are estimated (task {model.task})")
    per_bin = value.get("min_labeled_per_bin", base.min_labeled_per_bin)
    if isinstance(per_bin, bool) or not isinstance(per_bin, int) or per_bin < 1:
        raise ConfigError(
            f"{key}.min_labeled_per_bin: expected an integer of at least 1, got {per_bin!r}"
        )
    error = warn_alert_levels(value.get("error"), f"{key}.error", Thresholds(*base.error), 1.0)
    budgets = {}
    for name in ("false_alerts_per_day", "false_warnings_per_day"):
        budget = value.get(name, getattr(base, name))
        if isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0:
            raise ConfigError(f"{key}.{name}: expected a number above 0, got {budget!r}")
        budgets[name] = float(budget)
    return EstimationConfig(
        enabled=enabled,
        min_labeled_per_bin=per_bin,
        error=(error.warn, error.alert),
        **budgets,
    )

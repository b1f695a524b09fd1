"""A model's ``metadata:`` block: who owns it, what it was trained on, where it runs.

The keys are a fixed, documented set, so that every one can become a label of
``stream_monitor_model_info`` without unbounded label names. Values are short,
single-line strings; the two Kubernetes keys must be valid Kubernetes names,
because the dashboard builds its pod selectors from them.
"""

from __future__ import annotations

import re
from typing import Any

from stream_monitor.config import ConfigError

#: Every key a ``metadata:`` block may hold, with what it means (README, Model metadata).
METADATA_KEYS = {
    "owner": "team or person answerable for the model",
    "description": "what the model predicts, in a sentence",
    "training_dataset": "the data set (and its version) the model was trained on",
    "data_sources": "where its inputs come from (topics, tables, services)",
    "serving_infrastructure": "what serves it (e.g. KServe, SageMaker, a FastAPI service)",
    "kubernetes_namespace": "namespace of the inference service's pods",
    "kubernetes_workload": "Deployment, StatefulSet or DaemonSet whose pods serve the model",
}
#: Longest value of a metadata key, in characters.
MAX_VALUE_CHARS = 200
#: A Kubernetes namespace: an RFC 1123 label.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
#: A workload name: an RFC 1123 subdomain (the names Deployments and StatefulSets take).
_WORKLOAD = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_KUBERNETES_NAMES = {"kubernetes_namespace": _NAMESPACE, "kubernetes_workload": _WORKLOAD}


def parse_metadata(value: Any, key: str) -> dict[str, str]:
    """The ``metadata:`` mapping at ``key``, checked; its values as strings.

    >>> parse_metadata({"owner": "risk-team", "kubernetes_namespace": "serving"}, "m")
    {'owner': 'risk-team', 'kubernetes_namespace': 'serving'}
    >>> parse_metadata({"team": "risk"}, "models[0].metadata")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    stream_monitor.config.ConfigError: models[0].metadata.team: unknown metadata key (expected ...
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
    metadata: dict[str, str] = {}
    for name, raw in value.items():
        where = f"{key}.{name}"
        if name not in METADATA_KEYS:
            raise ConfigError(
                f"{where}: unknown metadata key (expected one of {', '.join(METADATA_KEYS)})"
            )
        if isinstance(raw, bool) or not isinstance(raw, str | int | float) or raw == "":
            raise ConfigError(f"{where}: expected a non-empty string, got {raw!r}")
        text = str(raw)
        if len(text) > MAX_VALUE_CHARS:
            raise ConfigError(
                f"{where}: {len(text)} characters, at most {MAX_VALUE_CHARS} are allowed"
            )
        if not text.isprintable():
            raise ConfigError(f"{where}: must be one line of printable characters")
        pattern = _KUBERNETES_NAMES.get(name)
        if pattern is not None and not pattern.fullmatch(text):
            raise ConfigError(
                f"{where}: {text!r} is not a Kubernetes name "
                "(lower-case letters, digits and '-', starting and ending with a letter or digit)"
            )
        metadata[name] = text
    return metadata

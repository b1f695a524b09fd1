"""The Grafana dashboard as the Prometheus tests read it: panels, variables, substitution."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from tests.conftest import ROOT

DASHBOARD = ROOT / "config" / "grafana" / "stream-monitor.json"


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in iter_panels(dashboard["panels"]) if p.get("type") != "row"]


def row_panels(dashboard: dict[str, Any], title: str) -> list[dict[str, Any]]:
    """The panels of the row called ``title`` (those after it, up to the next row)."""
    found: list[dict[str, Any]] | None = None
    for panel in dashboard["panels"]:
        if panel.get("type") == "row":
            if found is not None:
                break
            if panel["title"] == title:
                found = list(panel.get("panels", []))
        elif found is not None:
            found.append(panel)
    assert found, f"no row {title!r} with panels"
    return found


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana variables (``$model``, ``${model}``, ``$__rate_interval``) by ``values``."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no test value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", replace, expr)


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    text = query.get("query", "") if isinstance(query, dict) else str(query or "")
    return text or str(variable.get("definition", ""))


def label_values_to_promql(query: str) -> str:
    """``label_values(selector, label)`` as the PromQL Grafana runs for it."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query, re.DOTALL)
    assert match, f"variable query is not label_values(selector, label): {query!r}"
    return f"count by ({match.group(2)}) ({match.group(1)})"

"""The dashboard's and the alert rules' PromQL, read from the chart, for the tests that check
them against the operator's registry (unit) and a real Prometheus (integration)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).parents[1]
CHART = ROOT / "charts" / "conclave"
DASHBOARD = CHART / "dashboards" / "conclave.json"
RULES = CHART / "rules" / "conclave.rules.yaml"

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}
"""What prometheus_client appends to a family's name in the exposition, by type."""

LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    """Every panel that queries, rows excluded."""
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expression) of every query in the dashboard."""
    return [(panel["title"], target["expr"]) for panel in panels() for target in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects: every identifier that is not a function,
    an aggregation, a keyword, a label, a string or a duration."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", stripped)
    stripped = LABEL_LISTS.sub(" ", stripped)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][\w:]*", stripped):
        if not stripped[match.end() :].lstrip().startswith("(") and match[0].lower() not in KEYWORDS:
            names.add(match[0])
    return names


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry exposes, children or not yet."""
    return {
        family.name + suffix for family in registry.collect() for suffix in SUFFIXES.get(family.type, ("",))
    }


def concrete(expression: str, rate_interval: str) -> str:
    """The expression as Grafana would send it with every variable on All."""
    for variable in ("namespace", "topology"):
        expression = expression.replace(f'=~"${variable}"', '=~".*"')
    return expression.replace("$__rate_interval", rate_interval)

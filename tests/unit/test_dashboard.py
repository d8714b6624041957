"""The dashboard is what conclave_harness.dashboards generates, and it keeps Grafana's
dashboard-linter rules (the linter itself is not served here): a templated datasource, job
and instance variables, $__rate_interval, a unit on every panel, every query filtered.
Its queries are sent to a real Prometheus by tests/integration/test_chart_scenario.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from conclave_harness import dashboards
from monitoring import DASHBOARD, dashboard, dashboard_expressions, metric_names, panels

VARIABLES = {v["name"]: v for v in dashboard()["templating"]["list"]}
SELECTOR = re.compile(r"(?P<metric>[a-zA-Z_:][\w:]*)\s*(?P<matchers>\{[^}]*\})?(?P<range>\[[^\]]*\])?")
VALID_UNITS = {"short", "none", "s", "ms", "ops", "reqps", "bytes", "percentunit", "percent"}
"""A subset of Grafana's unit ids (packages/grafana-data/src/valueFormats/categories.ts)."""
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def selectors(expression: str) -> list[tuple[str, str, str]]:
    """(metric, matchers, range) of every vector selector of ``expression``."""
    names = metric_names(expression)
    found = []
    for match in SELECTOR.finditer(re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)):
        if match["metric"] in names:
            found.append((match["metric"], match["matchers"] or "", match["range"] or ""))
    return found


def original_matchers(expression: str) -> list[tuple[str, str]]:
    """(metric, matchers text) with the matchers' strings kept, for checking variables."""
    return [
        (match["metric"], match["matchers"] or "")
        for match in SELECTOR.finditer(expression)
        if match["metric"] in metric_names(expression)
    ]


def test_the_committed_dashboard_is_what_the_code_generates() -> None:
    assert DASHBOARD.read_text() == dashboards.render(), "conclave.json is stale: run `make dashboards`"


def test_the_dashboard_has_a_fixed_uid_and_is_read_only_in_grafana() -> None:
    board = dashboard()
    assert (board["uid"], board["editable"]) == ("conclave-overview", False)
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, int) and i > 0 for i in ids)


def test_template_datasource_rule_one_prometheus_datasource_variable() -> None:
    datasources = [v for v in VARIABLES.values() if v["type"] == "datasource"]
    assert [(v["name"], v["label"], v["query"]) for v in datasources] == [
        ("datasource", "Data Source", "prometheus")
    ]


@pytest.mark.parametrize("name", ["job", "instance"])
def test_template_job_and_instance_rules_multi_select_variables_on_the_datasource(name: str) -> None:
    variable = VARIABLES[name]
    assert (variable["type"], variable["label"], variable["datasource"]["uid"]) == (
        "query",
        name,
        "${datasource}",
    )
    assert (variable["multi"], variable["includeAll"], variable["allValue"]) == (True, True, ".+")
    assert variable["query"].startswith("label_values(")


def test_the_dashboard_also_filters_by_cluster_namespace_and_topology() -> None:
    for name in ("cluster", "namespace", "topology"):
        assert (VARIABLES[name]["multi"], VARIABLES[name]["includeAll"]) == (True, True)
        # Matches series without the label too: a single Prometheus has no cluster label.
        assert VARIABLES[name]["allValue"] == ".*"


def test_template_on_time_change_reload_rule() -> None:
    queries = [v for v in VARIABLES.values() if v["type"] == "query"]
    assert {v["name"]: v["refresh"] for v in queries} == {v["name"]: 2 for v in queries}


def test_template_label_promql_rule_each_variable_reads_a_label_of_an_exported_metric() -> None:
    for variable in (v for v in VARIABLES.values() if v["type"] == "query"):
        match = re.fullmatch(r"label_values\((?P<selector>.+), (?P<label>\w+)\)", variable["query"])
        assert match is not None, variable["query"]
        assert match["label"] == variable["name"]
        assert metric_names(match["selector"]) <= {"conclave_build_info", "conclave_topology_members"}


def test_panel_datasource_rule_every_panel_and_target_uses_the_variable() -> None:
    sources = {panel["datasource"]["uid"] for panel in panels()}
    sources |= {target["datasource"]["uid"] for panel in panels() for target in panel["targets"]}
    assert sources == {"${datasource}"}


def test_panel_title_description_rule() -> None:
    assert [p["title"] for p in panels() if not p.get("title") or len(p.get("description", "")) < 20] == []


def unit(panel: dict[str, Any]) -> str | None:
    unit_id: str | None = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    return unit_id


def test_panel_units_rule_every_panel_has_a_valid_unit() -> None:
    assert {p["title"]: unit(p) for p in panels() if unit(p) not in VALID_UNITS} == {}


def test_panel_no_targets_rule() -> None:
    assert [p["title"] for p in panels() if not p.get("targets")] == []


def test_target_rate_interval_rule() -> None:
    """Every range (of rate, increase, changes, a quantile's rate) is $__rate_interval."""
    ranges = {(title, r) for title, e in dashboard_expressions() for _, _, r in selectors(e) if r}
    assert {r for _, r in ranges} == {"[$__rate_interval]"}
    windowed = {title for title, e in dashboard_expressions() if re.search(r"\b(rate|increase|changes)\(", e)}
    assert windowed == {title for title, _ in ranges}


@pytest.mark.parametrize("variable", ["cluster", "job", "instance"])
def test_target_job_and_instance_rules_every_selector_filters_by_the_variable(variable: str) -> None:
    unfiltered = [
        (title, metric)
        for title, expression in dashboard_expressions()
        for metric, matchers in original_matchers(expression)
        if f'{variable}=~"${variable}"' not in matchers
    ]
    assert unfiltered == []


@pytest.mark.parametrize("label", ["namespace", "topology"])
def test_every_selector_filters_by_namespace_and_topology_exactly_when_its_metric_has_them(
    label: str,
) -> None:
    """A missing filter ignores the variable; a filter on a metric without the label would
    empty the panel as soon as one value is chosen."""
    wrong = [
        (title, metric)
        for title, expression in dashboard_expressions()
        for metric, matchers in original_matchers(expression)
        if (f'{label}=~"${label}"' in matchers) != (label in dashboards.labels_of(metric))
    ]
    assert wrong == []


def test_labels_of_reads_the_operator_s_declared_labels() -> None:
    assert dashboards.labels_of("conclave_topology_members") == ("namespace", "topology", "ready")
    assert dashboards.labels_of("conclave_singleton_failover_seconds_bucket") == ("namespace", "topology")
    assert dashboards.labels_of("process_resident_memory_bytes") == ()


def test_target_counter_agg_rule_counters_only_inside_rate_or_increase() -> None:
    bare = [
        (title, metric)
        for title, expression in dashboard_expressions()
        for metric, _, window in selectors(expression)
        if metric.endswith(COUNTER_SUFFIXES) and not window
    ]
    assert bare == []


def test_process_metrics_are_the_operator_s_own() -> None:
    """Every scraped job has process_* series; each query joins them with conclave_build_info."""
    loose = [
        (title, expression)
        for title, expression in dashboard_expressions()
        if re.search(r"\bprocess_", expression) and "on (job, instance)" not in expression
    ]
    assert loose == []

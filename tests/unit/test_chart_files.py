"""The chart's generated parts are fresh, and its dashboard and alerts use only what the
operator exports; the real tools (helm, promtool, Prometheus) are the integration tests'."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import conclave
from conclave.adapters import metrics
from conclave.api import crdgen
from monitoring import (
    CHART,
    ROOT,
    alert_rules,
    concrete,
    dashboard,
    dashboard_expressions,
    exported_names,
    metric_names,
    panels,
)

CRD_TEMPLATES = CHART / "templates" / "crds"
ALERTS = [
    "ClusterPartitioned",
    "QuorumLost",
    "SingletonUnplaced",
    "ProcessGroupBelowMinimum",
    "OperatorDown",
    "ReconcileErrorsHigh",
]


@pytest.mark.parametrize("definition", crdgen.all_crds(), ids=lambda d: d["metadata"]["name"])
def test_the_chart_crd_template_is_what_the_models_generate(definition: dict[str, Any]) -> None:
    committed = CRD_TEMPLATES / crdgen.file_name(definition)
    assert committed.exists(), f"{committed} is missing: run `make manifests`"
    assert committed.read_text() == crdgen.chart_template(definition), (
        f"{committed} is stale: `make manifests`"
    )


def test_the_chart_has_no_crd_template_the_models_do_not_generate() -> None:
    assert sorted(p.name for p in CRD_TEMPLATES.iterdir()) == sorted(
        crdgen.file_name(d) for d in crdgen.all_crds()
    )


def test_a_chart_crd_template_keeps_the_generated_spec_and_templates_only_metadata() -> None:
    definition = crdgen.all_crds()[0]
    template = crdgen.chart_template(definition)
    assert template.startswith("{{- if .Values.crds.enabled }}\n")
    assert template.endswith("{{- end }}\n")
    assert "\n  {{- if .Values.crds.keep }}\n  annotations:\n    helm.sh/resource-policy: keep\n" in template
    assert crdgen.render({"spec": definition["spec"]}) in template


def test_a_schema_with_template_braces_is_refused_rather_than_templated() -> None:
    definition = crdgen.all_crds()[0]
    braced = {**definition, "spec": {**definition["spec"], "group": "{{ .Values.x }}"}}
    with pytest.raises(ValueError, match="read as a template"):
        crdgen.chart_template(braced)


def test_the_chart_app_version_is_the_operator_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == conclave.__version__


def test_the_image_runs_as_a_numeric_non_root_user_on_a_pinned_base() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    unpinned = [base for base in bases if not re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base)]
    assert (len(bases), unpinned) == (2, [])
    pod = yaml.safe_load((CHART / "values.yaml").read_text())["podSecurityContext"]
    assert pod["runAsNonRoot"] is True
    assert users == [f"{pod['runAsUser']}:{pod['runAsGroup']}"]
    assert pod["runAsUser"] > 0


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ('sum by (le) (rate(a_bucket{x=~"$namespace"}[$__rate_interval]))', {"a_bucket"}),
        ("max by (namespace, topology) (b) - on (namespace) group_left c > 0", {"b", "c"}),
        ('absent(d == 1) or vector(0) and e{code="5xx"} offset 5m', {"d", "e"}),
        ("histogram_quantile(0.95, sum by (le) (rate(f_bucket[5m]))) > 1e3", {"f_bucket"}),
    ],
    ids=["a selector with matchers and a range", "label lists and operators", "keywords", "numbers"],
)
def test_metric_names_finds_exactly_the_selected_metrics(expression: str, names: set[str]) -> None:
    assert metric_names(expression) == names


def test_exported_names_carry_the_suffixes_prometheus_client_adds() -> None:
    exported = exported_names(metrics.REGISTRY)
    assert {"conclave_build_info", "conclave_leader", "conclave_reconcile_total"} <= exported
    assert {f"conclave_reconcile_seconds{s}" for s in ("_bucket", "_sum", "_count")} <= exported
    assert "conclave_reconcile" not in exported


def test_every_dashboard_query_uses_only_metrics_the_operator_exports() -> None:
    exported = exported_names(metrics.REGISTRY)
    unknown = {
        (title, name)
        for title, expression in dashboard_expressions()
        for name in metric_names(expression)
        if name not in exported
    }
    assert unknown == set()


def test_every_alert_uses_only_metrics_the_operator_exports() -> None:
    exported = exported_names(metrics.REGISTRY)
    unknown = {
        (rule["alert"], name)
        for rule in alert_rules()
        for name in metric_names(rule["expr"])
        if name not in exported
    }
    assert unknown == set()


def test_the_dashboard_covers_what_the_issue_asks_for() -> None:
    used = {name for _, expression in dashboard_expressions() for name in metric_names(expression)}
    wanted = {
        "conclave_topology_members",
        "conclave_topology_partitioned",
        "conclave_topology_components",
        "conclave_topology_quorum",
        "conclave_singletons",
        "conclave_singleton_placed",
        "conclave_singleton_failover_seconds_bucket",
        "conclave_singleton_owner_changes_total",
        "conclave_process_group_members",
        "conclave_reconcile_seconds_bucket",
        "conclave_api_errors_total",
    }
    assert wanted - used == set()


def test_the_dashboard_filters_by_namespace_and_topology_on_any_data_source() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    assert all(variables[name]["includeAll"] for name in ("namespace", "topology"))
    assert "uid" not in dashboard()  # Grafana assigns one; a fixed uid collides across installs
    datasources = {panel["datasource"]["uid"] for panel in panels()}
    datasources |= {target["datasource"]["uid"] for panel in panels() for target in panel["targets"]}
    assert datasources == {"${datasource}"}


def test_every_panel_with_topology_metrics_honours_the_topology_variable() -> None:
    """A panel on a metric labelled by topology must filter by it, or the variable lies."""
    ignored = [
        (title, expression)
        for title, expression in dashboard_expressions()
        if re.search(r"conclave_(topology|singleton)\w*", expression) and '"$topology"' not in expression
    ]
    assert ignored == []


def test_concrete_replaces_every_grafana_variable() -> None:
    for _, expression in dashboard_expressions():
        assert "$" not in concrete(expression, "1m"), expression


def test_the_issue_s_alerts_exist_each_with_a_duration_severity_summary_and_description() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert sorted(rules) == sorted(ALERTS)
    incomplete = [
        name
        for name, rule in rules.items()
        if not rule.get("for")
        or rule.get("labels", {}).get("severity") not in ("warning", "critical")
        or len(rule.get("annotations", {}).get("summary", "")) < 20
        or len(rule.get("annotations", {}).get("description", "")) < 100
    ]
    assert incomplete == []


def test_the_promtool_tests_cover_every_alert() -> None:
    suite = yaml.safe_load((Path(ROOT) / "tests" / "promtool" / "conclave.test.yaml").read_text())
    cases = [case for test in suite["tests"] for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert (sorted(firing), sorted(quiet)) == (sorted(ALERTS), sorted(ALERTS))

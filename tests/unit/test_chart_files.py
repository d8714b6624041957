"""The chart's generated parts are fresh (CRDs, README), its dashboard and alerts use only
what the operator exports, and the image's Dockerfile and lock match the package; the real
tools (helm, promtool, Prometheus, podman) are the integration and e2e tests'."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

import conclave
from conclave.adapters import metrics
from conclave.api import crdgen
from conclave_harness import chartdocs
from monitoring import CHART, ROOT, alert_rules, concrete, dashboard_expressions, exported_names, metric_names

CRD_TEMPLATES = CHART / "templates" / "crds"
ALERTS = [
    "ConclaveClusterPartitioned",
    "ConclaveQuorumLost",
    "ConclaveMembersDown",
    "ConclaveSingletonUnplaced",
    "ConclaveProcessGroupBelowMinimum",
    "ConclaveOperatorDown",
    "ConclaveReconcileErrorsHigh",
    "ConclaveOperatorMemoryHigh",
]
LOCK = ROOT / "image" / "requirements.txt"


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


def test_the_image_runs_as_the_chart_s_numeric_non_root_user_on_plain_debian() -> None:
    """Both stages on one Debian release (its python3 made the venv the final stage runs)."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    (base,) = re.findall(r"^ARG BASE=(\S+)$", dockerfile, re.MULTILINE)
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert re.fullmatch(r"(docker\.io/library/)?debian:bookworm(-\d{8})?-slim(@sha256:[0-9a-f]{64})?", base)
    assert bases == ["${BASE}", "${BASE}"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    pod, container = values["podSecurityContext"], values["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert users == [f"{pod['runAsUser']}:{pod['runAsGroup']}"]
    assert (container["runAsUser"], container["runAsGroup"]) == (pod["runAsUser"], pod["runAsGroup"]) > (0, 0)


def locked() -> dict[str, str]:
    """Package → version, as image/requirements.txt pins them."""
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", LOCK.read_text(), re.MULTILINE)
    return {name.lower().replace("_", "-"): version for name, version in pins}


def test_the_image_lock_pins_every_runtime_dependency_with_hashes() -> None:
    """`make lock` after a change to the dependencies: the image installs from the lock only."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {re.split(r"[<>=!~;\[ ]", d)[0].lower().replace("_", "-") for d in dependencies}
    assert wanted - set(locked()) == set(), "image/requirements.txt is stale: run `make lock`"
    blocks = re.split(r"^(?=\S)", LOCK.read_text(), flags=re.MULTILINE)
    unhashed = [b.split()[0] for b in blocks if "==" in b.split("\n")[0] and "--hash=sha256:" not in b]
    assert unhashed == []


def test_the_image_lock_satisfies_the_declared_ranges() -> None:
    from packaging.requirements import Requirement
    from packaging.version import Version

    pins = locked()
    for dependency in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(dependency)
        name = requirement.name.lower().replace("_", "-")
        assert Version(pins[name]) in requirement.specifier, f"{name}=={pins[name]} vs {requirement}"


def test_the_chart_readme_is_generated_from_the_values() -> None:
    assert (CHART / "README.md").read_text() == chartdocs.render(), "README.md is stale: `make chart-docs`"


def test_every_value_is_documented() -> None:
    """Each leaf of values.yaml has a `# --` comment, itself or on a map above it."""
    documented = set(chartdocs.documented((CHART / "values.yaml").read_text()))

    def leaves(node: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        if (
            isinstance(node, dict)
            and node
            and not any(path[:i] in documented for i in range(1, len(path) + 1))
        ):
            return [leaf for key, value in node.items() for leaf in leaves(value, (*path, key))]
        return [path]

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    undocumented = [
        ".".join(leaf)
        for leaf in leaves(values, ())
        if not any(leaf[:i] in documented for i in range(1, len(leaf) + 1))
    ]
    assert undocumented == []


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
        "conclave_topology_members_down",
        "process_resident_memory_bytes",
    }
    assert wanted - used == set()


def test_concrete_replaces_every_grafana_variable() -> None:
    for _, expression in dashboard_expressions():
        assert "$" not in concrete(expression, "1m"), expression


def test_the_issue_s_alerts_exist() -> None:
    """Their conventions (severity, summary, description, runbook) are tests/unit/test_rules.py's."""
    assert sorted(rule["alert"] for rule in alert_rules()) == sorted(ALERTS)


def test_the_promtool_tests_cover_every_alert() -> None:
    suite = yaml.safe_load((Path(ROOT) / "tests" / "promtool" / "conclave.test.yaml").read_text())
    cases = [case for test in suite["tests"] for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert (sorted(firing), sorted(quiet)) == (sorted(ALERTS), sorted(ALERTS))

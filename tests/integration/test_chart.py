"""The chart, the install manifest and the alert rules, each proven with the real tool:
helm (lint, template, install, upgrade), kubectl (server-side dry run) and promtool."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from chart_tools import Helm, kinds, value_args
from conclave.api import crdgen
from conclave_harness import tools
from monitoring import CHART, DASHBOARD, ROOT, RULES
from support import Cluster, raw_get

EVERY_FEATURE: dict[str, Any] = yaml.safe_load((CHART / "ci" / "every-option-values.yaml").read_text())
"""Every optional feature on (the file helm lint, kubeconform and kube-score check too)."""
CRD_NAMES = sorted(d["metadata"]["name"] for d in crdgen.all_crds())


@pytest.fixture(scope="module")
def helm(cluster: Cluster) -> Helm:
    return Helm.for_cluster(cluster.kubeconfig)


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = (item for item in objects if item["kind"] == kind)
    return found


@pytest.mark.parametrize("values", [{}, EVERY_FEATURE], ids=["default values", "every optional feature on"])
def test_helm_lint_strict_passes(helm: Helm, values: dict[str, Any]) -> None:
    output = helm.run("lint", "--strict", str(CHART), *value_args(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in output
    assert "[WARNING]" not in output


def test_the_defaults_render_the_operator_its_least_rbac_and_the_crds(helm: Helm) -> None:
    objects = helm.template("conclave", "ops")
    assert kinds(objects) == {
        "ClusterRole": ["conclave", "conclave-cluster", "conclave-edit", "conclave-view"],
        "ClusterRoleBinding": ["conclave", "conclave-cluster"],
        "CustomResourceDefinition": CRD_NAMES,
        "Deployment": ["conclave"],
        "PodDisruptionBudget": ["conclave"],
        "Role": ["conclave-leader-election"],
        "RoleBinding": ["conclave-leader-election"],
        "Service": ["conclave-metrics"],
        "ServiceAccount": ["conclave"],
    }
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert only(objects, "Deployment")["spec"]["replicas"] == 2
    assert container["args"][:2] == ["run", "--all-namespaces"]
    assert {"--leader-election-id=conclave", "--lease-duration=15s", "--retry-period=2s"} <= set(
        container["args"]
    )
    # A busy single event loop must not be killed for answering a probe late.
    assert (container["livenessProbe"], container["readinessProbe"]) == (
        {"httpGet": {"path": "/healthz", "port": "http-metrics"}, "periodSeconds": 10, "timeoutSeconds": 5,
         "failureThreshold": 6},
        {"httpGet": {"path": "/readyz", "port": "http-metrics"}, "periodSeconds": 10, "timeoutSeconds": 5,
         "failureThreshold": 3},
    )  # fmt: skip
    assert container["ports"] == [{"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # Two replicas: on different nodes if possible, over zones, and never both evicted at once.
    selector = {
        "matchLabels": {"app.kubernetes.io/name": "conclave", "app.kubernetes.io/instance": "conclave"}
    }
    assert pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [
        {
            "weight": 100,
            "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": selector},
        }
    ]
    assert pod["topologySpreadConstraints"] == [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": selector}
    ]  # fmt: skip
    assert only(objects, "PodDisruptionBudget")["spec"] == {
        "maxUnavailable": 1,
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
        "selector": selector,
    }
    leader = only(objects, "Role")["rules"][1]
    assert leader["resourceNames"] == ["conclave"]  # the release's Lease only
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    rules = [rule for role in objects if role["kind"] in ("ClusterRole", "Role") for rule in role["rules"]]
    wildcards = [rule for rule in rules if "*" in rule["verbs"] + rule["resources"] + rule["apiGroups"]]
    assert wildcards == []
    crd = next(item for item in objects if item["kind"] == "CustomResourceDefinition")
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_one_replica_gets_no_budget_and_no_spread(helm: Helm) -> None:
    objects = helm.template("conclave", "ops", {"replicaCount": 1})
    assert "PodDisruptionBudget" not in kinds(objects)
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert ("affinity" in pod, "topologySpreadConstraints" in pod) == (False, False)


def test_two_releases_in_one_namespace_elect_through_two_leases(helm: Helm) -> None:
    names = set()
    for release in ("team-a", "team-b"):
        (container,) = only(helm.template(release, "ops"), "Deployment")["spec"]["template"]["spec"][
            "containers"
        ]
        names |= {arg for arg in container["args"] if arg.startswith("--leader-election-id=")}
    assert names == {"--leader-election-id=team-a-conclave", "--leader-election-id=team-b-conclave"}


def test_every_optional_feature_renders_its_objects(helm: Helm) -> None:
    objects = helm.template("conclave", "ops", EVERY_FEATURE)
    found = kinds(objects)
    assert found["RoleBinding"] == ["conclave", "conclave", "conclave-leader-election"]
    assert "ClusterRoleBinding" in found
    assert found["ClusterRoleBinding"] == ["conclave-cluster"]  # namespaced: no cluster-wide binding
    assert {item["metadata"]["namespace"] for item in objects if item["kind"] == "RoleBinding"} == {
        "prod",
        "staging",
        "ops",
    }
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert [arg for arg in container["args"] if arg.startswith("--namespace")] == [
        "--namespace=prod",
        "--namespace=staging",
    ]
    assert "--leader-election-id=conclave-leader" in container["args"]
    assert container["image"] == f"conclave/operator@{EVERY_FEATURE['image']['digest']}"
    assert "requiredDuringSchedulingIgnoredDuringExecution" in pod["affinity"]["podAntiAffinity"]
    rules = only(objects, "PrometheusRule")["spec"]["groups"][0]["rules"]
    shipped = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == [
        r["alert"] for r in shipped if r["alert"] != "ConclaveReconcileErrorsHigh"
    ]
    assert {r["labels"]["team"] for r in rules} == {"platform"}
    assert {r["labels"]["severity"] for r in rules} == {"warning", "critical"}  # a rule's own labels win
    assert {r["annotations"]["runbook_url"] for r in rules} == {
        f"https://runbooks.example.com/conclave.md#{r['alert'].lower()}" for r in rules
    }
    dashboard = only(objects, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["conclave.json"]) == json.loads(DASHBOARD.read_text())
    monitor = only(objects, "ServiceMonitor")["spec"]["endpoints"][0]
    assert (monitor["port"], monitor["honorLabels"]) == ("http-metrics", True)
    assert monitor["metricRelabelings"] == EVERY_FEATURE["prometheus"]["serviceMonitor"]["metricRelabelings"]
    pod_monitor = only(objects, "PodMonitor")["spec"]["podMetricsEndpoints"][0]
    assert (pod_monitor["port"], pod_monitor["honorLabels"]) == ("http-metrics", True)
    assert only(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    policy = only(objects, "NetworkPolicy")["spec"]
    assert (policy["policyTypes"], policy["ingress"][0]["ports"]) == (
        ["Ingress", "Egress"],
        [{"port": "http-metrics", "protocol": "TCP"}],
    )


def test_default_alerts_are_the_rules_file_s(helm: Helm) -> None:
    """Nothing disabled or added: the PrometheusRule is rules/conclave.rules.yaml as promtool tests it."""
    (rule,) = (o for o in helm.template("conclave", "ops", {"prometheus": {"rules": {"enabled": True}}})
               if o["kind"] == "PrometheusRule")  # fmt: skip
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


def test_aggregated_roles_let_namespace_users_manage_conclave_resources(helm: Helm) -> None:
    roles = {o["metadata"]["name"]: o for o in helm.template("conclave", "ops") if o["kind"] == "ClusterRole"}
    aggregated = {
        name: sorted(
            k.rpartition("aggregate-to-")[2] for k in role["metadata"]["labels"] if "aggregate-to-" in k
        )
        for name, role in roles.items()
    }
    assert aggregated == {
        "conclave": [],
        "conclave-cluster": [],
        "conclave-view": ["admin", "edit", "view"],
        "conclave-edit": ["admin", "edit"],
    }
    assert roles["conclave-edit"]["rules"][0]["verbs"] == [
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    ]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicaCont": 3}, "additional properties 'replicaCont' not allowed"),
        ({"watchNamespaces": ["Prod_1"]}, "does not match pattern"),
        ({"crds": {"enabled": "yes"}}, "got string, want boolean"),
    ],
    ids=["a misspelt key", "a namespace that cannot exist", "a string for a switch"],
)
def test_values_schema_refuses_a_typo_at_install(helm: Helm, values: dict[str, Any], complaint: str) -> None:
    result = helm.attempt("template", "conclave", str(CHART), *value_args(values))
    assert result.returncode != 0
    assert complaint in result.stderr


def test_the_install_manifest_is_the_chart_rendered_with_its_defaults(helm: Helm) -> None:
    committed = (ROOT / "manifests" / "install.yaml").read_text()
    assert committed == tools.install_manifest(helm.binary, CHART), (
        "install.yaml is stale: run `make manifests`"
    )


def test_the_install_manifest_applies_with_a_server_side_dry_run(
    cluster: Cluster, api_client: client.ApiClient
) -> None:
    """Every object passes the API server's validation and admission; nothing is created."""
    core = client.CoreV1Api(api_client)
    # Namespaced objects need their namespace to exist even in a dry run.
    created = not any(n.metadata.name == tools.INSTALL_NAMESPACE for n in core.list_namespace().items)
    if created:
        core.create_namespace({"metadata": {"name": tools.INSTALL_NAMESPACE}})
    kubectl = tools.ensure_tools().kubectl
    try:
        result = subprocess.run(
            [str(kubectl), "--kubeconfig", str(cluster.kubeconfig), "apply", "--dry-run=server", "-f",
             str(ROOT / "manifests" / "install.yaml")],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
    finally:
        if created:
            core.delete_namespace(tools.INSTALL_NAMESPACE)
    assert result.returncode == 0, result.stderr
    applied = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len(
        [d for d in yaml.safe_load_all((ROOT / "manifests" / "install.yaml").read_text()) if d]
    )
    apps = client.AppsV1Api(api_client)
    assert [d.metadata.name for d in apps.list_namespaced_deployment(tools.INSTALL_NAMESPACE).items] == []


def with_extra_field(chart: Path, kind: str, field: str) -> None:
    """Change a copy of the chart as a new release of conclave would: a new spec field."""
    definition = copy.deepcopy(next(d for d in crdgen.all_crds() if d["spec"]["names"]["kind"] == kind))
    spec = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"][field] = {"type": "string", "maxLength": 10, "description": "Added by an upgrade."}
    (chart / "templates" / "crds" / crdgen.file_name(definition)).write_text(
        crdgen.chart_template(definition)
    )


def spec_fields(api_client: client.ApiClient, name: str) -> set[str]:
    crd = raw_get(api_client, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    return set(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"])


def test_helm_installs_the_chart_and_upgrades_the_crds_with_it(
    helm: Helm, api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    release = f"conclave-{namespace[-5:]}"
    # The session may have created the CRDs already (from the models); the chart adopts them.
    adopt = ("--take-ownership", "--force-conflicts")
    notes = helm.run("install", release, str(CHART), "--namespace", namespace, *adopt)
    assert f"kubectl -n {namespace} get lease {release}" in notes  # NOTES.txt: what to do next
    rbac = client.RbacAuthorizationV1Api(api_client)
    assert client.AppsV1Api(api_client).read_namespaced_deployment(release, namespace).spec.replicas == 2
    assert client.CoreV1Api(api_client).read_namespaced_service_account(release, namespace)
    assert rbac.read_cluster_role(release).rules
    assert rbac.read_cluster_role_binding(release).subjects[0].name == release
    assert rbac.read_namespaced_role(f"{release}-leader-election", namespace).rules
    topology = "clustertopologies.conclave.dev"
    assert "upgradeProbe" not in spec_fields(api_client, topology)

    changed = tmp_path / "conclave"
    shutil.copytree(CHART, changed)
    with_extra_field(changed, "ClusterTopology", "upgradeProbe")
    try:
        helm.run("upgrade", release, str(changed), "--namespace", namespace, "--force-conflicts")
        assert "upgradeProbe" in spec_fields(api_client, topology)
    finally:
        helm.run("upgrade", release, str(CHART), "--namespace", namespace, "--force-conflicts")
    assert "upgradeProbe" not in spec_fields(api_client, topology)

    helm.run("uninstall", release, "--namespace", namespace)
    extensions = client.ApiextensionsV1Api(api_client)
    kept = {c.metadata.name for c in extensions.list_custom_resource_definition().items}
    assert set(CRD_NAMES) <= kept  # crds.keep: uninstalling never deletes anyone's resources
    assert [r.metadata.name for r in rbac.list_cluster_role().items if r.metadata.name == release] == []


def test_promtool_checks_the_alert_rules_and_runs_their_unit_tests() -> None:
    promtool = str(tools.debian_tool("promtool"))
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    suite = ROOT / "tests" / "promtool" / "conclave.test.yaml"
    tested = subprocess.run(
        [promtool, "test", "rules", str(suite)], capture_output=True, text=True, check=False
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr

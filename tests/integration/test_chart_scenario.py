"""The operator as the chart deploys it, through a whole scenario: it runs under the chart's
ServiceAccount (a TokenRequest token) while a real Prometheus scrapes it.

One scenario serves two proofs. RBAC: the API server's audit log lists every call the
ServiceAccount made; none may be refused, and the set of (verb, group, resource,
subresource) used must equal what the chart's rules grant, so no rule is unused. The
dashboard: every panel's PromQL, sent to Prometheus, must return data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chart_tools import Helm, value_args
from conclave_harness.localcluster import PodNetwork
from conclave_harness.localcluster.clusters import free_port
from conclave_harness.localcluster.kubelet import FakeKubelet
from conclave_harness.sim import SimulatedMembers
from conflicts import ConflictingProxy
from monitoring import CHART, Prometheus, concrete, dashboard_expressions, has_data
from support import GROUP, VERSION, Cluster, create, custom, eventually, raw_get, read, token_kubeconfig

pytestmark = pytest.mark.usefixtures("installed_crds")

Call = tuple[str, str, str, str, str]
"""(namespace, verb, API group, resource, subresource) as the audit log and RBAC name them;
namespace "" for cluster-scoped calls and for what a ClusterRoleBinding grants."""

RELEASE = "audited"
RATE_INTERVAL = "5m"
"""Longer than the scenario, so every counter's whole history is in each rate window."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    granted: set[Call]
    """What the chart's roles bound to its ServiceAccount allow."""
    used: set[Call]
    """What the ServiceAccount called, less what every authenticated user may."""
    refused: list[str]
    unscripted: list[str]
    """Conflicts the proxy was told to answer but never got the request for."""
    answers: dict[tuple[str, str], list[dict[str, Any]]]
    """(panel, expression) → what Prometheus answered."""
    log: str


def expand(rules: list[dict[str, Any]], namespace: str) -> set[Call]:
    """Every call a list of RBAC rules allows, bound in ``namespace``."""
    calls = set()
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                name, _, subresource = resource.partition("/")
                calls |= {(namespace, verb, group, name, subresource) for verb in rule["verbs"]}
    return calls


def chart_grants(objects: list[dict[str, Any]], service_account: str, namespace: str) -> set[Call]:
    """What the rendered roles grant the ServiceAccount through the rendered bindings. The
    scenario watches namespaces, so its only ClusterRoleBinding is for cluster-scoped reads."""
    roles = {(o["kind"], o["metadata"]["name"]): o for o in objects if o["kind"] in ("Role", "ClusterRole")}
    subject = {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
    granted: set[Call] = set()
    for binding in (o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        if subject in binding["subjects"]:
            role = roles[binding["roleRef"]["kind"], binding["roleRef"]["name"]]
            granted |= expand(role["rules"], binding["metadata"].get("namespace", ""))
    return granted


def granted_to_everyone(api_client: client.ApiClient, namespace: str) -> set[Call]:
    """What the cluster's own bindings give every authenticated user or ServiceAccount
    (SelfSubjectAccessReview, for one), cluster-wide: no chart needs to grant it."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    groups = {"system:authenticated", "system:serviceaccounts", f"system:serviceaccounts:{namespace}"}
    granted: set[Call] = set()
    for binding in raw_get(api_client, f"{rbac}/clusterrolebindings")["items"]:
        if any(s["kind"] == "Group" and s["name"] in groups for s in binding.get("subjects", [])):
            role = raw_get(api_client, f"{rbac}/clusterroles/{binding['roleRef']['name']}")
            granted |= expand(role.get("rules", []), "")
    return granted


def call_of(event: dict[str, Any]) -> Call:
    ref = event["objectRef"]
    return (
        ref.get("namespace", ""),
        event["verb"],
        ref.get("apiGroup", ""),
        ref["resource"],
        ref.get("subresource", ""),
    )


def pod(api_client: client.ApiClient, namespace: str, name: str, **labels: str) -> None:
    client.CoreV1Api(api_client).create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name, "labels": {"app": "chat", **labels}},
            "spec": {"containers": [{"name": "beam", "image": "conclave.dev/fake:1"}]},
        },
    )


def singleton_status(api_client: client.ApiClient, namespace: str) -> dict[str, Any]:
    status: dict[str, Any] = read(api_client, namespace, "singletons", "scheduler").get("status", {})
    return status


def partition_state(api_client: client.ApiClient, namespace: str) -> str:
    status = read(api_client, namespace, "clustertopologies", "chat").get("status", {})
    return str(status.get("partition", {}).get("state"))


def run_workload(
    api_client: client.ApiClient,
    namespace: str,
    kubelet: FakeKubelet,
    sim: SimulatedMembers,
    prometheus: Prometheus,
) -> None:
    """Members join, a group fills and changes scope, a singleton is placed, the cluster splits and heals,
    the owner dies and the singleton fails over, a member stops answering its probe."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "chat"}, "spec": {"clusterIP": "None", "selector": {"app": "chat"}}}
    )
    for index in range(3):
        pod(api_client, namespace, f"chat-{index}", role="orders")
    names = []
    for index in range(3):
        ip = kubelet.wait_running(namespace, f"chat-{index}").status.pod_ip
        names.append(f"chat@{ip}")
        sim.add(names[-1], ip)
    sim.connect_all()
    probe = {"type": "http", "port": 4000, "interval": "500ms", "timeout": "300ms"}
    topology = {"strategy": "KubernetesAPI", "service": "chat", "applicationName": "chat", "probe": probe}
    group = {"topology": "chat", "scope": "pubsub", "group": "orders", "minMembers": 2}
    for plural, kind, name, spec in [
        ("clustertopologies", "ClusterTopology", "chat", {**topology, "partition": {"stableAfter": "1s"}}),
        (
            "processgroups",
            "ProcessGroup",
            "orders",
            {**group, "selector": {"matchLabels": {"role": "orders"}}},
        ),
        ("singletons", "Singleton", "scheduler", {"topology": "chat", "distribution": "Uniform"}),
    ]:
        create(api_client, namespace, plural, {"kind": kind, "metadata": {"name": name}, "spec": spec})

    eventually(lambda: partition_state(api_client, namespace) == "Healthy")
    eventually(
        lambda: read(api_client, namespace, "processgroups", "orders").get("status", {}).get("count") == 3
    )
    # a new scope is a new Service name: the group's old Service and EndpointSlice are deleted
    custom(api_client).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "processgroups", "orders", {"spec": {"scope": "billing"}}
    )
    old = "metadata.name=pubsub-orders"
    eventually(lambda: not core.list_namespaced_service(namespace, field_selector=old).items)
    discovery = client.DiscoveryV1Api(api_client)
    eventually(lambda: not discovery.list_namespaced_endpoint_slice(namespace, field_selector=old).items)
    placed = eventually(lambda: (s := singleton_status(api_client, namespace)).get("phase") == "Placed" and s)

    # cut off a member that owns nothing: fenced and reinstated, the owner would count a
    # failover before the one this scenario makes (which owner it is depends on the pod IPs)
    cut = next(name for name in reversed(names) if name != placed["owner"])
    sim.partition([[name for name in names if name != cut], [cut]])
    eventually(lambda: partition_state(api_client, namespace) == "Partitioned")
    sim.connect_all()
    eventually(lambda: partition_state(api_client, namespace) == "Healthy")

    # A rate needs a sample from before the failover: wait until Prometheus has scraped the
    # failover histogram at zero (the operator declares it with the first singleton).
    eventually(
        lambda: prometheus.query(f'conclave_singleton_failover_seconds_count{{namespace="{namespace}"}} == 0')
    )
    core.delete_namespaced_pod(placed["ownerPod"], namespace)  # terminating, then gone
    eventually(lambda: singleton_status(api_client, namespace).get("epoch", 0) > placed["epoch"])
    survivor = next(name for name in names if name != placed["owner"])
    sim.set_mode(survivor, "error")


def scripted_conflicts(namespace: str) -> list[tuple[str, str]]:
    """The first status write of each kind and the first create of each object conclave
    owns conflict, so the operator re-reads each (a get the chart must grant) and retries."""
    crs = rf"/apis/conclave\.dev/v1alpha1/namespaces/{namespace}"
    return [
        *(
            ("PATCH", rf"{crs}/{plural}/[^/]+/status")
            for plural in ("clustertopologies", "processgroups", "singletons")
        ),
        *(("POST", rf"/api/v1/namespaces/{namespace}/{plural}") for plural in ("services", "configmaps")),
        ("POST", rf"/apis/discovery\.k8s\.io/v1/namespaces/{namespace}/endpointslices"),
        ("POST", rf"/apis/coordination\.k8s\.io/v1/namespaces/{namespace}/leases"),
    ]


@contextlib.contextmanager
def operator(kubeconfig: Path, home: str, watched: str, lease: str, port: int, log: Path) -> Iterator[None]:
    """`conclave run` as the chart's Deployment runs it: its Lease (named after the release) at
    home, watching another namespace."""
    command = [
        sys.executable, "-m", "conclave", "run", "--kubeconfig", str(kubeconfig), "--namespace", watched,
        "--identity", "audited-0", "--leader-election-namespace", home, "--leader-election-id", lease,
        "--health-port", str(port),
        "--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms",
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=15)


def dashboard_answers(prometheus: Prometheus) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every dashboard query's answer, once all have data (or after 60s, as they are then: a loaded
    machine can leave a rate without its second sample for a while)."""
    expressions = [
        (title, concrete(expression, RATE_INTERVAL)) for title, expression in dashboard_expressions()
    ]

    def ask() -> dict[tuple[str, str], list[dict[str, Any]]]:
        return {key: prometheus.query(key[1]) for key in expressions}

    try:
        return eventually(lambda: (found := ask()) and all(map(has_data, found.values())) and found, 60, 1.0)
    except AssertionError:  # the test names the panels without data
        return ask()


@pytest.fixture(scope="module")
def outcome(
    cluster: Cluster,
    api_client: client.ApiClient,
    kubelet: FakeKubelet,
    pod_network: PodNetwork,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Outcome]:
    directory = tmp_path_factory.mktemp("chart-scenario")
    core = client.CoreV1Api(api_client)
    suffix = uuid.uuid4().hex[:5]
    home, watched = f"chart-home-{suffix}", f"chart-watched-{suffix}"  # home: the release and leader Lease
    for namespace in (home, watched):
        core.create_namespace({"metadata": {"name": namespace, "labels": {"conclave.dev/test": "true"}}})
    helm = Helm.for_cluster(cluster.kubeconfig)
    # The chart's RBAC and ServiceAccount; the operator runs here, not in the Deployment.
    values = {"watchNamespaces": [watched], "crds.enabled": False, "replicaCount": 0}
    helm.run("install", RELEASE, str(CHART), "--namespace", home, *value_args(values))
    objects = helm.template(RELEASE, home, values)
    account = next(o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount")
    (lease,) = next(o for o in objects if o["kind"] == "Role")["rules"][1]["resourceNames"]
    upstream = api_client.configuration
    port = free_port()
    log = directory / "operator.log"
    try:
        with (
            ConflictingProxy(upstream.host, upstream.ssl_ca_cert, scripted_conflicts(watched)) as proxy,
            Prometheus(directory, [f"127.0.0.1:{port}"]) as prometheus,
            SimulatedMembers(pod_network) as sim,
        ):
            kubeconfig = token_kubeconfig(api_client, home, account, proxy.url, directory / "kubeconfig")
            with operator(kubeconfig, home, watched, lease, port, log):
                run_workload(api_client, watched, kubelet, sim, prometheus)
                answers = dashboard_answers(prometheus)
        username = f"system:serviceaccount:{home}:{account}"
        events = [e for e in cluster.audit_events() if e["user"]["username"] == username and "objectRef" in e]
        everyone = {call[1:] for call in granted_to_everyone(api_client, home)}
        yield Outcome(
            granted=chart_grants(objects, account, home),
            used={call for call in map(call_of, events) if call[1:] not in everyone},
            refused=[f"{e['verb']} {e['requestURI']}" for e in events if e["responseStatus"]["code"] == 403],
            unscripted=[f"{method} {pattern.pattern}" for method, pattern in proxy.pending],
            answers=answers,
            log=log.read_text(errors="replace"),
        )
    finally:
        helm.run("uninstall", RELEASE, "--namespace", home)
        for namespace in (home, watched):
            with contextlib.suppress(ApiException):
                core.delete_namespace(namespace)


def test_the_operator_under_the_chart_s_service_account_is_never_refused(outcome: Outcome) -> None:
    assert outcome.refused == [], outcome.log


def test_the_chart_grants_exactly_what_the_operator_uses(outcome: Outcome) -> None:
    assert outcome.unscripted == []  # every conflict path, and so its re-read, was walked
    assert (sorted(outcome.granted - outcome.used), sorted(outcome.used - outcome.granted)) == ([], [])


def test_every_dashboard_query_returns_data_from_a_real_prometheus(outcome: Outcome) -> None:
    empty = [f"{title}: {query}" for (title, query), found in outcome.answers.items() if not has_data(found)]
    assert empty == [], "\n".join(empty)

"""The chart's ServiceMonitor, scraped the way the Prometheus Operator would scrape it: a real
Prometheus applies the relabelling the Prometheus Operator generates for the rendered
ServiceMonitor (monitoring.service_monitor_scrape_config) to the targets kubernetes_sd would
discover from the API server's EndpointSlice, Service and Pod of the chart's release
(monitoring.endpointslice_targets: Debian's Prometheus has no Kubernetes discovery built
in). A plain static scrape cannot see what this shows: with honorLabels (the chart's default)
a topology's series keep the topology's namespace; without it the target's namespace (the
operator's) overwrites it.

The chart's pod is run by the fake kubelet, which gives it a pod IP; a forwarder at that IP
inside the pod network passes the scrape to a real `conclave run` on the host.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chart_tools import Helm, static_topology, value_args
from conclave_harness.localcluster import PodNetwork
from conclave_harness.localcluster.kubelet import FakeKubelet
from monitoring import CHART, FORWARDER, Prometheus, endpointslice_targets, service_monitor_scrape_config
from support import Cluster, Operators, eventually, raw_get

pytestmark = pytest.mark.usefixtures("installed_crds")

RELEASE = "scraped"
FAST = {"interval": "1s", "scrapeTimeout": "1s"}
VARIANTS: dict[str, dict[str, Any]] = {
    "honoured": {},
    # The Prometheus Operator's default; relabelings and metricRelabelings from the values too.
    "overwritten": {
        "honorLabels": False,
        "relabelings": [{"targetLabel": "variant", "replacement": "overwritten"}],
        "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "python_gc_.*", "action": "drop"}],
    },
}


def discovered(api_client: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """The release namespace's targets, as kubernetes_sd (role endpointslice) would find them."""
    base = f"/namespaces/{namespace}"
    slices = raw_get(api_client, f"/apis/discovery.k8s.io/v1{base}/endpointslices")["items"]
    services = {s["metadata"]["name"]: s for s in raw_get(api_client, f"/api/v1{base}/services")["items"]}
    pods = {p["metadata"]["name"]: p for p in raw_get(api_client, f"/api/v1{base}/pods")["items"]}
    return endpointslice_targets(slices, services, pods)


@contextlib.contextmanager
def forwarding(network: PodNetwork, pod_ip: str, port: int, target_port: int) -> Iterator[None]:
    """Connections to pod_ip:port go to the host side of the pod network at target_port."""
    command = [sys.executable, "-c", FORWARDER, pod_ip, str(port), network.host_address, str(target_port)]
    process = subprocess.Popen(network.command(command), stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def by_variant(samples: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Each sample's labels by the scrape job it came from (the relabelled one says so)."""
    return {sample["metric"].get("variant", "honoured"): sample["metric"] for sample in samples}


@pytest.fixture(scope="module")
def scraped(
    cluster: Cluster,
    api_client: client.ApiClient,
    kubelet: FakeKubelet,
    pod_network: PodNetwork,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """Prometheus' answers once both scrape jobs have the topology's series."""
    directory = tmp_path_factory.mktemp("chart-scrape")
    core = client.CoreV1Api(api_client)
    suffix = uuid.uuid4().hex[:5]
    home, watched = f"scrape-home-{suffix}", f"scrape-team-{suffix}"
    for namespace in (home, watched):
        core.create_namespace({"metadata": {"name": namespace, "labels": {"conclave.dev/test": "true"}}})
    helm = Helm.for_cluster(cluster.kubeconfig)
    values = {"watchNamespaces": [watched], "crds": {"enabled": False}, "replicaCount": 1}
    try:
        helm.run("install", RELEASE, str(CHART), "--namespace", home, *value_args(values))
        (pod,) = eventually(
            lambda: [
                p
                for p in core.list_namespaced_pod(
                    home, label_selector=f"app.kubernetes.io/instance={RELEASE}"
                ).items
                if p.status.phase == "Running" and p.status.pod_ip
            ]
        )
        # The EndpointSlice controller publishes the pod once it is Ready.
        targets = eventually(
            lambda: [t for t in discovered(api_client, home) if pod.status.pod_ip in t["targets"][0]]
        )
        configs = []
        for variant, extra in VARIANTS.items():
            monitor_values = {**values, "prometheus": {"serviceMonitor": {"enabled": True, **FAST, **extra}}}
            (monitor,) = (
                o for o in helm.template(RELEASE, home, monitor_values) if o["kind"] == "ServiceMonitor"
            )
            (config,) = service_monitor_scrape_config(monitor, targets)
            configs.append({**config, "job_name": f"{config['job_name']}-{variant}"})
        operator = Operators(cluster.kubeconfig, watched, directory)("scraped-0")
        try:
            static_topology(api_client, watched, "chat@10.0.0.1")
            with (
                forwarding(pod_network, pod.status.pod_ip, 8080, operator.health_port),
                Prometheus(directory, [], scrape_configs=configs) as prometheus,
            ):
                series = 'conclave_topology_members{topology="chat", ready="true"}'
                for query in (series, "process_resident_memory_bytes"):  # from both jobs
                    eventually(
                        lambda q=query: len(by_variant(prometheus.query(q))) == 2, timeout=60, interval=0.5
                    )
                yield {
                    "members": prometheus.query(series),
                    "down": prometheus.query('conclave_topology_members_down{topology="chat"}'),
                    "memory": prometheus.query("process_resident_memory_bytes"),
                    "gc": prometheus.query("python_gc_collections_total"),
                    "namespaces": prometheus.query(
                        f'count by (namespace) (conclave_topology_members{{namespace="{watched}"}})'
                    ),
                    "home": home,
                    "watched": watched,
                    "pod": pod.metadata.name,
                }
        finally:
            operator.stop()
    finally:
        helm.attempt("uninstall", RELEASE, "--namespace", home)
        for namespace in (home, watched):
            with contextlib.suppress(ApiException):
                core.delete_namespace(namespace)


def test_with_honor_labels_a_topology_s_series_keep_its_namespace(scraped: dict[str, Any]) -> None:
    labels = by_variant(scraped["members"])["honoured"]
    assert labels["namespace"] == scraped["watched"]
    assert "exported_namespace" not in labels
    # The rest is the target's, as the Prometheus Operator labels it.
    assert (labels["job"], labels["service"], labels["endpoint"], labels["pod"]) == (
        f"{RELEASE}-conclave-metrics",
        f"{RELEASE}-conclave-metrics",
        "http-metrics",
        scraped["pod"],
    )


def test_without_honor_labels_the_operator_s_namespace_overwrites_the_topology_s(
    scraped: dict[str, Any],
) -> None:
    labels = by_variant(scraped["members"])["overwritten"]
    assert (labels["namespace"], labels["exported_namespace"]) == (scraped["home"], scraped["watched"])


def test_members_down_keeps_the_topology_s_namespace_too(scraped: dict[str, Any]) -> None:
    assert by_variant(scraped["down"])["honoured"]["namespace"] == scraped["watched"]


def test_process_metrics_are_scraped_with_the_operator_s_namespace(scraped: dict[str, Any]) -> None:
    """They carry no namespace of their own, so the target's applies under either setting."""
    assert {variant: labels["namespace"] for variant, labels in by_variant(scraped["memory"]).items()} == {
        "honoured": scraped["home"],
        "overwritten": scraped["home"],
    }


def test_metric_relabelings_from_the_values_apply(scraped: dict[str, Any]) -> None:
    assert sorted(by_variant(scraped["gc"])) == ["honoured"]  # dropped from the other job


def test_the_dashboard_s_namespace_variable_lists_the_topology_s_namespace(scraped: dict[str, Any]) -> None:
    assert [sample["metric"]["namespace"] for sample in scraped["namespaces"]] == [scraped["watched"]]

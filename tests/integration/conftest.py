"""Integration fixtures: the generated CRDs (installed once per session), the cluster DNS, and
a topology of real pods with simulated members probed by a running operator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from conclave.adapters.apiclient import ApiClient, load_configuration
from conclave_harness.demo import install_crds
from conclave_harness.localcluster import PodNetwork
from conclave_harness.localcluster.dnsserver import ClusterDNS
from conclave_harness.localcluster.kubelet import FakeKubelet
from conclave_harness.sim import SimulatedMembers
from support import STABLE_AFTER, Cluster, create, eventually, member_pod, partition_of


@pytest.fixture(scope="session")
def installed_crds(cluster: Cluster) -> None:
    """Create or replace the CRDs from the models (not from crds/: the models are the source),
    as the demo does."""

    async def install() -> None:
        async with ApiClient(load_configuration(str(cluster.kubeconfig)), "tests") as api:
            await install_crds(api)

    asyncio.run(install())


@pytest.fixture(scope="session")
def cluster_dns(api_client: client.ApiClient) -> Iterator[ClusterDNS]:
    """The local cluster's DNS server, answering from the API like CoreDNS."""
    with ClusterDNS(api_client) as dns:
        yield dns


@pytest.fixture
def cluster_of(
    api_client: client.ApiClient,
    namespace: str,
    kubelet: FakeKubelet,
    pod_network: PodNetwork,
    start_operator: Callable[..., Any],
) -> Iterator[Callable[..., tuple[SimulatedMembers, list[str]]]]:
    """Start ``size`` members (pods and simulated BEAM views) and a topology probing them;
    return the simulation and the node names ordered by address."""
    with SimulatedMembers(pod_network) as sim:

        def start(size: int, **partition: str) -> tuple[SimulatedMembers, list[str]]:
            core = client.CoreV1Api(api_client)
            core.create_namespaced_service(
                namespace,
                {"metadata": {"name": "chat"}, "spec": {"clusterIP": "None", "selector": {"app": "chat"}}},
            )
            for index in range(size):
                core.create_namespaced_pod(namespace, member_pod(f"chat-{index}"))
            ips = sorted(
                (kubelet.wait_running(namespace, f"chat-{i}").status.pod_ip for i in range(size)),
                key=lambda ip: tuple(int(part) for part in ip.split(".")),
            )
            names = [f"chat@{ip}" for ip in ips]
            for name, ip in zip(names, ips, strict=True):
                sim.add(name, ip)
            sim.connect_all()
            create(
                api_client,
                namespace,
                "clustertopologies",
                {
                    "kind": "ClusterTopology",
                    "metadata": {"name": "chat"},
                    "spec": {
                        "strategy": "KubernetesAPI",
                        "service": "chat",
                        "applicationName": "chat",
                        "probe": {"type": "http", "port": 4000, "interval": "500ms", "timeout": "300ms"},
                        "partition": {"stableAfter": f"{STABLE_AFTER:.0f}s", **partition},
                    },
                },
            )
            start_operator()
            eventually(lambda: partition_of(api_client, namespace).get("state") == "Healthy", timeout=30)
            return sim, names

        yield start

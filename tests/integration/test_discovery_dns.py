"""The DNS strategies against a real DNS server that answers from the API's EndpointSlices."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from conclave.errors import DNSError
from conclave.observe import resolving
from conclave_harness.localcluster.dnsserver import ClusterDNS
from conclave_harness.localcluster.kubelet import FakeKubelet
from support import condition, create, events_about, eventually, read

pytestmark = pytest.mark.usefixtures("installed_crds")


def lookup(dns: ClusterDNS, name: str) -> list[str] | str:
    try:
        return asyncio.run(resolving.resolve_a(name, dns.address, 1.0))
    except DNSError as error:
        return error.reason


def pods(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, count: int, **spec: Any
) -> list[str]:
    core = client.CoreV1Api(api_client)
    for index in range(count):
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": f"chat-{index}", "labels": {"app": "chat"}},
                "spec": {"containers": [{"name": "beam", "image": "conclave.dev/fake:1"}], **spec},
            },
        )
    return sorted(kubelet.wait_running(namespace, f"chat-{i}").status.pod_ip for i in range(count))


def headless(api_client: client.ApiClient, namespace: str, **spec: Any) -> None:
    client.CoreV1Api(api_client).create_namespaced_service(
        namespace,
        {"metadata": {"name": "chat"}, "spec": {"clusterIP": "None", "selector": {"app": "chat"}, **spec}},
    )


def test_the_dns_server_answers_like_coredns(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, cluster_dns: ClusterDNS
) -> None:
    headless(api_client, namespace)
    ips = pods(api_client, namespace, kubelet, 3, hostname="chat-0", subdomain="chat")
    service = f"chat.{namespace}.svc.cluster.local"
    assert eventually(lambda: lookup(cluster_dns, service) == ips)
    assert lookup(cluster_dns, f"{ips[0].replace('.', '-')}.{namespace}.pod.cluster.local") == [ips[0]]
    assert eventually(
        lambda: len(r := lookup(cluster_dns, f"chat-0.chat.{namespace}.svc.cluster.local")) == 3 and r
    )

    kubelet.set_ready(namespace, "chat-1", ready=False)
    not_ready = client.CoreV1Api(api_client).read_namespaced_pod("chat-1", namespace).status.pod_ip
    assert eventually(lambda: lookup(cluster_dns, service) == [ip for ip in ips if ip != not_ready])

    client.CoreV1Api(api_client).delete_namespaced_service("chat", namespace)
    assert eventually(lambda: lookup(cluster_dns, service) == "NXDOMAIN")
    headless(api_client, namespace, publishNotReadyAddresses=True)
    assert eventually(lambda: lookup(cluster_dns, service) == ips)


def test_a_headless_service_too_large_for_one_udp_answer_resolves_whole_over_tcp(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, cluster_dns: ClusterDNS
) -> None:
    headless(api_client, namespace)
    ips = pods(api_client, namespace, kubelet, 40)  # 40 A records: about 700 bytes, past UDP's 512
    assert eventually(lambda: lookup(cluster_dns, f"chat.{namespace}.svc.cluster.local") == ips)


def dns_topology(api_client: client.ApiClient, namespace: str, **spec: Any) -> None:
    create(
        api_client,
        namespace,
        "clustertopologies",
        {
            "kind": "ClusterTopology",
            "metadata": {"name": "chat"},
            "spec": {"applicationName": "chat", "pollingInterval": "1s", **spec},
        },
    )


def members(api_client: client.ApiClient, namespace: str) -> list[str]:
    status = read(api_client, namespace, "clustertopologies", "chat").get("status", {})
    return [m["name"] for m in status.get("members", [])]


def test_kubernetes_dns_follows_the_ready_pods_within_the_polling_interval(
    api_client: client.ApiClient,
    namespace: str,
    kubelet: FakeKubelet,
    cluster_dns: ClusterDNS,
    start_operator: Callable[..., Any],
) -> None:
    headless(api_client, namespace)
    dns_topology(api_client, namespace, strategy="KubernetesDNS", service="chat")
    start_operator("operator-0", "--dns-server", f"{cluster_dns.address[0]}:{cluster_dns.address[1]}")
    body = eventually(
        lambda: (
            (b := read(api_client, namespace, "clustertopologies", "chat"))
            and condition(b, "Discovered")
            and b
        )
    )
    assert condition(body, "Discovered")["reason"] == "NoMembers"  # type: ignore[index]

    ips = pods(api_client, namespace, kubelet, 3)
    started = time.monotonic()
    eventually(lambda: members(api_client, namespace) == [f"chat@{ip}" for ip in ips])
    assert time.monotonic() - started < 1.0 + 1.0 + 1.0  # pollingInterval + 1 s, and the slice's own delay

    kubelet.set_ready(namespace, "chat-2", ready=False)
    gone = client.CoreV1Api(api_client).read_namespaced_pod("chat-2", namespace).status.pod_ip
    eventually(lambda: f"chat@{gone}" not in members(api_client, namespace))


def test_dns_poll_names_members_after_the_addresses_and_keeps_them_through_a_dns_failure(
    api_client: client.ApiClient, namespace: str, cluster_dns: ClusterDNS, start_operator: Callable[..., Any]
) -> None:
    query = f"{namespace}.internal"
    cluster_dns.set_records(query, ["10.245.250.2", "10.245.250.1"])
    dns_topology(api_client, namespace, strategy="DNSPoll", query=query)
    start_operator("operator-0", "--dns-server", f"{cluster_dns.address[0]}:{cluster_dns.address[1]}")
    try:
        eventually(lambda: members(api_client, namespace) == ["chat@10.245.250.1", "chat@10.245.250.2"])

        cluster_dns.clear_records(query)  # NXDOMAIN for a DNSPoll name is a failure, not "no members"
        body = eventually(
            lambda: (
                (b := read(api_client, namespace, "clustertopologies", "chat"))
                and (condition(b, "Discovered") or {}).get("reason") == "DNSFailure"
                and b
            )
        )
        assert body["status"]["stale"] is True
        assert [m["name"] for m in body["status"]["members"]] == ["chat@10.245.250.1", "chat@10.245.250.2"]
        assert eventually(
            lambda: (
                ("Warning", "DNSFailure")
                in [(t, r) for t, r, _ in events_about(api_client, namespace, "chat")]
            )
        )

        cluster_dns.set_records(query, ["10.245.250.3"])
        eventually(lambda: members(api_client, namespace) == ["chat@10.245.250.3"])
    finally:
        cluster_dns.clear_records(query)


def test_a_dns_server_that_stops_answering_is_a_timeout_not_an_empty_cluster(
    api_client: client.ApiClient, namespace: str, cluster_dns: ClusterDNS, start_operator: Callable[..., Any]
) -> None:
    query = f"{namespace}.internal"
    cluster_dns.set_records(query, ["10.245.250.1"])
    dns_topology(api_client, namespace, strategy="DNSPoll", query=query)
    start_operator("operator-0", "--dns-server", f"{cluster_dns.address[0]}:{cluster_dns.address[1]}")
    try:
        eventually(lambda: members(api_client, namespace) == ["chat@10.245.250.1"])
        cluster_dns.fail_with("timeout")
        body = eventually(
            lambda: (
                (b := read(api_client, namespace, "clustertopologies", "chat"))
                and (condition(b, "Discovered") or {}).get("reason") == "DNSFailure"
                and b
            )
        )
        assert "no answer from" in condition(body, "Discovered")["message"]  # type: ignore[index]
        assert members(api_client, namespace) == ["chat@10.245.250.1"]
    finally:
        cluster_dns.fail_with(None)
        cluster_dns.clear_records(query)

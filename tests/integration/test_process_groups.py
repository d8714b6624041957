"""ProcessGroup membership against the real control plane with fake-kubelet pods."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from conclave.errors import DNSError
from conclave.observe import resolving
from conclave_harness.localcluster.dnsserver import ClusterDNS
from conclave_harness.localcluster.kubelet import FakeKubelet
from support import (
    GROUP,
    VERSION,
    OperatorProcess,
    condition,
    create,
    custom,
    events_about,
    eventually,
    read,
)

pytestmark = pytest.mark.usefixtures("installed_crds")


def pod(api_client: client.ApiClient, namespace: str, name: str, **labels: str) -> None:
    client.CoreV1Api(api_client).create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name, "labels": {"app": "chat", **labels}},
            "spec": {"containers": [{"name": "beam", "image": "conclave.dev/fake:1"}]},
        },
    )


def process_group(api_client: client.ApiClient, namespace: str, name: str, scope: str, **labels: str) -> None:
    create(
        api_client,
        namespace,
        "processgroups",
        {
            "kind": "ProcessGroup",
            "metadata": {"name": name},
            "spec": {
                "topology": "chat",
                "scope": scope,
                "group": "orders",
                "selector": {"matchLabels": labels},
            },
        },
    )


def group_members(api_client: client.ApiClient, namespace: str, name: str) -> list[str]:
    return list(read(api_client, namespace, "processgroups", name).get("status", {}).get("members", []))


def published(api_client: client.ApiClient, namespace: str, name: str, dns: ClusterDNS) -> list[str] | None:
    """The addresses conclave's EndpointSlice publishes, if DNS answers exactly those too."""
    service = read(api_client, namespace, "processgroups", name).get("status", {}).get("serviceName")
    if not service:
        return None
    slices = client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    assert all(
        s.metadata.labels["endpointslice.kubernetes.io/managed-by"] == "conclave.dev" for s in slices.items
    )
    addresses = sorted(a for s in slices.items for e in s.endpoints or [] for a in e.addresses)
    try:
        resolved = asyncio.run(
            resolving.resolve_a(f"{service}.{namespace}.svc.cluster.local", dns.address, 1.0)
        )
    except DNSError:
        resolved = []
    return addresses if resolved == addresses else None


def in_sync(api_client: client.ApiClient, namespace: str, name: str, dns: ClusterDNS) -> bool:
    """The EndpointSlice and DNS publish exactly the members status lists."""
    members = sorted(m.split("@", 1)[1] for m in group_members(api_client, namespace, name))
    return published(api_client, namespace, name, dns) == members


def node_name(kubelet: FakeKubelet, namespace: str, pod_name: str) -> str:
    return f"chat@{kubelet.wait_running(namespace, pod_name).status.pod_ip}"


@pytest.fixture
def chat(api_client: client.ApiClient, namespace: str, start_operator: Callable[..., Any]) -> OperatorProcess:
    client.CoreV1Api(api_client).create_namespaced_service(
        namespace, {"metadata": {"name": "chat"}, "spec": {"clusterIP": "None", "selector": {"app": "chat"}}}
    )
    create(
        api_client,
        namespace,
        "clustertopologies",
        {
            "kind": "ClusterTopology",
            "metadata": {"name": "chat"},
            "spec": {"strategy": "KubernetesAPI", "service": "chat", "applicationName": "chat"},
        },
    )
    return start_operator()


@pytest.mark.usefixtures("chat")
def test_members_join_leave_rejoin_with_a_new_ip_and_follow_readiness_and_the_selector(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, cluster_dns: ClusterDNS
) -> None:
    process_group(api_client, namespace, "orders", "pubsub", role="subscriber")
    pod(api_client, namespace, "chat-0", role="subscriber")
    pod(api_client, namespace, "chat-1", role="worker")
    first = node_name(kubelet, namespace, "chat-0")
    eventually(lambda: group_members(api_client, namespace, "orders") == [first])
    assert eventually(lambda: in_sync(api_client, namespace, "orders", cluster_dns))

    pod(api_client, namespace, "chat-2", role="subscriber")
    second = node_name(kubelet, namespace, "chat-2")
    eventually(lambda: group_members(api_client, namespace, "orders") == sorted([first, second]))
    assert eventually(lambda: in_sync(api_client, namespace, "orders", cluster_dns))
    assert eventually(
        lambda: "MemberJoinedGroup" in [r for _, r, _ in events_about(api_client, namespace, "orders")]
    )

    kubelet.set_ready(namespace, "chat-2", ready=False)
    eventually(lambda: group_members(api_client, namespace, "orders") == [first])
    assert eventually(lambda: in_sync(api_client, namespace, "orders", cluster_dns))
    kubelet.set_ready(namespace, "chat-2", ready=True)
    eventually(lambda: group_members(api_client, namespace, "orders") == sorted([first, second]))
    assert eventually(lambda: in_sync(api_client, namespace, "orders", cluster_dns))

    client.CoreV1Api(api_client).delete_namespaced_pod("chat-0", namespace)
    eventually(lambda: group_members(api_client, namespace, "orders") == [second])
    assert eventually(lambda: in_sync(api_client, namespace, "orders", cluster_dns))
    pod(api_client, namespace, "chat-0", role="subscriber")  # restarted, with a new IP
    restarted = node_name(kubelet, namespace, "chat-0")
    assert restarted != first
    eventually(lambda: group_members(api_client, namespace, "orders") == sorted([restarted, second]))
    assert eventually(lambda: in_sync(api_client, namespace, "orders", cluster_dns))

    custom(api_client).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "processgroups",
        "orders",
        {"spec": {"selector": {"matchLabels": {"role": "worker"}}}},
    )
    worker = node_name(kubelet, namespace, "chat-1")
    eventually(lambda: group_members(api_client, namespace, "orders") == [worker])
    assert eventually(lambda: in_sync(api_client, namespace, "orders", cluster_dns))


@pytest.mark.usefixtures("chat")
def test_the_same_group_in_two_scopes_is_two_groups(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, cluster_dns: ClusterDNS
) -> None:
    process_group(api_client, namespace, "pubsub-orders", "pubsub", role="subscriber")
    process_group(api_client, namespace, "workers-orders", "workers", role="worker")
    pod(api_client, namespace, "chat-0", role="subscriber")
    pod(api_client, namespace, "chat-1", role="worker")
    eventually(
        lambda: (
            group_members(api_client, namespace, "pubsub-orders") == [node_name(kubelet, namespace, "chat-0")]
        )
    )
    eventually(
        lambda: (
            group_members(api_client, namespace, "workers-orders")
            == [node_name(kubelet, namespace, "chat-1")]
        )
    )


def test_a_group_whose_scope_changes_moves_to_a_new_service_and_removes_its_old_one(
    api_client: client.ApiClient,
    namespace: str,
    kubelet: FakeKubelet,
    cluster_dns: ClusterDNS,
    chat: OperatorProcess,
) -> None:
    """The old name would otherwise keep resolving to live members of another group, and
    the old series would keep reporting its size."""
    core, discovery = client.CoreV1Api(api_client), client.DiscoveryV1Api(api_client)
    process_group(api_client, namespace, "orders", "pubsub", role="subscriber")
    pod(api_client, namespace, "chat-0", role="subscriber")
    assert eventually(
        lambda: (
            group_members(api_client, namespace, "orders")
            and in_sync(api_client, namespace, "orders", cluster_dns)
        )
    )
    assert read(api_client, namespace, "processgroups", "orders")["status"]["serviceName"] == "pubsub-orders"
    series = {"namespace": namespace, "group": "orders"}
    assert eventually(lambda: chat.metric("conclave_process_group_members", **series, scope="pubsub") == 1)

    custom(api_client).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "processgroups", "orders", {"spec": {"scope": "billing"}}
    )
    eventually(
        lambda: (
            read(api_client, namespace, "processgroups", "orders")["status"]["serviceName"]
            == "billing-orders"
        )
    )
    assert eventually(lambda: in_sync(api_client, namespace, "orders", cluster_dns))
    old = "metadata.name=pubsub-orders"
    eventually(lambda: not core.list_namespaced_service(namespace, field_selector=old).items)
    eventually(lambda: not discovery.list_namespaced_endpoint_slice(namespace, field_selector=old).items)
    assert core.read_namespaced_service("chat", namespace), "the topology's own Service is not the group's"
    eventually(lambda: chat.metric("conclave_process_group_members", **series, scope="billing") == 1)
    assert eventually(  # the old series go right after the plan that set the new ones
        lambda: all(
            chat.metric(family, **series, scope="pubsub") is None
            for family in ("conclave_process_group_members", "conclave_process_group_min_members")
        )
    )


@pytest.mark.usefixtures("chat")
def test_a_group_that_drops_to_zero_is_empty_and_loud_within_a_second(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet
) -> None:
    process_group(api_client, namespace, "orders", "pubsub", role="subscriber")
    pod(api_client, namespace, "chat-0", role="subscriber")
    eventually(
        lambda: group_members(api_client, namespace, "orders") == [node_name(kubelet, namespace, "chat-0")]
    )

    client.CoreV1Api(api_client).delete_namespaced_pod("chat-0", namespace)
    eventually(lambda: not _pod_exists(api_client, namespace, "chat-0"), interval=0.01)
    gone = time.monotonic()
    body = eventually(
        lambda: (
            (b := read(api_client, namespace, "processgroups", "orders"))
            and (condition(b, "Populated") or {}).get("reason") == "Empty"
            and b
        ),
        interval=0.02,
    )
    assert time.monotonic() - gone < 1.0
    assert body["status"]["count"] == 0
    assert condition(body, "Populated")["status"] == "False"  # type: ignore[index]
    assert eventually(
        lambda: "GroupEmpty" in [r for _, r, _ in events_about(api_client, namespace, "orders")]
    )


def _pod_exists(api_client: client.ApiClient, namespace: str, name: str) -> bool:
    try:
        client.CoreV1Api(api_client).read_namespaced_pod(name, namespace)
    except client.exceptions.ApiException:
        return False
    return True


def test_a_group_whose_topology_does_not_exist_says_so(
    api_client: client.ApiClient, namespace: str, start_operator: Callable[..., Any]
) -> None:
    process_group(api_client, namespace, "orders", "pubsub", role="subscriber")
    start_operator()
    body = eventually(
        lambda: (
            (b := read(api_client, namespace, "processgroups", "orders")) and condition(b, "Populated") and b
        )
    )
    assert condition(body, "Populated")["reason"] == "TopologyNotFound"  # type: ignore[index]


@pytest.mark.usefixtures("chat")
def test_names_held_by_others_are_avoided_and_a_given_name_is_kept(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, cluster_dns: ClusterDNS
) -> None:
    """A Service left by a deleted group (the garbage collector is slower than a recreate)
    and someone's own EndpointSlice hold the readable names: creating them would fail on
    every try, so the groups take hashed names, and keep them once those others are gone."""
    core, discovery = client.CoreV1Api(api_client), client.DiscoveryV1Api(api_client)
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "pubsub-orders", "labels": {"conclave.dev/process-group": "deleted"}},
            "spec": {"clusterIP": "None"},
        },
    )
    discovery.create_namespaced_endpoint_slice(
        namespace,
        {
            "metadata": {"name": "workers-orders", "labels": {"kubernetes.io/service-name": "elsewhere"}},
            "addressType": "IPv4",
            "endpoints": [],
        },
    )
    process_group(api_client, namespace, "orders", "pubsub", role="subscriber")
    process_group(api_client, namespace, "work", "workers", role="worker")
    pod(api_client, namespace, "chat-0", role="subscriber")
    pod(api_client, namespace, "chat-1", role="worker")
    for group in ("orders", "work"):
        assert eventually(
            lambda g=group: (
                in_sync(api_client, namespace, g, cluster_dns) and group_members(api_client, namespace, g)
            )
        )
    names = {
        g: read(api_client, namespace, "processgroups", g)["status"]["serviceName"]
        for g in ("orders", "work")
    }
    assert re.fullmatch(r"pubsub-orders-[0-9a-f]{6}", names["orders"])
    assert re.fullmatch(r"workers-orders-[0-9a-f]{6}", names["work"])

    core.delete_namespaced_service("pubsub-orders", namespace)
    discovery.delete_namespaced_endpoint_slice("workers-orders", namespace)
    pod(api_client, namespace, "chat-2", role="subscriber")
    pod(api_client, namespace, "chat-3", role="worker")
    for group in ("orders", "work"):
        assert eventually(lambda g=group: len(group_members(api_client, namespace, g)) == 2)
        assert eventually(lambda g=group: in_sync(api_client, namespace, g, cluster_dns))
        assert read(api_client, namespace, "processgroups", group)["status"]["serviceName"] == names[group]
    assert not core.list_namespaced_service(namespace, field_selector="metadata.name=pubsub-orders").items

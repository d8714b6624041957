"""KubernetesAPI discovery against the real control plane: the real EndpointSlice
controller, fake-kubelet pods, and the operator process."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from conclave_harness.localcluster.kubelet import NEVER, TERMINATION_DELAY_ANNOTATION, FakeKubelet
from support import GROUP, VERSION, condition, create, custom, events_about, eventually, read

pytestmark = pytest.mark.usefixtures("installed_crds")


def headless_service(api_client: client.ApiClient, namespace: str, name: str, app: str) -> None:
    client.CoreV1Api(api_client).create_namespaced_service(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "clusterIP": "None",
                "selector": {"app": app},
                "ports": [{"name": "epmd", "port": 4369}],
            },
        },
    )


def deployment(
    api_client: client.ApiClient, namespace: str, app: str, replicas: int, **annotations: str
) -> None:
    client.AppsV1Api(api_client).create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": app},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app}, "annotations": annotations},
                    "spec": {"containers": [{"name": "beam", "image": "conclave.dev/fake:1"}]},
                },
            },
        },
    )


def scale(api_client: client.ApiClient, namespace: str, app: str, replicas: int) -> None:
    client.AppsV1Api(api_client).patch_namespaced_deployment_scale(
        app, namespace, {"spec": {"replicas": replicas}}
    )


def topology(api_client: client.ApiClient, namespace: str, name: str, service: str, **spec: Any) -> None:
    create(
        api_client,
        namespace,
        "clustertopologies",
        {
            "kind": "ClusterTopology",
            "metadata": {"name": name},
            "spec": {"strategy": "KubernetesAPI", "service": service, "applicationName": "chat", **spec},
        },
    )


def running_pods(api_client: client.ApiClient, namespace: str, app: str) -> dict[str, Any]:
    pods = client.CoreV1Api(api_client).list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return {
        pod.metadata.name: pod
        for pod in pods
        if pod.status.pod_ip and pod.status.phase == "Running" and not pod.metadata.deletion_timestamp
    }


def status_of(api_client: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return read(api_client, namespace, "clustertopologies", name).get("status", {})


def member_map(api_client: client.ApiClient, namespace: str, name: str) -> dict[str, tuple[str, bool]]:
    """Pod → (node name, ready) as the topology's status lists them."""
    return {
        m["pod"]: (m["name"], m["ready"]) for m in status_of(api_client, namespace, name).get("members", [])
    }


def hosts_file(api_client: client.ApiClient, namespace: str, topology_name: str) -> list[str] | None:
    try:
        data = (
            client.CoreV1Api(api_client)
            .read_namespaced_config_map(f"{topology_name}-members", namespace)
            .data
        )
    except client.exceptions.ApiException:
        return None
    hosts: list[str] = json.loads(data["hosts.json"])
    assert data["hosts"] == "".join(f"{host}\n" for host in hosts)
    return hosts


def chat_cluster(
    api_client: client.ApiClient,
    namespace: str,
    start_operator: Callable[..., Any],
    replicas: int,
    **annotations: str,
) -> None:
    """A headless Service, a Deployment behind it, a KubernetesAPI topology, the operator."""
    headless_service(api_client, namespace, "chat-headless", "chat")
    deployment(api_client, namespace, "chat", replicas, **annotations)
    topology(api_client, namespace, "chat", "chat-headless")
    start_operator()


def event_reasons(api_client: client.ApiClient, namespace: str, name: str) -> list[tuple[str, str]]:
    return [(kind, reason) for kind, reason, _ in events_about(api_client, namespace, name)]


def expect_members(
    api_client: client.ApiClient, namespace: str, name: str, app: str, count: int
) -> dict[str, Any]:
    """Wait until the topology lists exactly the running pods of ``app``, ``count`` of them."""

    def matches() -> dict[str, Any] | None:
        pods = running_pods(api_client, namespace, app)
        expected = {pod: (f"chat@{p.status.pod_ip}", True) for pod, p in pods.items()}
        if len(pods) == count and member_map(api_client, namespace, name) == expected:
            return pods
        return None

    return eventually(matches, timeout=30)


def test_scaling_up_and_down_follows_the_pods(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, start_operator: Callable[..., Any]
) -> None:
    headless_service(api_client, namespace, "chat-headless", "chat")
    deployment(api_client, namespace, "chat", 0)
    topology(api_client, namespace, "chat", "chat-headless")
    start_operator()
    eventually(
        lambda: (
            (condition(read(api_client, namespace, "clustertopologies", "chat"), "Discovered") or {}).get(
                "reason"
            )
            == "NoMembers"
        )
    )

    scale(api_client, namespace, "chat", 5)
    pods = expect_members(api_client, namespace, "chat", "chat", 5)
    status = status_of(api_client, namespace, "chat")
    assert (status["memberCount"], status["readyMembers"]) == (5, 5)
    assert condition({"status": status}, "Discovered")["reason"] == "MembersFound"  # type: ignore[index]
    assert eventually(lambda: hosts_file(api_client, namespace, "chat")) == sorted(
        f"chat@{p.status.pod_ip}" for p in pods.values()
    )
    assert all(m["nodeName"].startswith("worker-") for m in status["members"])

    scale(api_client, namespace, "chat", 2)
    pods = expect_members(api_client, namespace, "chat", "chat", 2)
    assert eventually(
        lambda: (
            hosts_file(api_client, namespace, "chat")
            == sorted(f"chat@{p.status.pod_ip}" for p in pods.values())
        )
    )

    def member_changes() -> tuple[int, int]:
        reasons = [reason for _, reason in event_reasons(api_client, namespace, "chat")]
        return reasons.count("MemberJoined"), reasons.count("MemberLeft")

    # Events are posted after the status they explain: wait for the last one, then count.
    eventually(lambda: member_changes()[1] >= 3)
    assert member_changes() == (5, 3)


def test_readiness_flaps_and_member_readiness_any_counts_unready_pods(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, start_operator: Callable[..., Any]
) -> None:
    headless_service(api_client, namespace, "chat-headless", "chat")
    deployment(api_client, namespace, "chat", 3)
    topology(api_client, namespace, "strict", "chat-headless")
    topology(api_client, namespace, "booting", "chat-headless", memberReadiness="Any")
    start_operator()
    pods = expect_members(api_client, namespace, "strict", "chat", 3)
    flapping = sorted(pods)[0]

    for _ in range(3):
        kubelet.set_ready(namespace, flapping, ready=False)
        eventually(lambda: member_map(api_client, namespace, "strict").get(flapping, ("", True))[1] is False)
        assert eventually(lambda: status_of(api_client, namespace, "strict").get("readyMembers") == 2)
        assert eventually(lambda: status_of(api_client, namespace, "booting").get("readyMembers") == 3)
        assert eventually(lambda: len(hosts_file(api_client, namespace, "strict") or []) == 2)
        assert len(hosts_file(api_client, namespace, "booting") or []) == 3
        kubelet.set_ready(namespace, flapping, ready=True)
        assert eventually(lambda: status_of(api_client, namespace, "strict").get("readyMembers") == 3)


def test_a_terminating_pod_is_never_a_member_even_while_ready(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, start_operator: Callable[..., Any]
) -> None:
    chat_cluster(api_client, namespace, start_operator, 3, **{TERMINATION_DELAY_ANNOTATION: NEVER})
    pods = expect_members(api_client, namespace, "chat", "chat", 3)
    leaving = sorted(pods)[0]
    client.CoreV1Api(api_client).delete_namespaced_pod(leaving, namespace)

    eventually(lambda: leaving not in member_map(api_client, namespace, "chat"))
    pod = client.CoreV1Api(api_client).read_namespaced_pod(leaving, namespace)
    assert pod.metadata.deletion_timestamp is not None  # still there, still Ready: libcluster keeps it
    assert any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
    kubelet.confirm_termination(namespace, leaving)


def test_a_replaced_pod_leaves_and_its_successor_joins_with_a_new_ip(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, start_operator: Callable[..., Any]
) -> None:
    chat_cluster(api_client, namespace, start_operator, 2)
    before = expect_members(api_client, namespace, "chat", "chat", 2)
    victim = sorted(before)[0]
    client.CoreV1Api(api_client).delete_namespaced_pod(victim, namespace)

    after = eventually(
        lambda: (
            (pods := expect_members(api_client, namespace, "chat", "chat", 2)) and victim not in pods and pods
        )
    )
    assert before[victim].status.pod_ip not in {p.status.pod_ip for p in after.values()}


def test_a_deleted_service_keeps_the_last_members_marked_stale_until_it_returns(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, start_operator: Callable[..., Any]
) -> None:
    chat_cluster(api_client, namespace, start_operator, 2)
    pods = expect_members(api_client, namespace, "chat", "chat", 2)
    client.CoreV1Api(api_client).delete_namespaced_service("chat-headless", namespace)

    body = eventually(
        lambda: (
            (b := read(api_client, namespace, "clustertopologies", "chat"))
            and (condition(b, "Discovered") or {}).get("reason") == "ServiceNotFound"
            and b
        )
    )
    assert body["status"]["stale"] is True
    assert sorted(m["pod"] for m in body["status"]["members"]) == sorted(pods)
    assert condition(body, "Discovered")["status"] == "False"  # type: ignore[index]
    eventually(lambda: ("Warning", "ServiceNotFound") in event_reasons(api_client, namespace, "chat"))

    headless_service(api_client, namespace, "chat-headless", "chat")
    body = eventually(
        lambda: (
            (b := read(api_client, namespace, "clustertopologies", "chat"))
            and (condition(b, "Discovered") or {}).get("reason") == "MembersFound"
            and len(b["status"]["members"]) == 2
            and b
        )
    )
    assert "stale" not in body["status"]


def test_a_service_with_a_cluster_ip_is_refused_as_not_headless(
    api_client: client.ApiClient, namespace: str, start_operator: Callable[..., Any]
) -> None:
    client.CoreV1Api(api_client).create_namespaced_service(
        namespace,
        {"metadata": {"name": "chat"}, "spec": {"selector": {"app": "chat"}, "ports": [{"port": 80}]}},
    )
    topology(api_client, namespace, "chat", "chat")
    start_operator()
    body = eventually(
        lambda: (
            (b := read(api_client, namespace, "clustertopologies", "chat"))
            and condition(b, "Discovered")
            and b
        )
    )
    assert condition(body, "Discovered")["reason"] == "ServiceNotHeadless"  # type: ignore[index]


def test_two_topologies_on_two_services_in_one_namespace_stay_apart(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, start_operator: Callable[..., Any]
) -> None:
    headless_service(api_client, namespace, "chat-headless", "chat")
    headless_service(api_client, namespace, "jobs-headless", "jobs")
    deployment(api_client, namespace, "chat", 2)
    deployment(api_client, namespace, "jobs", 3)
    topology(api_client, namespace, "chat", "chat-headless")
    topology(api_client, namespace, "jobs", "jobs-headless")
    start_operator()
    chat = expect_members(api_client, namespace, "chat", "chat", 2)
    jobs = expect_members(api_client, namespace, "jobs", "jobs", 3)
    assert set(chat).isdisjoint(jobs)


@pytest.mark.parametrize(
    ("naming", "expected"),
    [
        ("ip", "chat@{ip}"),
        ("dns", "chat@{dashed}.{namespace}.pod.cluster.local"),
        ("hostname", "chat@{hostname}.chat-headless.{namespace}.svc.cluster.local"),
    ],
    ids=["ip like libcluster's :ip", "dns like libcluster's :dns", "hostname like libcluster's :hostname"],
)
def test_node_names_are_libclusters(
    api_client: client.ApiClient,
    namespace: str,
    kubelet: FakeKubelet,
    start_operator: Callable[..., Any],
    naming: str,
    expected: str,
) -> None:
    headless_service(api_client, namespace, "chat-headless", "chat")
    client.CoreV1Api(api_client).create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "chat-0", "labels": {"app": "chat"}},
            "spec": {
                "hostname": "chat-0",
                "subdomain": "chat-headless",
                "containers": [{"name": "beam", "image": "conclave.dev/fake:1"}],
            },
        },
    )
    topology(api_client, namespace, "chat", "chat-headless", nodeNaming=naming)
    start_operator()
    ip = kubelet.wait_running(namespace, "chat-0").status.pod_ip
    name = expected.format(ip=ip, dashed=ip.replace(".", "-"), namespace=namespace, hostname="chat-0")
    assert eventually(lambda: member_map(api_client, namespace, "chat")) == {"chat-0": (name, True)}


def test_the_members_config_map_goes_with_its_topology(
    api_client: client.ApiClient, namespace: str, start_operator: Callable[..., Any]
) -> None:
    create(
        api_client,
        namespace,
        "clustertopologies",
        {
            "kind": "ClusterTopology",
            "metadata": {"name": "fixed"},
            "spec": {"strategy": "Static", "hosts": ["a@10.0.0.1"]},
        },
    )
    start_operator()
    assert eventually(lambda: hosts_file(api_client, namespace, "fixed")) == ["a@10.0.0.1"]
    custom(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "clustertopologies", "fixed"
    )
    assert eventually(lambda: hosts_file(api_client, namespace, "fixed") is None)

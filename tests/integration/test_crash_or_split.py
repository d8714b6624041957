"""A crash is not a split: a member whose probe is refused is down, and the cluster is
judged among the members that are up. Simulated members for the verdicts, and a real
Erlang node killed with SIGKILL for the refusal itself."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from conclave_harness.localcluster import PodNetwork
from conclave_harness.localcluster.kubelet import FakeKubelet
from conclave_harness.sim import SimulatedMembers
from support import (
    GROUP,
    VERSION,
    condition,
    create,
    custom,
    events_about,
    eventually,
    member_pod,
    partition_of,
    read,
)

pytestmark = pytest.mark.usefixtures("installed_crds")
DOCS = Path(__file__).parents[2] / "docs" / "member-view.md"


def reasons(api_client: client.ApiClient, namespace: str, name: str = "chat") -> list[str]:
    return [reason for _, reason, _ in events_about(api_client, namespace, name)]


def crash(sim: SimulatedMembers, node: str) -> None:
    """The node's process dies: its port refuses, and its peers see it go."""
    sim.remove(node)
    sim.connect_all()


def test_a_crashed_member_is_down_and_the_cluster_stays_healthy(
    api_client: client.ApiClient, namespace: str, cluster_of: Callable[..., Any]
) -> None:
    sim, names = cluster_of(5)
    ip = names[4].split("@")[1]
    crash(sim, names[4])
    down = eventually(lambda: (p := partition_of(api_client, namespace)).get("down") and p)
    assert (down["state"], down["components"], down["majority"]) == (
        "Healthy",
        [sorted(names[:4])],
        sorted(names[:4]),
    )
    assert [(d["name"], d["reason"]) for d in down["down"]] == [(names[4], "ConnectionRefused")]
    body = read(api_client, namespace, "clustertopologies", "chat")
    assert condition(body, "Partitioned")["status"] == "False"  # type: ignore[index]
    assert condition(body, "Partitioned")["reason"] == "MembersDown"  # type: ignore[index]
    assert condition(body, "Quorum")["status"] == "True"  # type: ignore[index]
    eventually(lambda: "MemberDown" in reasons(api_client, namespace))
    assert "PartitionDetected" not in reasons(api_client, namespace)

    sim.add(names[4], ip)
    sim.connect_all()
    eventually(lambda: not partition_of(api_client, namespace).get("down"))
    eventually(lambda: "MemberRecovered" in reasons(api_client, namespace))
    assert "PartitionDetected" not in reasons(api_client, namespace)


def test_a_hung_member_is_unknown_not_down(
    api_client: client.ApiClient, namespace: str, cluster_of: Callable[..., Any]
) -> None:
    sim, names = cluster_of(3)
    sim.set_mode(names[0], "hang")
    eventually(
        lambda: (
            {v["member"]: v.get("reason") for v in partition_of(api_client, namespace)["views"]}[names[0]]
            == "Timeout"
        )
    )
    assert partition_of(api_client, namespace)["down"] == []


def test_a_split_is_still_a_split_when_a_member_is_also_down(
    api_client: client.ApiClient, namespace: str, cluster_of: Callable[..., Any]
) -> None:
    sim, names = cluster_of(6)
    sim.remove(names[5])
    sim.partition([names[:3], names[3:5]])
    split = eventually(lambda: (p := partition_of(api_client, namespace)).get("state") == "Partitioned" and p)
    eventually(lambda: partition_of(api_client, namespace).get("down"))
    split = partition_of(api_client, namespace)
    assert split["components"] == [sorted(names[:3]), sorted(names[3:5])]
    assert split["majority"] == []  # 3 of 6 is no strict majority: the down member still counts
    assert eventually(lambda: "PartitionDetected" in reasons(api_client, namespace))


def named_in(partition: dict[str, Any]) -> set[str]:
    named = {m for part in partition.get("components", []) for m in part} | set(partition.get("majority", []))
    named |= {m for link in partition.get("missingLinks", []) for m in link}
    named |= {v["member"] for v in partition.get("views", [])} | {
        d["name"] for d in partition.get("down", [])
    }
    return named


def test_a_pod_deleted_during_a_split_leaves_the_partition_in_the_same_write(
    api_client: client.ApiClient, namespace: str, cluster_of: Callable[..., Any]
) -> None:
    sim, names = cluster_of(5)
    sim.partition([names[:3], names[3:]])
    eventually(lambda: partition_of(api_client, namespace).get("state") == "Partitioned")
    current = read(api_client, namespace, "clustertopologies", "chat")
    seen: list[dict[str, Any]] = []
    stop = threading.Event()

    def record() -> None:
        stream = watch.Watch()
        for event in stream.stream(
            custom(api_client).list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "clustertopologies",
            resource_version=current["metadata"]["resourceVersion"],
            timeout_seconds=30,
        ):
            seen.append(event["object"].get("status") or {})
            if stop.is_set():
                stream.stop()

    watcher = threading.Thread(target=record, daemon=True)
    watcher.start()
    pod = next(m["pod"] for m in current["status"]["members"] if m["name"] == names[4])
    client.CoreV1Api(api_client).delete_namespaced_pod(pod, namespace, grace_period_seconds=0)
    eventually(lambda: any(names[4] not in {m["name"] for m in s.get("members", [])} for s in seen))
    stop.set()
    poke = {"metadata": {"labels": {"conclave.dev/test-poke": "1"}}}  # one more event: the watcher stops
    custom(api_client).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "clustertopologies", "chat", poke
    )
    watcher.join(timeout=35)
    assert not watcher.is_alive()
    for status in seen:
        members = {m["name"] for m in status.get("members", [])}
        assert named_in(status.get("partition", {})) <= members, status


@pytest.fixture
def singletons_on(
    api_client: client.ApiClient, namespace: str
) -> Callable[[dict[str, str]], dict[str, dict[str, Any]]]:
    def place(policies: dict[str, str]) -> dict[str, dict[str, Any]]:
        for name, policy in policies.items():
            spec = {"topology": "chat", "partitionPolicy": policy, "leaseDuration": "2s"}
            create(
                api_client,
                namespace,
                "singletons",
                {"kind": "Singleton", "metadata": {"name": name}, "spec": spec},
            )
        return {
            name: eventually(
                lambda name=name: (
                    (s := read(api_client, namespace, "singletons", name).get("status", {})).get("phase")
                    == "Placed"
                    and s
                )
            )
            for name in policies
        }

    return place


def test_a_continue_singleton_leaves_a_crashed_owner_and_a_fence_one_on_the_majority_stays(
    api_client: client.ApiClient,
    namespace: str,
    cluster_of: Callable[..., Any],
    singletons_on: Callable[[dict[str, str]], dict[str, dict[str, Any]]],
) -> None:
    sim, _ = cluster_of(5)
    fenced = [f"fence-{index}" for index in range(4)]
    placed = singletons_on({"continue": "Continue", **dict.fromkeys(fenced, "Fence")})
    victim = placed["continue"]["owner"]
    bystanders = [name for name in fenced if placed[name]["owner"] != victim]
    assert bystanders, "every Fence singleton hashed onto the same member as the Continue one"
    crash(sim, victim)

    def moved() -> dict[str, Any] | None:
        status: dict[str, Any] = read(api_client, namespace, "singletons", "continue").get("status", {})
        return status if status.get("phase") == "Placed" and status.get("owner") != victim else None

    after = eventually(moved, timeout=30)
    assert after["epoch"] == placed["continue"]["epoch"] + 1
    assert "OwnerRevoked" in [r for _, r, _ in events_about(api_client, namespace, "continue")]
    for name in bystanders:
        status = read(api_client, namespace, "singletons", name)["status"]
        assert (status["owner"], status["epoch"]) == (placed[name]["owner"], placed[name]["epoch"])


ERLANG_DIST_PORT = 4370


@pytest.fixture
def beam_cluster(
    api_client: client.ApiClient,
    namespace: str,
    kubelet: FakeKubelet,
    pod_network: PodNetwork,
    tmp_path: Path,
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Three real Erlang nodes named as conclave names them (chat@<pod ip>), serving the
    documented member view, fully connected. Without EPMD (one per network namespace would
    refuse a second `chat@`), on one fixed distribution port at each pod's IP."""
    if shutil.which("erlc") is None:
        pytest.skip("needs Erlang (make test installs it)")
    source = DOCS.read_text().split("```erlang\n", 1)[1].split("```", 1)[0]
    (tmp_path / "cluster_view.erl").write_text(source)
    subprocess.run(["erlc", "-o", str(tmp_path), str(tmp_path / "cluster_view.erl")], check=True)
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "chat"}, "spec": {"clusterIP": "None", "selector": {"app": "chat"}}}
    )
    for index in range(3):
        core.create_namespaced_pod(namespace, member_pod(f"chat-{index}"))
    ips = [kubelet.wait_running(namespace, f"chat-{index}").status.pod_ip for index in range(3)]
    names = [f"chat@{ip}" for ip in ips]
    nodes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, ip in zip(names, ips, strict=True):
            peers = ", ".join(f"'{peer}'" for peer in names if peer != name)
            tuple_ip = "{" + ip.replace(".", ",") + "}"
            boot = (
                f"cluster_view:start(4000, {tuple_ip}), "
                "Connect = fun Retry(Node, 0) -> Node; Retry(Node, N) -> "
                "case net_kernel:connect_node(Node) of true -> ok; "
                "_ -> timer:sleep(100), Retry(Node, N - 1) end end, "
                f"[Connect(Peer, 100) || Peer <- [{peers}]]"
            )
            command = [
                "erl", "-noshell", "-name", name, "-setcookie", "conclave-test", "-pa", str(tmp_path),
                "-start_epmd", "false", "-erl_epmd_port", str(ERLANG_DIST_PORT),
                "-kernel", "inet_dist_use_interface", tuple_ip, "-eval", boot,
            ]  # fmt: skip
            nodes[name] = subprocess.Popen(pod_network.command(command), stdin=subprocess.DEVNULL)
        yield nodes
    finally:
        for process in nodes.values():
            process.kill()
            process.wait()


def test_a_real_erlang_node_killed_is_down_not_a_split(
    api_client: client.ApiClient,
    namespace: str,
    beam_cluster: dict[str, subprocess.Popen[bytes]],
    start_operator: Callable[..., Any],
) -> None:
    names = sorted(beam_cluster)
    probe = {"type": "http", "port": 4000, "interval": "500ms", "timeout": "300ms"}
    spec = {"strategy": "KubernetesAPI", "service": "chat", "applicationName": "chat", "probe": probe}
    spec["partition"] = {"stableAfter": "1s"}
    create(
        api_client,
        namespace,
        "clustertopologies",
        {"kind": "ClusterTopology", "metadata": {"name": "chat"}, "spec": spec},
    )
    start_operator()
    healthy = eventually(
        lambda: (
            (p := partition_of(api_client, namespace)).get("state") == "Healthy"
            and all(v["known"] for v in p["views"])
            and len(p["views"]) == 3
            and p
        ),
        timeout=60,
    )
    assert healthy["components"] == [names]
    victim = names[2]
    beam_cluster[victim].kill()  # SIGKILL: the pod stays Ready, its port now refuses
    beam_cluster[victim].wait()
    down = eventually(lambda: (p := partition_of(api_client, namespace)).get("down") and p, timeout=30)
    assert [(d["name"], d["reason"]) for d in down["down"]] == [(victim, "ConnectionRefused")]
    assert (down["state"], down["components"], down["majority"]) == ("Healthy", [names[:2]], names[:2])
    eventually(lambda: "MemberDown" in reasons(api_client, namespace))
    assert "PartitionDetected" not in reasons(api_client, namespace)

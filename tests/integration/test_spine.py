"""The operator's spine against the real control plane: status follows generations,
dependents of a missing topology say so, printer columns read well, a kill loses
nothing, and of two replicas only one ever writes."""

from __future__ import annotations

import datetime
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from support import GROUP, VERSION, condition, create, custom, events_about, eventually, raw_get, read

pytestmark = pytest.mark.usefixtures("installed_crds")

STATIC_TOPOLOGY = {
    "kind": "ClusterTopology",
    "metadata": {"name": "chat"},
    "spec": {"strategy": "Static", "applicationName": "chat", "hosts": ["chat@10.0.0.1", "chat@10.0.0.2"]},
}


BILLING = {"kind": "Singleton", "metadata": {"name": "billing"}, "spec": {"topology": "chat"}}


def subscribers(**spec: str) -> dict[str, Any]:
    return {
        "kind": "ProcessGroup",
        "metadata": {"name": "subscribers"},
        "spec": {
            "topology": "chat",
            "group": "subscribers",
            "selector": {"matchLabels": {"app": "chat"}},
            **spec,
        },
    }


def normalized(status: dict[str, Any]) -> dict[str, Any]:
    """The status without the times it was written at, for comparing two runs."""
    conditions = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions", [])
    ]
    return {**{k: v for k, v in status.items() if k not in ("since",)}, "conditions": conditions}


def reconciled(api_client: client.ApiClient, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    body = read(api_client, namespace, plural, name)
    status = body.get("status", {})
    if status.get("observedGeneration") == body["metadata"]["generation"]:
        return body
    return None


def test_status_follows_each_spec_change(
    api_client: client.ApiClient, namespace: str, start_operator: Callable[..., Any]
) -> None:
    create(api_client, namespace, "clustertopologies", STATIC_TOPOLOGY)
    start_operator()
    first = eventually(lambda: reconciled(api_client, namespace, "clustertopologies", "chat"))
    assert first["status"]["observedGeneration"] == 1
    assert condition(first, "Ready") == {
        "type": "Ready",
        "status": "True",
        "reason": "Reconciled",
        "message": "Generation 1 reconciled",
        "observedGeneration": 1,
        "lastTransitionTime": condition(first, "Ready")["lastTransitionTime"],  # type: ignore[index]
    }

    custom(api_client).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "clustertopologies", "chat", {"spec": {"pollingInterval": "10s"}}
    )
    second = eventually(lambda: reconciled(api_client, namespace, "clustertopologies", "chat"))
    assert second["metadata"]["generation"] == 2
    assert second["status"]["observedGeneration"] == 2
    assert condition(second, "Ready")["observedGeneration"] == 2  # type: ignore[index]


def test_dependents_of_a_missing_topology_say_so_and_recover_when_it_appears(
    api_client: client.ApiClient, namespace: str, start_operator: Callable[..., Any]
) -> None:
    create(api_client, namespace, "singletons", BILLING)
    create(api_client, namespace, "processgroups", subscribers())
    start_operator()
    missing_message = f"ClusterTopology 'chat' does not exist in namespace {namespace!r}"
    for plural, name in (("singletons", "billing"), ("processgroups", "subscribers")):
        body = eventually(lambda p=plural, n=name: reconciled(api_client, namespace, p, n))
        found = condition(body, "TopologyFound")
        assert found is not None
        assert (found["status"], found["reason"], found["message"]) == (
            "False",
            "TopologyNotFound",
            missing_message,
        )
    assert read(api_client, namespace, "singletons", "billing")["status"]["phase"] == "Pending"
    assert eventually(
        lambda: (
            ("Warning", "TopologyNotFound", missing_message) in events_about(api_client, namespace, "billing")
        )
    )

    create(api_client, namespace, "clustertopologies", STATIC_TOPOLOGY)
    for plural, name in (("singletons", "billing"), ("processgroups", "subscribers")):
        body = eventually(
            lambda p=plural, n=name: (
                (b := read(api_client, namespace, p, n))
                and (condition(b, "TopologyFound") or {}).get("status") == "True"
                and b
            )
        )
        assert condition(body, "TopologyFound")["reason"] == "TopologyFound"  # type: ignore[index]


def table(api_client: client.ApiClient, namespace: str, plural: str) -> list[dict[str, Any]]:
    """The rows `kubectl get` prints: the API server renders them from the printer columns."""
    rendered = raw_get(
        api_client,
        f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}",
        accept="application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    names = [column["name"] for column in rendered["columnDefinitions"]]
    return [dict(zip(names, row["cells"], strict=True)) for row in rendered["rows"]]


def test_printer_columns_show_a_reconciled_objects_state(
    api_client: client.ApiClient, namespace: str, start_operator: Callable[..., Any]
) -> None:
    create(api_client, namespace, "clustertopologies", STATIC_TOPOLOGY)
    create(api_client, namespace, "singletons", BILLING)
    create(api_client, namespace, "processgroups", subscribers(scope="pubsub", group="orders"))
    start_operator()
    eventually(lambda: read(api_client, namespace, "singletons", "billing").get("status", {}).get("epoch"))

    [topology] = table(api_client, namespace, "clustertopologies")
    assert {k: v for k, v in topology.items() if k != "Age"} == {
        "Name": "chat",
        "Strategy": "Static",
        "Members": 2,
        "Ready": 2,
        "Partition": "Unknown",  # probe.type none: no member views
    }
    [singleton] = table(api_client, namespace, "singletons")
    assert (singleton["Name"], singleton["Phase"], singleton["Policy"]) == ("billing", "Placed", "Fence")
    assert (singleton["Owner"] in STATIC_TOPOLOGY["spec"]["hosts"], singleton["Epoch"]) == (True, 1)  # type: ignore[index]
    [group] = table(api_client, namespace, "processgroups")
    assert (group["Name"], group["Scope"], group["Group"]) == ("subscribers", "pubsub", "orders")


def test_a_killed_operator_leaves_the_state_a_clean_run_reaches(
    api_client: client.ApiClient, namespace: str, start_operator: Callable[..., Any]
) -> None:
    create(api_client, namespace, "clustertopologies", STATIC_TOPOLOGY)
    for index in range(5):
        create(
            api_client,
            namespace,
            "singletons",
            {"kind": "Singleton", "metadata": {"name": f"job-{index}"}, "spec": {"topology": "chat"}},
        )
        create(
            api_client,
            namespace,
            "singletons",
            {"kind": "Singleton", "metadata": {"name": f"lost-{index}"}, "spec": {"topology": "ghost"}},
        )
    names = [f"job-{i}" for i in range(5)] + [f"lost-{i}" for i in range(5)]

    first = start_operator("operator-killed")
    eventually(lambda: first.output().count("Became the active replica") > 0)
    first.process.send_signal(signal.SIGKILL)  # in the middle of its first reconciles
    first.process.wait()

    start_operator("operator-restarted")
    after_kill = {
        name: normalized(
            eventually(lambda n=name: reconciled(api_client, namespace, "singletons", n))["status"]
        )
        for name in names
    }

    for name in names:  # wipe the statuses: the running operator must reach the same state from scratch
        custom(api_client).patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "singletons", name, {"status": None}
        )
    from_scratch = {
        name: normalized(
            eventually(lambda n=name: reconciled(api_client, namespace, "singletons", n))["status"]
        )
        for name in names
    }
    assert after_kill == from_scratch


def lease_holder(api_client: client.ApiClient, namespace: str) -> str | None:
    try:
        lease = client.CoordinationV1Api(api_client).read_namespaced_lease("conclave-operator", namespace)
    except client.exceptions.ApiException:
        return None
    holder: str | None = lease.spec.holder_identity
    return holder


def test_of_two_replicas_one_writes_and_a_frozen_leader_never_writes_again(
    api_client: client.ApiClient, namespace: str, start_operator: Callable[..., Any], cluster: Any
) -> None:
    create(api_client, namespace, "clustertopologies", STATIC_TOPOLOGY)
    replicas = {name: start_operator(name) for name in ("operator-a", "operator-b")}
    leader_name = eventually(lambda: lease_holder(api_client, namespace))
    leader = replicas[leader_name]
    standby = next(r for name, r in replicas.items() if name != leader_name)
    eventually(lambda: reconciled(api_client, namespace, "clustertopologies", "chat"))
    eventually(lambda: leader.metric("conclave_leader") == 1.0)
    eventually(lambda: standby.metric("conclave_leader") == 0.0)

    os.kill(leader.process.pid, signal.SIGSTOP)
    try:
        assert eventually(lambda: lease_holder(api_client, namespace) == standby.identity, timeout=20)
        custom(api_client).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "clustertopologies", "chat", {"spec": {"pollingInterval": "7s"}}
        )
        reconciled_by_standby = eventually(
            lambda: reconciled(api_client, namespace, "clustertopologies", "chat")
        )
        assert reconciled_by_standby["status"]["observedGeneration"] == 2
    finally:
        resumed_at = time.time()
        os.kill(leader.process.pid, signal.SIGCONT)

    assert leader.process.wait(timeout=20) == 3  # it knows it lost the lease, and exits
    assert "Stopped:" in leader.output()
    writes_after_resume = [
        (e["verb"], e["requestURI"])
        for e in cluster.audit_events()
        if leader.identity in e.get("userAgent", "")
        and e["verb"] in ("create", "update", "patch", "delete")
        and "selfsubjectaccessreviews" not in e["requestURI"]  # a question, not a write
        and _timestamp(e["requestReceivedTimestamp"]) >= resumed_at - 0.5
    ]
    assert writes_after_resume == []
    assert lease_holder(api_client, namespace) == standby.identity


def _timestamp(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

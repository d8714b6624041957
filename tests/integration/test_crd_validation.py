"""The real API server enforces the generated schemas: every example applies, and each
invalid object is refused with a message that names the offending field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from support import GROUP, VERSION, create, custom

pytestmark = pytest.mark.usefixtures("installed_crds")

EXAMPLES = Path(__file__).parents[2] / "manifests" / "examples"
PLURALS = {"ClusterTopology": "clustertopologies", "ProcessGroup": "processgroups", "Singleton": "singletons"}

SELECTOR = {"matchLabels": {"app": "chat"}}


def topology(**spec: Any) -> dict[str, Any]:
    return {"kind": "ClusterTopology", "metadata": {"name": "bad"}, "spec": spec}


def group(**spec: Any) -> dict[str, Any]:
    return {
        "kind": "ProcessGroup",
        "metadata": {"name": "bad"},
        "spec": {"topology": "chat", "group": "g", "selector": SELECTOR, **spec},
    }


def singleton(**spec: Any) -> dict[str, Any]:
    return {"kind": "Singleton", "metadata": {"name": "bad"}, "spec": {"topology": "chat", **spec}}


STATIC = {"strategy": "Static", "hosts": ["chat@10.0.0.1"]}

INVALID = [
    ("a strategy libcluster does not have", topology(strategy="Gossip"), "spec.strategy"),
    ("KubernetesDNS without its service", topology(strategy="KubernetesDNS"), "spec.service"),
    ("KubernetesAPI without its service", topology(strategy="KubernetesAPI"), "spec.service"),
    ("DNSPoll without its query", topology(strategy="DNSPoll"), "spec.query"),
    ("DNSPoll with an empty query", topology(strategy="DNSPoll", query=""), "spec.query"),
    ("Static with no hosts", topology(strategy="Static", hosts=[]), "spec.hosts"),
    ("Static with no hosts field at all", topology(strategy="Static"), "spec.hosts"),
    (
        "a service name that is not a DNS label",
        topology(strategy="KubernetesAPI", service="Chat_1"),
        "spec.service",
    ),
    ("an unknown node naming", topology(**STATIC, nodeNaming="fqdn"), "spec.nodeNaming"),
    ("a negative polling interval", topology(**STATIC, pollingInterval="-5s"), "spec.pollingInterval"),
    ("a polling interval of zero", topology(**STATIC, pollingInterval="0s"), "spec.pollingInterval"),
    (
        "a polling interval that is not a duration",
        topology(**STATIC, pollingInterval="often"),
        "spec.pollingInterval",
    ),
    ("an unknown member readiness", topology(**STATIC, memberReadiness="Some"), "spec.memberReadiness"),
    ("an http probe without a port", topology(**STATIC, probe={"type": "http"}), "spec.probe.port"),
    (
        "a probe port out of range",
        topology(**STATIC, probe={"type": "tcp", "port": 70000}),
        "spec.probe.port",
    ),
    (
        "a probe timeout longer than its interval",
        topology(**STATIC, probe={"type": "tcp", "port": 4369, "interval": "1s", "timeout": "2s"}),
        "spec.probe.timeout",
    ),
    (
        "an unknown tie breaker",
        topology(**STATIC, partition={"tieBreaker": "Random"}),
        "spec.partition.tieBreaker",
    ),
    (
        "a stable-after over ten minutes",
        topology(**STATIC, partition={"stableAfter": "2h"}),
        "spec.partition",
    ),
    (
        "a process group without a topology",
        {**group(), "spec": {"group": "g", "selector": SELECTOR}},
        "topology",
    ),
    (
        "a process group without a selector",
        {**group(), "spec": {"topology": "chat", "group": "g"}},
        "selector",
    ),
    ("a negative minMembers", group(minMembers=-1), "spec.minMembers"),
    (
        "an unknown selector operator",
        group(selector={"matchExpressions": [{"key": "a", "operator": "Is"}]}),
        "operator",
    ),
    ("an unknown distribution", singleton(distribution="Random"), "spec.distribution"),
    ("Pinned without pinTo", singleton(distribution="Pinned"), "spec.pinTo"),
    ("pinTo without Pinned", singleton(pinTo={"member": "chat@10.0.0.1"}), "spec.pinTo"),
    (
        "pinTo naming both a member and a selector",
        singleton(distribution="Pinned", pinTo={"member": "chat@10.0.0.1", "selector": SELECTOR}),
        "spec.pinTo",
    ),
    ("an unknown partition policy", singleton(partitionPolicy="Split"), "spec.partitionPolicy"),
    ("an unknown rebalance mode", singleton(rebalance="Eager"), "spec.rebalance"),
    ("a lease shorter than a second", singleton(leaseDuration="500ms"), "spec.leaseDuration"),
    ("a lease in days", singleton(leaseDuration="2d"), "spec.leaseDuration"),
]


def refusal(refused: pytest.ExceptionInfo[client.exceptions.ApiException]) -> tuple[int, str]:
    return refused.value.status, json.loads(refused.value.body)["message"]


def create_strictly(api_client: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    custom(api_client).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURALS[body["kind"]],
        {"apiVersion": f"{GROUP}/{VERSION}", **body},
        field_validation="Strict",
    )


@pytest.mark.parametrize(("body", "field"), [(b, f) for _, b, f in INVALID], ids=[i for i, _, _ in INVALID])
def test_the_api_server_refuses_an_invalid_object_naming_its_field(
    api_client: client.ApiClient, namespace: str, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(client.exceptions.ApiException) as refused:
        create_strictly(api_client, namespace, body)
    status, message = refusal(refused)
    assert status == 422, message
    assert field in message, message


def test_a_field_the_schema_does_not_have_is_refused_under_strict_validation(
    api_client: client.ApiClient, namespace: str
) -> None:
    with pytest.raises(client.exceptions.ApiException) as refused:
        create_strictly(api_client, namespace, topology(**STATIC, polingInterval="5s"))
    status, message = refusal(refused)
    assert status == 400, message  # strict decoding fails before the schema is consulted (422)
    assert 'unknown field "spec.polingInterval"' in message


@pytest.mark.parametrize(
    "body",
    [group(), singleton()],
    ids=["a process group's topology cannot change", "a singleton's topology cannot change"],
)
def test_the_topology_a_dependent_names_cannot_change(
    api_client: client.ApiClient, namespace: str, body: dict[str, Any]
) -> None:
    plural = PLURALS[body["kind"]]
    create(api_client, namespace, plural, body)
    with pytest.raises(client.exceptions.ApiException) as refused:
        custom(api_client).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, "bad", {"spec": {"topology": "other"}}
        )
    status, message = refusal(refused)
    assert status == 422, message
    assert 'spec.topology: Invalid value: "other": is immutable once set' in message


def test_a_condition_reason_that_is_not_camel_case_is_refused_on_the_status_subresource(
    api_client: client.ApiClient, namespace: str
) -> None:
    create(api_client, namespace, "singletons", singleton())
    condition = {
        "type": "Placed",
        "status": "True",
        "reason": "owner moved",
        "message": "",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    }
    with pytest.raises(client.exceptions.ApiException) as refused:
        custom(api_client).patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "singletons", "bad", {"status": {"conditions": [condition]}}
        )
    status, message = refusal(refused)
    assert status == 422, message
    assert "status.conditions[0].reason" in message


def contains(whole: Any, part: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and contains(whole[k], v) for k, v in part.items())
    return bool(whole == part)


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_applies(api_client: client.ApiClient, namespace: str, example: Path) -> None:
    for document in yaml.safe_load_all(example.read_text()):
        created = custom(api_client).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[document["kind"]], document, field_validation="Strict"
        )
        assert contains(created["spec"], document["spec"])  # plus the defaults the API server filled in

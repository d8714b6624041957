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
KUBERNETES_DNS = {"strategy": "KubernetesDNS", "service": "chat"}
KUBERNETES_API = {"strategy": "KubernetesAPI", "service": "chat"}
DNSPOLL = {"strategy": "DNSPoll", "query": "chat.example.com"}

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
    # fields of another strategy
    ("a service on a Static topology", topology(**STATIC, service="chat"), "spec.service"),
    ("a service on a DNSPoll topology", topology(**DNSPOLL, service="chat"), "spec.service"),
    ("hosts on a KubernetesDNS topology", topology(**KUBERNETES_DNS, hosts=["chat@10.0.0.1"]), "spec.hosts"),
    ("hosts on a DNSPoll topology", topology(**DNSPOLL, hosts=["chat@10.0.0.1"]), "spec.hosts"),
    (
        "a query on a KubernetesAPI topology",
        topology(**KUBERNETES_API, query="chat.example.com"),
        "spec.query",
    ),
    ("a query on a Static topology", topology(**STATIC, query="chat.example.com"), "spec.query"),
    # label selectors, as Kubernetes validates labels
    (
        "a label key with a space",
        group(selector={"matchLabels": {"bad key!": "x"}}),
        "spec.selector.matchLabels",
    ),
    (
        "a label key whose name is over 63 characters",
        group(selector={"matchLabels": {"a" * 64: "x"}}),
        "spec.selector.matchLabels",
    ),
    (
        "a label key with an upper-case prefix",
        group(selector={"matchLabels": {"Example.com/app": "x"}}),
        "spec.selector.matchLabels",
    ),
    (
        "a label key whose prefix is over 253 characters",
        group(selector={"matchLabels": {"a" * 254 + "/app": "x"}}),
        "spec.selector.matchLabels",
    ),
    (
        "a label value with a space",
        group(selector={"matchLabels": {"app": "a b"}}),
        "spec.selector.matchLabels.app",
    ),
    (
        "a label value that starts with a dash",
        group(selector={"matchLabels": {"app": "-chat"}}),
        "spec.selector.matchLabels.app",
    ),
    (
        "a label value over 63 characters",
        group(selector={"matchLabels": {"app": "a" * 64}}),
        "spec.selector.matchLabels.app",
    ),
    (
        "an expression key with a space",
        group(selector={"matchExpressions": [{"key": "bad key!", "operator": "Exists"}]}),
        "spec.selector.matchExpressions[0].key",
    ),
    (
        "an expression key whose prefix is over 253 characters",
        group(selector={"matchExpressions": [{"key": "a" * 254 + "/app", "operator": "Exists"}]}),
        "spec.selector.matchExpressions[0].key",
    ),
    (
        "Exists with values",
        group(selector={"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["chat"]}]}),
        "spec.selector.matchExpressions[0].values",
    ),
    (
        "DoesNotExist with values",
        group(
            selector={"matchExpressions": [{"key": "app", "operator": "DoesNotExist", "values": ["chat"]}]}
        ),
        "spec.selector.matchExpressions[0].values",
    ),
    (
        "In without values",
        group(selector={"matchExpressions": [{"key": "app", "operator": "In"}]}),
        "spec.selector.matchExpressions[0].values",
    ),
    (
        "NotIn with an empty list of values",
        group(selector={"matchExpressions": [{"key": "app", "operator": "NotIn", "values": []}]}),
        "spec.selector.matchExpressions[0].values",
    ),
    (
        "an expression value with a space",
        group(selector={"matchExpressions": [{"key": "app", "operator": "In", "values": ["a b"]}]}),
        "spec.selector.matchExpressions[0].values[0]",
    ),
    (
        "a pinTo selector with a bad label key",
        singleton(distribution="Pinned", pinTo={"selector": {"matchLabels": {"bad key!": "x"}}}),
        "spec.pinTo.selector.matchLabels",
    ),
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


VALID = {
    "prefixed label keys, an empty value and every operator": group(
        selector={
            "matchLabels": {
                "app.kubernetes.io/name": "chat",
                "conclave.dev/tier": "",
                "Version_2.x": "v1.2-rc_3",
            },
            "matchExpressions": [
                {"key": "app.kubernetes.io/part-of", "operator": "In", "values": ["chat", "chat-2"]},
                {"key": "zone", "operator": "NotIn", "values": ["a"]},
                {"key": "canary", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist", "values": []},
            ],
        }
    ),
    "each strategy with only its own fields": topology(**KUBERNETES_DNS, hosts=[]),
    "a key whose prefix is exactly 253 characters": group(
        selector={"matchLabels": {"a" * 253 + "/" + "b" * 63: "x"}}
    ),
}


@pytest.mark.parametrize("body", VALID.values(), ids=VALID.keys())
def test_what_kubernetes_accepts_in_a_selector_or_a_strategy_is_accepted(
    api_client: client.ApiClient, namespace: str, body: dict[str, Any]
) -> None:
    create_strictly(api_client, namespace, body)

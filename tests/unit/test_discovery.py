"""Discovery decided purely: libcluster's node names, which endpoints are members, and
that an error never empties the member list."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conclave.api import ClusterTopologySpec, Member
from conclave.core import discovery
from conclave.core.facts import Endpoint, Resolution, ServiceState

NOW = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)


def spec(**fields: Any) -> ClusterTopologySpec:
    return ClusterTopologySpec.model_validate(
        {"strategy": "KubernetesAPI", "service": "chat-headless", "applicationName": "chat", **fields}
    )


def endpoint(ip: str, pod: str | None = "chat-0", **fields: Any) -> Endpoint:
    return Endpoint(
        ip=ip,
        pod=pod,
        ready=fields.pop("ready", True),
        terminating=fields.pop("terminating", False),
        **fields,
    )


HEADLESS = ServiceState(exists=True, headless=True)


@pytest.mark.parametrize(
    ("naming", "expected"),
    [
        ("ip", "chat@10.0.3.7"),
        ("dns", "chat@10-0-3-7.prod.pod.cluster.local"),
        ("hostname", "chat@chat-0.chat-headless.prod.svc.cluster.local"),
    ],
    ids=["ip names the address", "dns names the pod A record", "hostname names the StatefulSet pod"],
)
def test_node_names_are_the_ones_libcluster_builds(naming: str, expected: str) -> None:
    name = discovery.node_name(
        naming,
        "chat",
        "10.0.3.7",
        "prod",
        "cluster.local",
        service="chat-headless",
        hostname="chat-0",  # type: ignore[arg-type]
    )
    assert name == expected


def test_only_non_terminating_pod_endpoints_are_members() -> None:
    outcome = discovery.from_endpoints(
        spec(),
        namespace="prod",
        domain="cluster.local",
        service=HEADLESS,
        endpoints=[
            endpoint("10.0.0.1", "chat-0"),
            endpoint("10.0.0.2", "chat-1", ready=False),
            endpoint("10.0.0.3", "chat-2", terminating=True),
            endpoint("10.0.0.4", "chat-3", pod_leaving=True),
            endpoint("10.0.0.5", None),
        ],
    )
    assert outcome.found == [
        discovery.Found(name="chat@10.0.0.1", ip="10.0.0.1", pod="chat-0", ready=True),
        discovery.Found(name="chat@10.0.0.2", ip="10.0.0.2", pod="chat-1", ready=False),
    ]
    assert (outcome.ok, outcome.reason, outcome.message) == (
        True,
        "MembersFound",
        "2 members from Service 'chat-headless'",
    )


def test_an_endpoint_in_two_slices_is_one_member_ready_if_either_says_so() -> None:
    outcome = discovery.from_endpoints(
        spec(),
        namespace="prod",
        domain="cluster.local",
        service=HEADLESS,
        endpoints=[endpoint("10.0.0.1", ready=False), endpoint("10.0.0.1")],
    )
    assert outcome.found == [discovery.Found(name="chat@10.0.0.1", ip="10.0.0.1", pod="chat-0", ready=True)]


@pytest.mark.parametrize(
    ("service", "reason"),
    [
        (ServiceState(exists=False), "ServiceNotFound"),
        (ServiceState(exists=True, headless=False), "ServiceNotHeadless"),
    ],
    ids=["a missing Service", "a Service with a cluster IP"],
)
def test_a_bad_service_keeps_the_last_members_instead_of_inventing_none(
    service: ServiceState, reason: str
) -> None:
    outcome = discovery.from_endpoints(
        spec(), namespace="prod", domain="cluster.local", service=service, endpoints=[endpoint("10.0.0.1")]
    )
    assert (outcome.found, outcome.ok, outcome.reason) == (None, False, reason)


@pytest.mark.parametrize(
    ("strategy", "resolved", "expected"),
    [
        (
            "KubernetesDNS",
            Resolution("chat-headless.prod.svc.cluster.local", ("10.0.0.2", "10.0.0.1")),
            (True, "MembersFound", 2),
        ),
        (
            "KubernetesDNS",
            Resolution("chat-headless.prod.svc.cluster.local", error="NXDOMAIN"),
            (False, "NoMembers", 0),
        ),
        (
            "KubernetesDNS",
            Resolution("chat-headless.prod.svc.cluster.local", error="Timeout", message="no answer"),
            (False, "DNSFailure", None),
        ),
        (
            "DNSPoll",
            Resolution("chat.internal", error="NXDOMAIN", message="no such name"),
            (False, "DNSFailure", None),
        ),
        ("DNSPoll", Resolution("chat.internal", ("10.0.0.1",)), (True, "MembersFound", 1)),
    ],
    ids=[
        "addresses are members",
        "NXDOMAIN for an existing headless Service means no ready pods (CoreDNS)",
        "a timeout keeps the last members",
        "NXDOMAIN for a DNSPoll name is a failure",
        "DNSPoll names members after the address",
    ],
)
def test_dns_outcomes(strategy: str, resolved: Resolution, expected: tuple[bool, str, int | None]) -> None:
    outcome = discovery.from_resolution(
        spec(strategy=strategy, query="chat.internal"),
        namespace="prod",
        domain="cluster.local",
        service=HEADLESS,
        resolved=resolved,
    )
    assert (outcome.ok, outcome.reason, None if outcome.found is None else len(outcome.found)) == expected


def test_kubernetes_dns_checks_the_service_before_trusting_dns() -> None:
    outcome = discovery.from_resolution(
        spec(strategy="KubernetesDNS"),
        namespace="prod",
        domain="cluster.local",
        service=ServiceState(exists=False),
        resolved=Resolution("x", ("10.0.0.1",)),
    )
    assert (outcome.found, outcome.reason) == (None, "ServiceNotFound")


addresses = st.lists(st.integers(1, 250).map(lambda n: f"10.0.0.{n}"), max_size=8)


@given(before=addresses, after=addresses)
def test_a_member_keeps_the_time_it_was_first_seen(before: list[str], after: list[str]) -> None:
    first = discovery.members([discovery.Found(f"chat@{ip}", ip) for ip in set(before)], [], NOW)
    later = NOW + datetime.timedelta(minutes=5)
    second = discovery.members([discovery.Found(f"chat@{ip}", ip) for ip in set(after)], first, later)
    expected = {f"chat@{ip}": NOW if ip in before else later for ip in after}
    assert {m.name: m.since for m in second} == expected
    assert [m.name for m in second] == sorted(expected)
    assert all(isinstance(m, Member) for m in second)


def test_a_forbidden_watch_keeps_the_last_members_instead_of_emptying_the_cluster() -> None:
    outcome = discovery.forbidden(
        ["list endpointslices.discovery.k8s.io", "watch endpointslices.discovery.k8s.io"]
    )
    assert (outcome.found, outcome.ok, outcome.reason, outcome.message) == (
        None,
        False,
        "Forbidden",
        "RBAC forbids list endpointslices.discovery.k8s.io, watch endpointslices.discovery.k8s.io; "
        "the last known members are kept",
    )

"""Who the members are, from what a strategy found: pure functions, no resolving, no watching.

Node names match libcluster's for the same pod (lib/strategy/kubernetes.ex, format_node):
``ip`` → ``app@10.0.3.7``; ``dns`` → ``app@10-0-3-7.<namespace>.pod.<domain>``;
``hostname`` → ``app@<hostname>.<service>.<namespace>.svc.<domain>``, where libcluster's
domain is ``<cluster_name>.local`` (``cluster.local`` by default).

Unlike libcluster, an error never yields an empty member list: a missing Service, a
non-headless one or a failed lookup keeps the last known members, marked stale.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from collections.abc import Sequence
from typing import Literal

from conclave.api import ClusterTopologySpec, Member, times
from conclave.core.facts import Endpoint, Resolution, ServiceState

NodeNaming = Literal["ip", "hostname", "dns"]


@dataclasses.dataclass(frozen=True)
class Found:
    """One discovered member, named, before it is dated."""

    name: str
    ip: str | None = None
    pod: str | None = None
    ready: bool = True
    node_name: str | None = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What discovery concluded: members (None: keep the last known, stale) and why."""

    found: list[Found] | None
    ok: bool | None
    """True: members found; False: none, or an error; None: nothing observed yet."""
    reason: str
    message: str


def node_name(
    naming: NodeNaming,
    application: str,
    ip: str,
    namespace: str,
    domain: str,
    service: str | None = None,
    hostname: str | None = None,
) -> str:
    if naming == "dns":
        return f"{application}@{ip.replace('.', '-')}.{namespace}.pod.{domain}"
    if naming == "hostname" and hostname and service:
        return f"{application}@{hostname}.{service}.{namespace}.svc.{domain}"
    return f"{application}@{ip}"


def static(spec: ClusterTopologySpec) -> Outcome:
    """Static (libcluster's Epmd): the hosts are full node names, taken as given and ready."""
    found = [Found(name=host, ip=_address_of(host)) for host in dict.fromkeys(spec.hosts)]
    return Outcome(found, True, "MembersFound", f"{len(found)} members from spec.hosts")


def forbidden(refused: Sequence[str]) -> Outcome:
    """RBAC hides what discovery needs: a watch it refuses looks empty, so keep the members."""
    return Outcome(
        None, False, "Forbidden", f"RBAC forbids {', '.join(refused)}; the last known members are kept"
    )


def from_endpoints(
    spec: ClusterTopologySpec,
    *,
    namespace: str,
    domain: str,
    service: ServiceState,
    endpoints: Sequence[Endpoint],
) -> Outcome:
    """KubernetesAPI: every endpoint of the Service's slices whose pod is neither
    terminating nor leaving (``Endpoint.pod_leaving``) is a member."""
    name = spec.service
    if not service.exists:
        return Outcome(None, False, "ServiceNotFound", f"Service {name!r} does not exist in {namespace!r}")
    if not service.headless:
        return Outcome(
            None, False, "ServiceNotHeadless", f"Service {name!r} has a cluster IP; set clusterIP: None"
        )
    by_name: dict[str, Found] = {}
    for endpoint in endpoints:
        if endpoint.pod is None or endpoint.terminating or endpoint.pod_leaving:
            continue
        member = node_name(
            spec.node_naming,
            spec.application_name,
            endpoint.ip,
            namespace,
            domain,
            service=name,
            hostname=endpoint.hostname or endpoint.pod,
        )
        seen = by_name.get(member)  # the same endpoint can sit in two slices for a moment
        by_name[member] = Found(
            name=member,
            ip=endpoint.ip,
            pod=endpoint.pod,
            ready=endpoint.ready or (seen is not None and seen.ready),
            node_name=endpoint.node_name,
        )
    found = list(by_name.values())
    if not found:
        return Outcome(found, False, "NoMembers", f"Service {name!r} has no endpoints backed by running pods")
    return Outcome(found, True, "MembersFound", f"{len(found)} members from Service {name!r}")


def dns_name(spec: ClusterTopologySpec, namespace: str, domain: str) -> str:
    """The name a DNS strategy resolves: the headless Service's, or spec.query (DNSPoll)."""
    if spec.strategy == "DNSPoll":
        return spec.query or ""
    return f"{spec.service}.{namespace}.svc.{domain}"


def from_resolution(
    spec: ClusterTopologySpec,
    *,
    namespace: str,
    domain: str,
    service: ServiceState | None,
    resolved: Resolution,
) -> Outcome:
    """KubernetesDNS and DNSPoll: every resolved address is a ready member.

    For KubernetesDNS the Service is checked first (the watch knows it); then NXDOMAIN
    means what CoreDNS means by it for an existing headless Service: no ready endpoints.
    For DNSPoll, NXDOMAIN is a failure: the last members are kept.
    """
    if spec.strategy == "KubernetesDNS" and service is not None:
        if not service.exists:
            return Outcome(
                None, False, "ServiceNotFound", f"Service {spec.service!r} does not exist in {namespace!r}"
            )
        if not service.headless:
            return Outcome(None, False, "ServiceNotHeadless", f"Service {spec.service!r} has a cluster IP")
    empty = resolved.error == "NXDOMAIN" and spec.strategy == "KubernetesDNS"
    if resolved.error is not None and not empty:
        return Outcome(None, False, "DNSFailure", f"Resolving {resolved.name} failed: {resolved.message}")
    found = [
        Found(name=node_name(spec.node_naming, spec.application_name, ip, namespace, domain), ip=ip)
        for ip in sorted(set(resolved.addresses))
    ]
    if not found:
        return Outcome(found, False, "NoMembers", f"{resolved.name} resolved to no addresses")
    return Outcome(found, True, "MembersFound", f"{len(found)} members from {resolved.name}")


def counts(member: Member | Found, readiness: Literal["Ready", "Any"]) -> bool:
    """Whether a member counts for the host list and placement."""
    return readiness == "Any" or member.ready


def members(found: Sequence[Found], previous: Sequence[Member], now: datetime.datetime) -> list[Member]:
    """Members sorted by name, each dated from when it was first seen (kept across runs)."""
    first_seen = {member.name: member.since for member in previous}
    return [
        Member(
            name=entry.name,
            pod=entry.pod,
            ip=entry.ip,
            ready=entry.ready,
            node_name=entry.node_name,
            since=first_seen.get(entry.name) or times.whole_seconds(now),
        )
        for entry in sorted(found, key=lambda entry: entry.name)
    ]


def _address_of(node: str) -> str | None:
    host = node.rpartition("@")[2]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None

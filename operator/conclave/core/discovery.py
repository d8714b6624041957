"""Who the members are, from what a strategy found: pure functions, no resolving, no watching.

``members`` keeps each member's ``since`` from the previous status, so republishing the
same members changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from collections.abc import Sequence

from conclave.api import ClusterTopologySpec, Member


@dataclasses.dataclass(frozen=True)
class Found:
    """One discovered endpoint, before it is named and dated."""

    name: str
    ip: str | None = None
    pod: str | None = None
    ready: bool = True
    node_name: str | None = None


def static(spec: ClusterTopologySpec) -> list[Found]:
    """Static (libcluster's Epmd): the hosts are full node names, taken as given and ready."""
    return [Found(name=host, ip=_address_of(host)) for host in dict.fromkeys(spec.hosts)]


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
            since=first_seen.get(entry.name) or now,
        )
        for entry in sorted(found, key=lambda entry: entry.name)
    ]


def _address_of(node_name: str) -> str | None:
    host = node_name.rpartition("@")[2]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None

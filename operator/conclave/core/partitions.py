"""Is the cluster split? The verdict over the ready members' own views, decided purely.

Two members are linked when each reports the other as connected; a member whose view is
unknown (it did not answer, or answered nonsense) is linked to every member that reports
it, since nobody can say it is cut off. From the links:

- Healthy: every pair of members linked;
- Partitioned: two or more connected components;
- Degraded: one component, but some pairs not linked (Akka's "indirectly connected");
- Unknown: no views at all, or fewer than half of them known.

The majority is the largest set of mutually linked members that holds a strict majority
(or, with the LowestAddress tie-breaker, exactly half including the lowest address), found
as Akka's split brain resolver does: take the largest component and drop the members with
the most missing links until the rest are all linked.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Literal

State = Literal["Healthy", "Partitioned", "Degraded", "Unknown"]
TieBreaker = Literal["None", "LowestAddress"]


@dataclasses.dataclass(frozen=True)
class Verdict:
    state: State
    components: tuple[tuple[str, ...], ...] = ()
    majority: tuple[str, ...] = ()
    missing_links: tuple[tuple[str, str], ...] = ()


def links(views: Mapping[str, frozenset[str] | None]) -> set[frozenset[str]]:
    """The undirected links between the members (the keys of ``views``)."""
    found: set[frozenset[str]] = set()
    for a, b in combinations(sorted(views), 2):
        view_a, view_b = views[a], views[b]
        if view_a is None and view_b is None:
            continue  # nobody vouches for this link
        if (view_a is None or b in view_a) and (view_b is None or a in view_b):
            found.add(frozenset((a, b)))
    return found


def components(members: Sequence[str], linked: set[frozenset[str]]) -> tuple[tuple[str, ...], ...]:
    """Connected components, largest first, then by their first name; names sorted inside."""
    parent = {member: member for member in members}

    def root(member: str) -> str:
        while parent[member] != member:
            parent[member] = parent[parent[member]]
            member = parent[member]
        return member

    for pair in linked:
        a, b = sorted(pair)
        parent[root(a)] = root(b)
    groups: dict[str, list[str]] = {}
    for member in members:
        groups.setdefault(root(member), []).append(member)
    return tuple(sorted((tuple(sorted(group)) for group in groups.values()), key=lambda g: (-len(g), g)))


def _address_key(member: str, addresses: Mapping[str, str]) -> tuple[int, int, str]:
    """Orders members by address (numerically), then by name; unknown addresses last."""
    try:
        return (0, int(ipaddress.ip_address(addresses.get(member, ""))), member)
    except ValueError:
        return (1, 0, member)


def clique(
    group: Sequence[str], linked: set[frozenset[str]], addresses: Mapping[str, str]
) -> tuple[str, ...]:
    """Drop the member with the most missing links (ties: the highest address) until all
    remaining members are linked to each other."""
    remaining = sorted(group)
    while True:
        missing = {
            member: sum(
                1 for other in remaining if other != member and frozenset((member, other)) not in linked
            )
            for member in remaining
        }
        worst = max(missing.values(), default=0)
        if worst == 0:
            return tuple(remaining)
        candidates = [member for member in remaining if missing[member] == worst]
        remaining.remove(max(candidates, key=lambda m: _address_key(m, addresses)))


def verdict(
    views: Mapping[str, frozenset[str] | None],
    addresses: Mapping[str, str] | None = None,
    tie_breaker: TieBreaker = "None",
) -> Verdict:
    """The verdict for the ready members (the keys of ``views``); addresses break ties."""
    addresses = addresses or {}
    members = sorted(views)
    known = sum(1 for view in views.values() if view is not None)
    if not members or known * 2 < len(members):
        return Verdict("Unknown")
    linked = links(views)
    parts = components(members, linked)
    missing = tuple(
        (a, b) for part in parts for a, b in combinations(part, 2) if frozenset((a, b)) not in linked
    )
    state: State = "Partitioned" if len(parts) > 1 else "Degraded" if missing else "Healthy"
    majority = clique(parts[0], linked, addresses)
    lowest = min(members, key=lambda m: _address_key(m, addresses))
    holds = len(majority) * 2 > len(members) or (
        tie_breaker == "LowestAddress" and len(majority) * 2 == len(members) and lowest in majority
    )
    if not holds and tie_breaker == "LowestAddress" and len(parts) > 1:
        # an even split: the half with the lowest address may be any of the equal largest ones
        for part in parts:
            candidate = clique(part, linked, addresses)
            if len(candidate) * 2 == len(members) and lowest in candidate:
                majority, holds = candidate, True
    return Verdict(state, parts, majority if holds else (), missing)


@dataclasses.dataclass(frozen=True)
class Debounced:
    """The published verdict, and a different one waiting to hold long enough."""

    published: Verdict
    published_since: datetime.datetime
    candidate: Verdict | None = None
    candidate_since: datetime.datetime | None = None


def debounce(
    current: Debounced | None, observed: Verdict, now: datetime.datetime, stable_after: datetime.timedelta
) -> Debounced:
    """Publish ``observed`` only once it has held for ``stable_after``; a flap shorter than
    that never replaces the published verdict. The first verdict is published at once."""
    if current is None:
        return Debounced(observed, now)
    if observed == current.published:
        return Debounced(current.published, current.published_since)
    if observed != current.candidate or current.candidate_since is None:
        current = Debounced(current.published, current.published_since, observed, now)
    assert current.candidate_since is not None
    if now - current.candidate_since >= stable_after:
        return Debounced(observed, now)
    return current

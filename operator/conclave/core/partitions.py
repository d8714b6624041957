"""Is the cluster split? The verdict over the ready members' own views, decided purely.

A member whose probe was actively refused (the host answered and nothing listens) is
**down**: crashed, not cut off. It is listed apart, it is no component, and it never makes
the cluster split; the members that remain are judged among themselves. A member that
only timed out is not down: nobody can tell it from a cut, so its view is unknown.

Two members are linked when each reports the other as connected; a member whose view is
unknown (it did not answer, or answered nonsense) is linked to every member that reports
it, since nobody can say it is cut off. From the links:

- Healthy: every pair of members linked;
- Partitioned: two or more connected components;
- Degraded: one component, but some pairs not linked (Akka's "indirectly connected");
- Unknown: no views at all, or fewer than half of them known.

The majority is the largest set of mutually linked members that holds a strict majority
of every member that counts, down ones included (a down member might not be down, and a
majority must stay a majority of the whole), or, with the LowestAddress tie-breaker,
exactly half including the lowest address; it is found
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


DOWN_REASONS = frozenset({"ConnectionRefused", "NotRegistered"})
"""Probe outcomes that mean the member's host answered and its node is not there."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    state: State
    components: tuple[tuple[str, ...], ...] = ()
    majority: tuple[str, ...] = ()
    missing_links: tuple[tuple[str, str], ...] = ()
    down: tuple[tuple[str, str], ...] = ()
    """(member, reason) of the members that are down, by name."""


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
    down: Mapping[str, str] | None = None,
) -> Verdict:
    """The verdict for the ready members (the keys of ``views``); addresses break ties.

    ``down``: member → reason, for the members whose probe was refused; they are judged
    apart (see the module docstring) and still count towards the majority's whole.
    """
    addresses = addresses or {}
    everyone = sorted(views)
    gone = tuple(sorted((m, reason) for m, reason in (down or {}).items() if m in views))
    remaining = {m: view for m, view in views.items() if m not in dict(gone)}
    members = sorted(remaining)
    known = sum(1 for view in remaining.values() if view is not None)
    if not members or known * 2 < len(members):
        return Verdict("Unknown", down=gone)
    return _judge(members, links(remaining), everyone, addresses, tie_breaker, gone)


def _judge(
    members: Sequence[str],
    linked: set[frozenset[str]],
    everyone: Sequence[str],
    addresses: Mapping[str, str],
    tie_breaker: TieBreaker,
    down: tuple[tuple[str, str], ...],
) -> Verdict:
    """The verdict over ``members`` (none of them down) and their links; the majority must
    hold among ``everyone``."""
    parts = components(members, linked)
    missing = tuple(
        (a, b) for part in parts for a, b in combinations(part, 2) if frozenset((a, b)) not in linked
    )
    state: State = "Partitioned" if len(parts) > 1 else "Degraded" if missing else "Healthy"
    majority = clique(parts[0], linked, addresses)
    lowest = min(everyone, key=lambda m: _address_key(m, addresses))
    holds = _holds(majority, len(everyone), lowest, tie_breaker)
    if not holds and tie_breaker == "LowestAddress" and len(parts) > 1:
        # an even split: the half with the lowest address may be any of the equal largest ones
        for part in parts:
            candidate = clique(part, linked, addresses)
            if _holds(candidate, len(everyone), lowest, tie_breaker):
                majority, holds = candidate, True
    return Verdict(state, parts, majority if holds else (), missing, down)


def _holds(group: Sequence[str], whole: int, lowest: str, tie_breaker: TieBreaker) -> bool:
    """A strict majority of ``whole``, or exactly half holding the lowest address."""
    return len(group) * 2 > whole or (
        tie_breaker == "LowestAddress" and len(group) * 2 == whole and lowest in group
    )


def restrict(
    verdict: Verdict, members: Sequence[str], addresses: Mapping[str, str], tie_breaker: TieBreaker
) -> Verdict:
    """``verdict`` without the members that have left: a status never names a member that
    is no longer one. The rest is judged again on the links the verdict implies (inside a
    component every pair but the missing links), so a split whose other side was deleted
    is no split, and the majority must hold among the members there are now."""
    kept = set(members)
    if kept.issuperset(_named(verdict)):
        return verdict
    down = tuple(entry for entry in verdict.down if entry[0] in kept)
    remaining = [m for part in verdict.components for m in part if m in kept]
    if verdict.state == "Unknown" or not remaining:
        return Verdict("Unknown", down=down)
    missing = {frozenset(link) for link in verdict.missing_links}
    linked = {
        frozenset((a, b))
        for part in verdict.components
        for a, b in combinations([m for m in part if m in kept], 2)
        if frozenset((a, b)) not in missing
    }
    return _judge(sorted(remaining), linked, sorted(kept), addresses, tie_breaker, down)


def _named(verdict: Verdict) -> set[str]:
    named = {m for part in verdict.components for m in part} | set(verdict.majority)
    named |= {m for link in verdict.missing_links for m in link} | {m for m, _ in verdict.down}
    return named


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

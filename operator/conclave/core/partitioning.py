"""The partition part of a topology's plan: the debounced verdict, its status, conditions,
events and metrics. Decides only from the observation; keeps nothing.

The debounce needs to remember a candidate verdict between iterations; it travels in the
observation and comes back in the plan (``Plan.partition_memory``), so this stays pure.
After an operator restart the published verdict is read back from status, and a pending
candidate starts its wait afresh.

Status is bounded by design (``topologies.NAMES_SHOWN`` entries per list, counts exact), so
it fits the CRD at any size; a verdict whose status was cut (``truncated``) is not read
back after a restart (it would differ from the whole one and announce transitions that
never happened): it is judged afresh, and published without events.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence

from conclave.api import ClusterTopology, Member, durations, times
from conclave.api.topologies import NAMES_SHOWN, DownMember, MemberView, PartitionStatus
from conclave.core import partitions
from conclave.core.conditions import Wanted
from conclave.core.facts import Probed
from conclave.core.partitions import Debounced, TieBreaker, Verdict
from conclave.core.plans import EventIntent, MetricSample, ObjectRef

PARTITIONED = "Partitioned"
VIEW_PROBES = ("http", "erlang")
"""The probes that give each member's own view: http (the member serves it) and erlang
(conclave asks the node for its erlang:nodes())."""
QUORUM = "Quorum"


@dataclasses.dataclass(frozen=True)
class PartitionPlan:
    status: PartitionStatus
    conditions: list[Wanted]
    events: list[EventIntent]
    metrics: list[MetricSample]
    memory: Debounced


def _from_status(status: PartitionStatus | None, now: datetime.datetime) -> Debounced | None:
    """The published verdict as status holds it; None when there is none, or it was cut."""
    if status is None or status.truncated:
        return None
    verdict = Verdict(
        status.state,
        tuple(tuple(part) for part in status.components),
        tuple(status.majority),
        tuple((link[0], link[1]) for link in status.missing_links),
        tuple((member.name, member.reason) for member in status.down),
    )
    return Debounced(verdict, status.since or now)


def _restricted(
    memory: Debounced | None, members: Sequence[str], addresses: Mapping[str, str], tie: TieBreaker
) -> Debounced | None:
    """The debounce without members that have left: they vanish from status at once, and
    ``stableAfter`` goes on judging the members that remain."""
    if memory is None:
        return None
    candidate = memory.candidate
    return Debounced(
        partitions.restrict(memory.published, members, addresses, tie),
        memory.published_since,
        partitions.restrict(candidate, members, addresses, tie) if candidate is not None else None,
        memory.candidate_since,
    )


NAMES_IN_MESSAGES = 20
"""How many names a condition message or event note lists of one part, before it counts."""


def _listed(names: Sequence[str]) -> str:
    """``a, b, c``; past NAMES_IN_MESSAGES names, the first ones and how many there are in all."""
    if len(names) <= NAMES_IN_MESSAGES:
        return ", ".join(names)
    return f"{', '.join(names[:NAMES_IN_MESSAGES])}, ... ({len(names)} in all)"


def _describe(verdict: Verdict) -> str:
    shown = verdict.components[:NAMES_IN_MESSAGES]
    parts = " | ".join("{" + _listed(part) + "}" for part in shown)
    if len(verdict.components) > len(shown):
        parts += f" | ... ({len(verdict.components)} components in all)"
    return f"components {parts}" if parts else "no components"


def plan(
    topology: ClusterTopology,
    *,
    owner: ObjectRef,
    counting: Sequence[Member],
    views: Mapping[str, Probed],
    memory: Debounced | None,
    now: datetime.datetime,
) -> PartitionPlan:
    """The verdict over the members that count; a member not probed yet has an unknown view."""
    spec, status = topology.spec, topology.status
    members = [member.name for member in counting]
    addresses = {member.name: member.ip for member in counting if member.ip}
    seen = {name: views[name].connected if name in views else None for name in members}
    down = {
        name: reason
        for name in members
        if (reason := views[name].reason if name in views else None) in partitions.DOWN_REASONS
    }
    tie = spec.partition.tie_breaker
    if spec.probe.type in VIEW_PROBES:
        observed = partitions.verdict(seen, addresses, tie, down)
    else:
        observed = Verdict("Unknown", down=tuple(sorted(down.items())))
    previous = _restricted(memory or _from_status(status.partition, now), members, addresses, tie)
    stable = durations.parse(spec.partition.stable_after)
    current = partitions.debounce(previous, observed, now, stable)
    published = current.published
    was_down = {entry.name: entry.since for entry in (status.partition.down if status.partition else [])}
    decided = bounded(published, seen, views, was_down, current.published_since, now)
    wanted = [_partitioned(published, spec.probe.type), _quorum(published)]
    events = _transitions(owner, previous.published if previous else None, published)
    labels = {"namespace": owner.namespace, "topology": owner.name}
    samples = [
        MetricSample(
            "conclave_topology_partitioned",
            labels,
            1.0 if published.state in ("Partitioned", "Degraded") else 0.0,
        ),
        MetricSample("conclave_topology_components", labels, float(len(published.components))),
        MetricSample("conclave_topology_quorum", labels, 1.0 if published.majority else 0.0),
        MetricSample("conclave_topology_members_down", labels, float(len(published.down))),
    ]
    return PartitionPlan(decided, wanted, events, samples, current)


def bounded(
    published: Verdict,
    seen: Mapping[str, frozenset[str] | None],
    views: Mapping[str, Probed],
    was_down: Mapping[str, datetime.datetime | None],
    since: datetime.datetime,
    now: datetime.datetime,
) -> PartitionStatus:
    """The verdict as status shows it: every list cut to ``NAMES_SHOWN`` entries (in a
    fixed order, so the same verdict is the same status), every count exact."""
    components = [list(part) for part in published.components]  # largest first, names sorted
    unknown = sorted(name for name, known in seen.items() if known is None)
    shown_views = [*unknown, *sorted(name for name, known in seen.items() if known is not None)]
    links = sorted(list(link) for link in published.missing_links)
    cut = (
        len(components) > NAMES_SHOWN
        or any(len(part) > NAMES_SHOWN for part in components)
        or len(published.majority) > NAMES_SHOWN
        or len(links) > NAMES_SHOWN
        or len(published.down) > NAMES_SHOWN
        or len(shown_views) > NAMES_SHOWN
    )
    return PartitionStatus(
        state=published.state,
        components=[part[:NAMES_SHOWN] for part in components[:NAMES_SHOWN]],
        component_count=len(components),
        component_sizes=[len(part) for part in components[:NAMES_SHOWN]],
        majority=sorted(published.majority)[:NAMES_SHOWN],
        majority_size=len(published.majority),
        missing_links=links[:NAMES_SHOWN],
        missing_link_count=len(links),
        down=[
            DownMember(name=name, reason=reason, since=was_down.get(name) or times.whole_seconds(now))
            for name, reason in sorted(published.down)[:NAMES_SHOWN]
        ],
        down_count=len(published.down),
        since=times.whole_seconds(since),
        views=[
            MemberView(
                member=name,
                known=seen[name] is not None,
                reason=views[name].reason if name in views else None,
            )
            for name in shown_views[:NAMES_SHOWN]
        ],
        unknown_views=len(unknown),
        truncated=True if cut else None,
    )


def _partitioned(verdict: Verdict, probe: str) -> Wanted:
    if verdict.state == "Partitioned":
        return Wanted(PARTITIONED, True, "Split", f"The cluster is split: {_describe(verdict)}")
    if verdict.state == "Degraded":
        links = _listed([f"{a}-{b}" for a, b in verdict.missing_links])
        return Wanted(
            PARTITIONED,
            True,
            "PartialPartition",
            f"Members connected only indirectly; missing links: {links}",
        )
    if verdict.state == "Healthy" and verdict.down:
        message = f"Every member that is up sees every other; down (crashed, not cut off): {_down(verdict)}"
        return Wanted(PARTITIONED, False, "MembersDown", message)
    if verdict.state == "Healthy":
        return Wanted(PARTITIONED, False, "FullyConnected", "Every member sees every other member")
    if probe not in VIEW_PROBES:
        return Wanted(PARTITIONED, None, "NoMemberViews", f"probe.type {probe} gives no member views")
    return Wanted(PARTITIONED, None, "ViewsUnknown", "Fewer than half of the members' views are known")


def _quorum(verdict: Verdict) -> Wanted:
    if verdict.state == "Unknown":
        return Wanted(QUORUM, None, "ViewsUnknown", "Whether a majority is reachable is unknown")
    if verdict.majority:
        return Wanted(QUORUM, True, "MajorityReachable", f"Majority: {_listed(verdict.majority)}")
    return Wanted(
        QUORUM, False, "NoMajority", f"No group of connected members is a majority: {_describe(verdict)}"
    )


def _down(verdict: Verdict) -> str:
    return _listed([f"{member} ({reason})" for member, reason in verdict.down])


def _transitions(owner: ObjectRef, before: Verdict | None, after: Verdict) -> list[EventIntent]:
    """Events only when the published verdict changes, never per probe. A member that
    leaves the topology while down leaves without MemberRecovered (``before`` is restricted
    to the members there are)."""
    if before is None or before == after:
        return []
    split = ("Partitioned", "Degraded")
    was, now = dict(before.down), dict(after.down)
    events = [
        EventIntent(
            owner,
            "Warning",
            "MemberDown",
            "Probe",
            f"Member {member} is down ({now[member]}): its host answered and its node did not; "
            "crashed, not cut off",
        )
        for member in sorted(now.keys() - was.keys())
    ]
    events += [
        EventIntent(owner, "Normal", "MemberRecovered", "Probe", f"Member {member} is up again")
        for member in sorted(was.keys() - now.keys())
    ]
    if after.state in split and before.state not in split:
        events.append(
            EventIntent(owner, "Warning", "PartitionDetected", "Probe", f"Cluster split: {_describe(after)}")
        )
    elif after.state == "Healthy" and before.state in split:
        events.append(
            EventIntent(owner, "Normal", "PartitionHealed", "Probe", f"Cluster healed: {_describe(after)}")
        )
    if before.majority and not after.majority and after.state != "Unknown":
        events.append(
            EventIntent(owner, "Warning", "QuorumLost", "Probe", f"No majority: {_describe(after)}")
        )
    return events

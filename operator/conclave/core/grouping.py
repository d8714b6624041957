"""ProcessGroups: Erlang's :pg for pods, decided purely.

A group's members are the topology's members that count (memberReadiness) whose pod
matches the group's selector. ``scope`` keeps groups apart as :pg scopes do: the group is
the (scope, group) pair, so the same name in two scopes is two groups. Membership is
recomputed from scratch every time (level-triggered), so a restarted pod with a new IP
leaves and rejoins on its own.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from conclave.api import Member, ProcessGroup
from conclave.core.conditions import Wanted
from conclave.core.plans import EventIntent, MetricSample, ObjectRef

POPULATED = "Populated"


@dataclasses.dataclass(frozen=True)
class PodFacts:
    """What grouping needs of a pod: its labels, to match the selector."""

    name: str
    labels: Mapping[str, str]
    ip: str | None = None


@dataclasses.dataclass(frozen=True)
class GroupPlan:
    fields: dict[str, Any]
    conditions: list[Wanted]
    events: list[EventIntent]
    metrics: list[MetricSample]


def members(group: ProcessGroup, counted: Sequence[Member], pods: Mapping[str, PodFacts]) -> list[Member]:
    """The counted topology members whose pod (by name, else by address) matches the selector."""
    by_ip = {pod.ip: pod for pod in pods.values() if pod.ip}
    chosen = []
    for member in counted:
        pod = pods.get(member.pod) if member.pod else by_ip.get(member.ip or "")
        if pod is not None and group.spec.selector.matches(pod.labels):
            chosen.append(member)
    return sorted(chosen, key=lambda member: member.name)


def plan(
    group: ProcessGroup,
    owner: ObjectRef,
    chosen: Sequence[Member] | None,
    now: datetime.datetime,
    namespace: str,
) -> GroupPlan:
    """``chosen`` is None when the topology does not exist: membership is then unknown."""
    status = group.status
    labels = {"namespace": namespace, "scope": group.spec.scope, "group": group.spec.group}
    if chosen is None:
        populated = Wanted(POPULATED, None, "TopologyNotFound", "The group's topology does not exist")
        return GroupPlan({}, [populated], [], [])
    names = [member.name for member in chosen]
    by_node: dict[str, int] = {}
    for member in chosen:
        if member.node_name:
            by_node[member.node_name] = by_node.get(member.node_name, 0) + 1
    joined = sorted(set(names) - set(status.members))
    left = sorted(set(status.members) - set(names))
    changed = bool(joined or left) or status.count is None
    fields = {
        "members": names,
        "count": len(names),
        "membersByNode": dict(sorted(by_node.items())),
        "lastChange": now.strftime("%Y-%m-%dT%H:%M:%SZ") if changed else _time(status.last_change),
    }
    minimum = group.spec.min_members
    if len(names) >= minimum:
        populated = Wanted(POPULATED, True, "Populated", f"{len(names)} members (minimum {minimum})")
    elif not names:
        populated = Wanted(POPULATED, False, "Empty", "No pod matches; fan-out to this group reaches nobody")
    else:
        populated = Wanted(POPULATED, False, "BelowMinimum", f"{len(names)} members, fewer than {minimum}")
    events = []
    if joined and status.count is not None:  # one event per burst, as Phoenix.Tracker's diffs
        note = f"Joined: {', '.join(joined)}"
        events.append(EventIntent(owner, "Normal", "MemberJoinedGroup", "Group", note))
    if left:
        events.append(EventIntent(owner, "Normal", "MemberLeftGroup", "Group", f"Left: {', '.join(left)}"))
    previous = next((c for c in status.conditions if c.type == POPULATED), None)
    if populated.status is False and (previous is None or previous.reason != populated.reason):
        reason = "GroupEmpty" if not names else "GroupBelowMinimum"
        events.append(EventIntent(owner, "Warning", reason, "Group", populated.message))
    samples = [MetricSample("conclave_process_group_members", labels, float(len(names)))]
    if joined or left:
        changes = float(len(joined) + len(left))
        samples.append(MetricSample("conclave_process_group_changes", {}, changes, "inc"))
    return GroupPlan(fields, [populated], events, samples)


def _time(moment: datetime.datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None

"""ProcessGroups: Erlang's :pg for pods, decided purely.

A group's members are the topology's members that count (memberReadiness) whose pod
matches the group's selector. ``scope`` keeps groups apart as :pg scopes do: the group is
the (scope, group) pair, so the same name in two scopes is two groups. Membership is
recomputed from scratch every time (level-triggered), so a restarted pod with a new IP
leaves and rejoins on its own. Every group of a plan is matched against the same members
and pods, so what they share is worked out once per plan (``MemberIndex``: the members by
their pod's label set; the published objects by group), not once per group.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import itertools
import re
from collections.abc import Collection, Iterator, Mapping, Sequence

from conclave.api import LabelSelector, Member, ProcessGroup, ProcessGroupStatus, times
from conclave.core.conditions import Wanted
from conclave.core.facts import Address, GroupIdentity, PodFacts, Published
from conclave.core.marks import GROUP_LABEL, MANAGED_BY
from conclave.core.plans import EventIntent, MetricSample, ObjectRef, OwnedObject, Removal

POPULATED = "Populated"


@dataclasses.dataclass(frozen=True)
class GroupPlan:
    status: ProcessGroupStatus
    """The fields the group's membership decides (empty while the topology is missing)."""
    conditions: list[Wanted]
    events: list[EventIntent]
    metrics: list[MetricSample]
    chosen: Sequence[Member] | None = None
    """The members to publish (None: membership unknown, publish nothing)."""


class MemberIndex:
    """The counted members by the label set of their pod (by name, else by address), for
    matching selectors: many pods share one label set, so a selector is tested once per
    distinct set, and only against the sets that carry a label it requires.

    Built from ``counted`` and ``pods`` as they are when it is built: neither may change
    while it is used (an observation's are never changed).
    """

    def __init__(self, counted: Sequence[Member], pods: Mapping[str, PodFacts]) -> None:
        unnamed = any(not member.pod for member in counted)  # only they need the pods by address
        by_ip = {pod.ip: pod for pod in pods.values() if pod.ip} if unnamed else {}
        classes: dict[frozenset[tuple[str, str]], int] = {}
        self._labels: list[Mapping[str, str]] = []
        self._members: list[list[tuple[str, int, Member]]] = []
        """Per label set: its members as (name, position in ``counted``, member)."""
        self._by_pair: dict[tuple[str, str], list[int]] = {}
        self._by_key: dict[str, list[int]] = {}
        for position, member in enumerate(counted):
            pod = pods.get(member.pod) if member.pod else by_ip.get(member.ip or "")
            if pod is None:
                continue
            labels = pod.labels
            found = classes.setdefault(frozenset(labels.items()), len(classes))
            if found == len(self._labels):
                self._labels.append(labels)
                self._members.append([])
                for key, value in labels.items():
                    self._by_pair.setdefault((key, value), []).append(found)
                    self._by_key.setdefault(key, []).append(found)
            self._members[found].append((member.name, position, member))

    def matching(self, selector: LabelSelector) -> list[Member]:
        """The members whose pod matches ``selector``, sorted by name (in ``counted``'s
        order among equal names)."""
        candidates = self._candidates(selector)
        found = [
            entry
            for label_set in candidates
            if selector.matches(self._labels[label_set])
            for entry in self._members[label_set]
        ]
        found.sort()  # (name, position): positions are distinct, members never compared
        return [member for _, _, member in found]

    def _candidates(self, selector: LabelSelector) -> Collection[int]:
        """The label sets that could match: those that carry the pair, the key or one of the
        values the selector's most selective positive requirement names (every set when it
        has none). Each is then tested against the whole selector."""
        best: Collection[int] | None = None
        for pair in selector.match_labels.items():
            best = _fewer(best, self._by_pair.get(pair, ()))
        for requirement in selector.match_expressions:
            if requirement.operator == "In":
                pairs = (self._by_pair.get((requirement.key, value), ()) for value in requirement.values)
                best = _fewer(best, set().union(*pairs))
            elif requirement.operator == "Exists":
                best = _fewer(best, self._by_key.get(requirement.key, ()))
        return range(len(self._labels)) if best is None else best


def _fewer(best: Collection[int] | None, other: Collection[int]) -> Collection[int]:
    return other if best is None or len(other) < len(best) else best


def members(
    group: ProcessGroup,
    counted: Sequence[Member],
    pods: Mapping[str, PodFacts],
    index: MemberIndex | None = None,
) -> list[Member]:
    """The counted topology members whose pod (by name, else by address) matches the
    selector, sorted by name. ``index``: the index of ``counted`` and ``pods``, built once
    for every group of a plan (None: built for this one)."""
    return (index if index is not None else MemberIndex(counted, pods)).matching(group.spec.selector)


def local_members(
    counted: Sequence[Member], processes: Mapping[str, int | None]
) -> tuple[list[Member], dict[str, int], list[str]]:
    """Source Erlang: the counted members whose node has processes in the group, how many
    each has, and the members whose node did not answer (their processes are unknown)."""
    chosen = sorted((m for m in counted if (processes.get(m.name) or 0) > 0), key=lambda m: m.name)
    unknown = sorted(m.name for m in counted if processes.get(m.name, None) is None)
    return chosen, {m.name: processes[m.name] or 0 for m in chosen}, unknown


def plan(
    group: ProcessGroup,
    *,
    owner: ObjectRef,
    chosen: Sequence[Member] | None,
    now: datetime.datetime,
    processes: Mapping[str, int] | None = None,
    unknown: Sequence[str] = (),
) -> GroupPlan:
    """``chosen`` is None when the topology does not exist: membership is then unknown.

    ``processes``: for source Erlang, how many of the group's processes each chosen member
    runs; the group's count is then of processes, not of members. ``unknown``: members whose
    node did not answer.
    """
    status = group.status
    labels = {"namespace": owner.namespace, "scope": group.spec.scope, "group": group.spec.group}
    if chosen is None:
        populated = Wanted(POPULATED, None, "TopologyNotFound", "The group's topology does not exist")
        return GroupPlan(ProcessGroupStatus(), [populated], [], [])
    names = [member.name for member in chosen]
    weight = {m.name: (processes or {}).get(m.name, 1) for m in chosen}
    by_node: dict[str, int] = {}
    for member in chosen:
        if member.node_name:
            by_node[member.node_name] = by_node.get(member.node_name, 0) + weight[member.name]
    size = sum(weight.values())
    joined = sorted(set(names) - set(status.members))
    left = sorted(set(status.members) - set(names))
    changed = bool(joined or left) or status.count is None
    decided = ProcessGroupStatus(
        members=names,
        count=size,
        members_by_node=dict(sorted(by_node.items())),
        last_change=times.whole_seconds(now) if changed else status.last_change,
    )
    minimum = group.spec.min_members
    what = f"{size} processes on {len(names)} nodes" if processes is not None else f"{size} members"
    silent = f"; no answer from {', '.join(unknown)}" if unknown else ""
    if size >= minimum:
        populated = Wanted(POPULATED, True, "Populated", f"{what} (minimum {minimum}){silent}")
    elif not names:
        nobody = "No process is in the group" if processes is not None else "No pod matches"
        populated = Wanted(
            POPULATED, False, "Empty", f"{nobody}; fan-out to this group reaches nobody{silent}"
        )
    else:
        populated = Wanted(POPULATED, False, "BelowMinimum", f"{what}, fewer than {minimum}{silent}")
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
    samples = [
        MetricSample("conclave_process_group_members", labels, float(size)),
        MetricSample("conclave_process_group_min_members", labels, float(minimum)),
    ]
    if joined or left:
        changes = float(len(joined) + len(left))
        samples.append(MetricSample("conclave_process_group_changes", {}, changes, "inc"))
    return GroupPlan(decided, [populated], events, samples, chosen)


MAX_LABEL = 63


def readable_name(scope: str, group: str) -> str:
    """A DNS-1035 label from scope and group: lowercase, [a-z0-9-], starting with a letter."""
    raw = group if scope == "default" else f"{scope}-{group}"
    cleaned = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", raw.lower())).strip("-")
    return cleaned if cleaned[:1].isalpha() else f"g-{cleaned}".rstrip("-")


def holders(services: Mapping[str, str | None], slices: Mapping[str, str | None]) -> dict[str, str | None]:
    """Every name a group's Service and EndpointSlice could collide with → the ProcessGroup
    that holds it (None: not conclave's, or its Service and slice disagree)."""
    found = dict(services)
    for name, group in slices.items():
        found[name] = group if found.get(name, group) == group else None
    return found


def service_names(groups: Sequence[GroupIdentity], held: Mapping[str, str | None]) -> dict[str, str]:
    """The Service name of each ProcessGroup (by its object name).

    A group keeps the name its status reports while that still fits its scope and group and
    nobody else holds it. Otherwise it gets the readable name when that is exact (nothing was
    replaced), fits 63 characters and is free; else the readable name shortened and suffixed
    with a hash of (scope, group). Groups created earlier choose first; a name ``held`` by
    anything but the group itself (see ``holders``) is never taken, since creating it would
    only fail.
    """
    ordered = sorted(groups, key=lambda g: (g.created, g.name))
    names: dict[str, str] = {}
    taken: set[str] = set()

    def claim(identity: GroupIdentity, name: str) -> None:
        names[identity.name] = name
        taken.add(name)

    def free(identity: GroupIdentity, name: str) -> bool:
        return name not in taken and held.get(name, identity.name) == identity.name

    for identity in ordered:
        if identity.service and _fits(identity, identity.service) and free(identity, identity.service):
            claim(identity, identity.service)
    for identity in ordered:
        if identity.name in names:
            continue
        readable = readable_name(identity.scope, identity.group)
        if _exact(identity, readable) and len(readable) <= MAX_LABEL and free(identity, readable):
            claim(identity, readable)
            continue
        claim(identity, next(h for h in _hashed_names(identity, readable) if free(identity, h)))
    return names


def _exact(identity: GroupIdentity, readable: str) -> bool:
    return readable == (
        identity.group if identity.scope == "default" else f"{identity.scope}-{identity.group}"
    )


def _hashed_names(identity: GroupIdentity, readable: str) -> Iterator[str]:
    """The readable name shortened, with a 6-hex hash of (scope, group): the first one is
    stable; the next ones, salted with a counter, serve when a foreign object holds it."""
    stem = readable[: MAX_LABEL - 7].rstrip("-")
    for attempt in itertools.count():
        key = f"{identity.scope}\0{identity.group}" + (f"\0{attempt}" if attempt else "")
        yield f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:6]}"


def _fits(identity: GroupIdentity, name: str) -> bool:
    """Whether ``name`` is one service_names could have given this (scope, group)."""
    readable = readable_name(identity.scope, identity.group)
    if name == readable:
        return _exact(identity, readable) and len(readable) <= MAX_LABEL
    return re.fullmatch(re.escape(readable[: MAX_LABEL - 7].rstrip("-")) + "-[0-9a-f]{6}", name) is not None


PUBLISHED_KINDS = ("Service", "EndpointSlice")


def leftovers(owner: ObjectRef, service: str, published: Mapping[str, Sequence[Published]]) -> list[Removal]:
    """What the group published under a name it no longer has: its scope or group changed,
    and a stale Service would keep answering the old DNS name with live addresses.
    ``published``: the namespace's published objects by group uid (``by_group``)."""
    return [
        Removal(item.kind, owner.namespace, item.name, item.uid, owner)
        for item in published.get(owner.uid, ())
        if item.name != service
    ]


def by_group(published: Sequence[Published]) -> dict[str, list[Published]]:
    """``published`` by the uid of the group that controls each, in its order."""
    found: dict[str, list[Published]] = {}
    for item in published:
        found.setdefault(item.group_uid, []).append(item)
    return found


def addresses(chosen: Sequence[Member]) -> tuple[Address, ...]:
    return tuple(sorted((m.ip, m.node_name, m.pod) for m in chosen if m.ip))


def publication(
    owner: ObjectRef,
    service: str,
    chosen: Sequence[Member],
    service_exists: bool,
    published: tuple[Address, ...] | None,
) -> list[OwnedObject]:
    """The selector-less headless Service and conclave's EndpointSlice behind it, when they
    are missing or differ (``published`` None: no slice yet)."""
    labels = {GROUP_LABEL: owner.name}
    wanted: list[OwnedObject] = []
    if not service_exists:
        spec = {"clusterIP": "None", "ports": [{"name": "epmd", "port": 4369, "protocol": "TCP"}]}
        wanted.append(OwnedObject("Service", owner.namespace, service, owner, labels, {"spec": spec}, False))
    desired = addresses(chosen)
    if published != desired:
        endpoints = [
            {
                "addresses": [ip],
                "conditions": {"ready": True},
                **({"nodeName": node} if node else {}),
                **({"targetRef": {"kind": "Pod", "name": pod, "namespace": owner.namespace}} if pod else {}),
            }
            for ip, node, pod in desired
        ]
        slice_labels = {
            **labels,
            "kubernetes.io/service-name": service,
            "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
        }
        content = {
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "epmd", "port": 4369, "protocol": "TCP"}],
        }
        wanted.append(
            OwnedObject(
                "EndpointSlice", owner.namespace, service, owner, slice_labels, content,
                published is not None,
            )
        )  # fmt: skip
    return wanted

"""`conclave status`: a terminal summary of every topology with its singletons and groups.

``fetch`` reads the three kinds (one namespace or the whole cluster) through the adapters'
client; ``render`` turns that snapshot into text and is a pure function of it and ``now``,
so the demo's live view and the command print the same thing and tests pin it exactly;
``document`` is the same summary as plain data, for ``conclave status -o json|yaml``.
This module only reads: it never writes to the API and decides nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from conclave.adapters.apiclient import ApiClient, load_configuration
from conclave.api import GROUP, VERSION, ClusterTopology, Condition, ProcessGroup, Singleton
from conclave.api.base import Model, Resource

R = TypeVar("R", bound=Resource)

ABNORMAL_WHEN_TRUE = frozenset({"Partitioned"})
"""Condition types whose True status is the bad news (all others are bad when not True)."""

GOOD, BAD, UNSURE, DIM = "green", "red", "yellow", "bright_black"
STATE_COLOURS = {"Healthy": GOOD, "Partitioned": BAD, "Degraded": UNSURE, "Unknown": UNSURE}
PHASE_COLOURS = {"Placed": GOOD, "Moving": UNSURE, "Pending": UNSURE, "Fenced": BAD}


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Every conclave resource of one namespace (or of the cluster), read at one moment."""

    topologies: tuple[ClusterTopology, ...] = ()
    singletons: tuple[Singleton, ...] = ()
    groups: tuple[ProcessGroup, ...] = ()

    def topology(self, name: str) -> ClusterTopology:
        """The topology called ``name``; raises KeyError unless there is exactly one."""
        return _named(self.topologies, name)

    def singleton(self, name: str) -> Singleton:
        return _named(self.singletons, name)

    def group(self, name: str) -> ProcessGroup:
        return _named(self.groups, name)


def _named(items: Sequence[R], name: str) -> R:
    found = [item for item in items if item.metadata.name == name]
    if len(found) != 1:
        raise KeyError(f"{len(found)} objects named {name!r}")
    return found[0]


async def fetch(api: ApiClient, namespace: str | None = None) -> Snapshot:
    """Read every topology, singleton and group of ``namespace`` (None: all namespaces).

    Raises ApiError subclasses; NotFoundError means conclave's CRDs are not installed.
    """
    base = f"/apis/{GROUP}/{VERSION}" + (f"/namespaces/{namespace}" if namespace else "")
    topologies, singletons, groups = await asyncio.gather(
        api.get(f"{base}/clustertopologies"), api.get(f"{base}/singletons"), api.get(f"{base}/processgroups")
    )
    return Snapshot(
        topologies=_parse(ClusterTopology, topologies),
        singletons=_parse(Singleton, singletons),
        groups=_parse(ProcessGroup, groups),
    )


async def read(kubeconfig: str | None, namespace: str | None, context: str | None = None) -> Snapshot:
    """``fetch`` with a client of its own: in-cluster credentials, else the kubeconfig (and
    its ``context``; None: the current one)."""
    async with ApiClient(load_configuration(kubeconfig, context), identity="status") as api:
        return await fetch(api, namespace)


def _parse(kind: type[R], listing: dict[str, Any]) -> tuple[R, ...]:
    items = (kind.from_api(item) for item in listing.get("items", []))
    return tuple(sorted(items, key=lambda item: (item.metadata.namespace, item.metadata.name)))


class _Painter:
    """click.style when colour is on, the text unchanged when it is off."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, fg: str | None = None, bold: bool = False) -> str:
        return click.style(text, fg=fg, bold=bold or None) if self.color and (fg or bold) else text


Cell = tuple[str, str | None]
"""A table cell's text and its colour (None: plain)."""


def _table(paint: _Painter, header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> list[str]:
    """Left-aligned columns, measured and padded outside the colour codes so that colour
    never shifts a column nor leaves trailing blanks."""
    widths = [max(len(h), *(len(row[i][0]) for row in rows)) for i, h in enumerate(header)]
    lines = []
    for row in [[(h, DIM) for h in header], *rows]:
        cells = [
            paint(text, colour) + " " * (w - len(text)) for (text, colour), w in zip(row, widths, strict=True)
        ]
        lines.append("    " + "  ".join(cells).rstrip())
    return lines


def age(since: datetime.datetime | None, now: datetime.datetime) -> str:
    """``since`` as kubectl prints ages (45s, 3m, 2h, 4d); "?" when unknown."""
    if since is None:
        return "?"
    seconds = max(0, int((now - since).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _condition_ok(condition: Condition) -> bool:
    return (condition.status == "True") != (condition.type in ABNORMAL_WHEN_TRUE)


def _conditions(paint: _Painter, conditions: Sequence[Condition]) -> list[str]:
    """One line of Type=Status, then each condition that is not as it should be, with why."""
    if not conditions:
        return ["  Conditions  none yet"]
    summary = "  ".join(
        paint(f"{c.type}={c.status}", GOOD if _condition_ok(c) else BAD if c.status != "Unknown" else UNSURE)
        for c in conditions
    )
    lines = [f"  Conditions  {summary}"]
    lines += [f"    ! {c.type} {c.reason}: {c.message}" for c in conditions if not _condition_ok(c)]
    return lines


def _source(topology: ClusterTopology) -> str:
    spec = topology.spec
    where = {
        "KubernetesAPI": f"Service {spec.service}",
        "KubernetesDNS": f"Service {spec.service}",
        "DNSPoll": f"query {spec.query}",
        "Static": f"{len(spec.hosts)} hosts",
    }[spec.strategy]
    port = spec.probe.distribution_port if spec.probe.type == "erlang" else spec.probe.port
    probe = "no probe" if spec.probe.type == "none" else f"probe {spec.probe.type}"
    probe += f" :{port}" if port else ""
    if spec.connect == "Mesh":
        probe += ", mesh by conclave"
    return f"{spec.strategy} via {where}, {probe}"


def _partition_lines(paint: _Painter, topology: ClusterTopology, now: datetime.datetime) -> list[str]:
    partition = topology.status.partition
    if partition is None:
        return ["  Partition   not observed yet"]
    state = paint(partition.state, STATE_COLOURS[partition.state], bold=True)
    sizes = "+".join(str(len(c)) for c in partition.components)
    count = len(partition.components)
    detail = f"{count} component{'s' if count != 1 else ''}" + (f" ({sizes})" if count > 1 else "")
    majority = f", majority of {len(partition.majority)}" if partition.majority else ", no majority"
    lines = [f"  Partition   {state} for {age(partition.since, now)}: {detail}{majority if count else ''}"]
    lines += [f"    ! missing link {a} - {b}" for a, b in partition.missing_links]
    return lines


def _member_rows(paint: _Painter, topology: ClusterTopology) -> list[str]:
    members = topology.status.members
    if not members:
        return []
    partition = topology.status.partition
    components = partition.components if partition is not None else []
    side = {name: index for index, component in enumerate(components, 1) for name in component}
    majority = set(partition.majority) if partition is not None else set()
    split = len(components) > 1
    rows: list[list[Cell]] = []
    for member in sorted(members, key=lambda m: (side.get(m.name, len(components) + 1), m.name)):
        row: list[Cell] = [
            (member.name, None),
            (member.pod or "-", None),
            (member.node_name or "-", None),
            ("yes", GOOD) if member.ready else ("no", BAD),
        ]
        if split:
            number = side.get(member.name)
            label = "-" if number is None else f"{number}{' majority' if member.name in majority else ''}"
            row.append((label, GOOD if member.name in majority else BAD))
        rows.append(row)
    header = ["MEMBER", "POD", "NODE", "READY", *(["SIDE"] if split else [])]
    return ["", *_table(paint, header, rows)]


def _not_true(conditions: Sequence[Condition]) -> str:
    """The reason of the first condition that is not True, in brackets; "" when all are."""
    reason = next((c.reason for c in conditions if c.status != "True"), "")
    return f" ({reason})" if reason else ""


def _singleton_rows(paint: _Painter, singletons: Sequence[Singleton]) -> list[str]:
    if not singletons:
        return []
    rows: list[list[Cell]] = []
    for singleton in singletons:
        status, spec = singleton.status, singleton.spec
        phase = status.phase or "-"
        why = "" if phase == "Placed" else _not_true(status.conditions)
        rows.append(
            [
                (singleton.metadata.name, None),
                (f"{spec.distribution}/{spec.partition_policy}", None),
                (status.owner or "-", None),
                (status.owner_pod or "-", None),
                ("-" if status.epoch is None else str(status.epoch), None),
                (phase + why, PHASE_COLOURS.get(phase)),
            ]
        )
    header = ["SINGLETON", "POLICY", "OWNER", "POD", "EPOCH", "PHASE"]
    return ["", *_table(paint, header, rows)]


def _group_rows(paint: _Painter, groups: Sequence[ProcessGroup]) -> list[str]:
    if not groups:
        return []
    rows: list[list[Cell]] = []
    for group in groups:
        status, spec = group.status, group.spec
        populated = next((c for c in status.conditions if c.type == "Populated"), None)
        if populated is None:
            state: Cell = ("-", None)
        elif populated.status == "True":
            state = ("True", GOOD)
        else:
            state = (f"{populated.status} ({populated.reason})", BAD)
        rows.append(
            [
                (group.metadata.name, None),
                (f"{spec.scope}/{spec.group}", None),
                ("-" if status.count is None else str(status.count), None),
                (str(spec.min_members), None),
                state,
            ]
        )
    header = ["PROCESS GROUP", "SCOPE/GROUP", "COUNT", "MIN", "POPULATED"]
    return ["", *_table(paint, header, rows)]


def _topology_lines(paint: _Painter, topology: ClusterTopology, now: datetime.datetime) -> list[str]:
    status = topology.status
    if status.member_count is None:
        members = "not discovered yet"
    else:
        ready = status.ready_members or 0
        text = f"{ready}/{status.member_count} ready"
        members = paint(text, GOOD if ready == status.member_count else UNSURE) + (
            paint(" (stale: discovery failing)", BAD) if status.stale else ""
        )
    return [
        f"  {_source(topology)}",
        f"  Members     {members}",
        *_partition_lines(paint, topology, now),
        *_conditions(paint, status.conditions),
        *_member_rows(paint, topology),
    ]


def render(snapshot: Snapshot, now: datetime.datetime, color: bool = False) -> str:
    """The summary as text, one section per topology (and per missing topology that
    singletons or groups name), ordered by namespace and name; ends with a newline."""
    paint = _Painter(color)
    keys = _keys(snapshot)
    if not keys:
        return "No ClusterTopology, Singleton or ProcessGroup found\n"
    topologies = {(t.metadata.namespace, t.metadata.name): t for t in snapshot.topologies}
    sections = []
    for namespace, name in keys:
        topology = topologies.get((namespace, name))
        title = paint(f"ClusterTopology {namespace}/{name}", bold=True)
        lines = [title if topology else f"{title} {paint('not found', BAD)}"]
        if topology is not None:
            lines += _topology_lines(paint, topology, now)
        lines += _singleton_rows(paint, _in(snapshot.singletons, namespace, name, lambda s: s.spec.topology))
        lines += _group_rows(paint, _in(snapshot.groups, namespace, name, lambda g: g.spec.topology))
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"


def _in(items: Sequence[R], namespace: str, topology: str, of: Callable[[R], str]) -> list[R]:
    return [item for item in items if item.metadata.namespace == namespace and of(item) == topology]


def _keys(snapshot: Snapshot) -> list[tuple[str, str]]:
    """(namespace, topology) of every topology, and of every missing one that singletons or
    groups name, in order."""
    keys = {(t.metadata.namespace, t.metadata.name) for t in snapshot.topologies}
    keys |= {(s.metadata.namespace, s.spec.topology) for s in snapshot.singletons}
    keys |= {(g.metadata.namespace, g.spec.topology) for g in snapshot.groups}
    return sorted(keys)


def _status(model: Model) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def document(snapshot: Snapshot) -> dict[str, Any]:
    """The summary as plain data, for JSON or YAML: one entry per topology (found or only
    named), as ``render`` orders them, each with its singletons and process groups; statuses
    are spelt as the API spells them, and a missing topology has ``found: false`` and no
    status."""
    topologies = {(t.metadata.namespace, t.metadata.name): t for t in snapshot.topologies}
    entries = []
    for namespace, name in _keys(snapshot):
        topology = topologies.get((namespace, name))
        entry: dict[str, Any] = {"namespace": namespace, "name": name, "found": topology is not None}
        if topology is not None:
            entry["strategy"] = topology.spec.strategy
            entry["status"] = _status(topology.status)
        entry["singletons"] = [
            {
                "name": s.metadata.name,
                "distribution": s.spec.distribution,
                "partitionPolicy": s.spec.partition_policy,
                "status": _status(s.status),
            }
            for s in _in(snapshot.singletons, namespace, name, lambda s: s.spec.topology)
        ]
        entry["processGroups"] = [
            {
                "name": g.metadata.name,
                "scope": g.spec.scope,
                "group": g.spec.group,
                "minMembers": g.spec.min_members,
                "status": _status(g.status),
            }
            for g in _in(snapshot.groups, namespace, name, lambda g: g.spec.topology)
        ]
        entries.append(entry)
    return {"topologies": entries}

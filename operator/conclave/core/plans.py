"""What the planner asks the applier to do: plain, frozen data that core never executes.

A plan is one ``ObjectPlan`` per object (a topology, a group, a singleton), each applied
on its own and in its own order, so one object's conflict or failure never costs another
object its writes or its events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from conclave.api import kinds
from conclave.api.base import Model
from conclave.core.memory import MeshMemory, Pair, Remembered


@dataclasses.dataclass(frozen=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str
    uid: str


@dataclasses.dataclass(frozen=True)
class StatusUpdate:
    """Make ``target``'s status hold the fields ``desired`` sets, provided the object is
    still at ``resource_version``.

    ``desired`` is the kind's status model; only the fields set on it are written (a field
    set to None is removed), so fields this version does not know are left alone.
    """

    target: ObjectRef
    resource_version: str
    current: Mapping[str, Any]
    """The status exactly as the API holds it."""
    desired: Model


@dataclasses.dataclass(frozen=True)
class EventIntent:
    """A Kubernetes Event about ``regarding``; planned only on transitions, never per tick."""

    regarding: ObjectRef
    type: Literal["Normal", "Warning"]
    reason: str
    action: str
    note: str


@dataclasses.dataclass(frozen=True)
class OwnedObject:
    """Make an object that ``owner`` owns (so the garbage collector removes it with its
    owner) hold ``content``: its top-level fields besides metadata, e.g. ``{"data": ...}``."""

    kind: str
    namespace: str
    name: str
    owner: ObjectRef
    labels: Mapping[str, str]
    content: Mapping[str, Any]
    exists: bool
    annotations: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    """Annotations to set (None: remove); others' annotations are left alone."""
    resource_version: str | None = None
    """When set, the write is a compare-and-swap: it fails with a conflict unless the
    object is still at this version (a singleton's Lease)."""

    @property
    def api_version(self) -> str:
        return kinds.of(self.kind).api_version

    @property
    def collection(self) -> str:
        return kinds.of(self.kind).collection(self.namespace)


@dataclasses.dataclass(frozen=True)
class Removal:
    """Delete an object ``owner`` made and no longer wants, provided it is still ``uid``:
    a same-named object someone made since is left alone."""

    kind: str
    namespace: str
    name: str
    uid: str
    owner: ObjectRef

    @property
    def path(self) -> str:
        return kinds.of(self.kind).path(self.namespace, self.name)


@dataclasses.dataclass(frozen=True)
class PodAnnotations:
    """Set (or, with None, remove) annotations on a pod, provided it is still ``uid``."""

    namespace: str
    name: str
    uid: str
    annotations: Mapping[str, str | None]


@dataclasses.dataclass(frozen=True)
class MetricSample:
    """A gauge to set, a counter to add to or a histogram to observe, by the name it has in
    ``conclave.adapters.metrics``; "declare" only makes the series exist, at zero, so that
    a rate over it is defined from the first event on."""

    metric: str
    labels: Mapping[str, str]
    value: float
    mode: Literal["set", "inc", "observe", "declare"] = "set"


@dataclasses.dataclass(frozen=True)
class ObjectPlan:
    """Everything planned for one object, applied in this order: its owned objects (a
    singleton's Lease is the truth its status only mirrors), its status, what it no
    longer uses, then its pod marks, events and samples — which describe the status, so
    they go out only once it is published."""

    target: ObjectRef
    owned: tuple[OwnedObject, ...] = ()
    status: StatusUpdate | None = None
    removals: tuple[Removal, ...] = ()
    """After the owned writes: a group's new Service exists before its old one goes."""
    pod_annotations: tuple[PodAnnotations, ...] = ()
    events: tuple[EventIntent, ...] = ()
    metrics: tuple[MetricSample, ...] = ()

    @property
    def idle(self) -> bool:
        """Nothing to write, post or record: the object is already as planned."""
        return not (
            self.owned or self.status or self.removals or self.pod_annotations or self.events or self.metrics
        )


@dataclasses.dataclass(frozen=True)
class MeshPlan:
    """What ``connect: Mesh`` asks of the members (over Erlang distribution, not the API)."""

    connects: tuple[Pair, ...] = ()
    """(caller, peer): ask caller to connect peer."""
    disconnects: tuple[Pair, ...] = ()
    """(caller, gone): ask caller to disconnect gone, whose pod is gone."""
    addresses: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """The callers' addresses."""
    memory: MeshMemory = dataclasses.field(default_factory=MeshMemory)
    requeue_after: float | None = None
    """When to look again (seconds): a starting member to probe, or a pair's next attempt."""


@dataclasses.dataclass(frozen=True)
class Plan:
    objects: tuple[ObjectPlan, ...] = ()
    """The topology first, then its groups, then its singletons."""
    pod_annotations: tuple[PodAnnotations, ...] = ()
    """Marks that belong to no object any more (a deleted singleton's), to remove."""
    metrics: tuple[MetricSample, ...] = ()
    """Samples about the topology as a whole (how many singletons are placed, ...)."""
    requeue_after: float | None = None
    """Look again after this many seconds even if nothing happens (a time-based decision)."""
    memory: Remembered = dataclasses.field(default_factory=Remembered)
    """What to remember if every object's writes succeed; the reconciler keeps the
    previous memory of an object whose writes did not."""
    mesh: MeshPlan | None = None
    """With ``connect: Mesh``: the connects and disconnects to ask for."""

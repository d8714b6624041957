"""What the planner asks the applier to do: plain, frozen data that core never executes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from conclave.core.partitions import Debounced

if TYPE_CHECKING:
    from conclave.core.ownership import Memory


@dataclasses.dataclass(frozen=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str
    uid: str


@dataclasses.dataclass(frozen=True)
class StatusUpdate:
    """Make ``target``'s status ``desired``, provided it is still at ``resource_version``."""

    target: ObjectRef
    resource_version: str
    current: Mapping[str, Any]
    desired: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class EventIntent:
    """A Kubernetes Event about ``regarding``; planned only on transitions, never per tick."""

    regarding: ObjectRef
    type: Literal["Normal", "Warning"]
    reason: str
    action: str
    note: str


def collection(api_version: str, namespace: str, plural: str) -> str:
    prefix = "/api" if "/" not in api_version else "/apis"
    return f"{prefix}/{api_version}/namespaces/{namespace}/{plural}"


@dataclasses.dataclass(frozen=True)
class OwnedObject:
    """Make an object that ``owner`` owns (so the garbage collector removes it with its
    owner) hold ``content``: its top-level fields besides metadata, e.g. ``{"data": ...}``."""

    api_version: str
    kind: str
    plural: str
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
    def collection(self) -> str:
        return collection(self.api_version, self.namespace, self.plural)


@dataclasses.dataclass(frozen=True)
class Removal:
    """Delete an object ``owner`` made and no longer wants, provided it is still ``uid``:
    a same-named object someone made since is left alone."""

    api_version: str
    kind: str
    plural: str
    namespace: str
    name: str
    uid: str
    owner: ObjectRef

    @property
    def path(self) -> str:
        return f"{collection(self.api_version, self.namespace, self.plural)}/{self.name}"


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
    ``conclave.adapters.metrics``; "declare" only makes the series exist, at zero, so that a rate
    over it is defined from the first event on."""

    metric: str
    labels: Mapping[str, str]
    value: float
    mode: Literal["set", "inc", "observe", "declare"] = "set"


@dataclasses.dataclass(frozen=True)
class Plan:
    status_updates: tuple[StatusUpdate, ...] = ()
    events: tuple[EventIntent, ...] = ()
    owned: tuple[OwnedObject, ...] = ()
    """Written first: a singleton's Lease is the truth its status only mirrors."""
    removals: tuple[Removal, ...] = ()
    """Carried out after the owned writes: a group's new Service exists before its old goes."""
    pod_annotations: tuple[PodAnnotations, ...] = ()
    metrics: tuple[MetricSample, ...] = ()
    requeue_after: float | None = None
    """Look again after this many seconds even if nothing happens (a time-based decision)."""
    partition_memory: Debounced | None = None
    """The debounce state to hand to the next observation."""
    singleton_memory: Mapping[str, Memory] = dataclasses.field(default_factory=dict)
    """Each singleton's memory (by uid) to hand to the next observation, once applied."""

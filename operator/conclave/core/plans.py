"""What the planner asks the applier to do: plain, frozen data that core never executes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal


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


@dataclasses.dataclass(frozen=True)
class Plan:
    status_updates: tuple[StatusUpdate, ...] = ()
    events: tuple[EventIntent, ...] = ()
    requeue_after: float | None = None
    """Look again after this many seconds even if nothing happens (a time-based decision)."""

"""A singleton's plan: its Lease write, status, pod marks, events and metrics, around
the ownership decision that ``core.lifecycle``'s transition table takes.

The Lease is the truth; the Singleton's status, the owner pod's annotation, events and
metrics all mirror it. The operator writes the Lease only when ownership changes (never
to renew), each write a compare-and-swap on its resourceVersion, and the epoch never
decreases: it continues from the larger of the Lease's and the status's. By the app's rule
(run only while a Lease read that started less than leaseDuration ago named you), a
revoked owner that cannot reach the API stops before the wait is over, so two members
never both run the singleton.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping

from conclave.api import SingletonStatus, times
from conclave.core.conditions import Wanted
from conclave.core.facts import LeaseState, PodFacts
from conclave.core.lifecycle import PLACED, Context, Decision, Holder, LeaseWrite, SingletonFacts, decide
from conclave.core.marks import (
    ANNOTATION_PREFIX,
    LEASE_LABEL,
    OWNER_ANNOTATION,
    OWNER_POD_ANNOTATION,
    OWNER_POD_UID_ANNOTATION,
    REASON_ANNOTATION,
    RELEASED_SUFFIX,
    pod_annotation,
)
from conclave.core.memory import SingletonMemory
from conclave.core.plans import EventIntent, MetricSample, ObjectRef, OwnedObject


@dataclasses.dataclass(frozen=True)
class SingletonPlan:
    status: SingletonStatus
    """The fields this plan decides (owner, ownerPod, epoch, phase, since)."""
    condition: Wanted
    events: list[EventIntent]
    metrics: list[MetricSample]
    lease: OwnedObject | None
    annotations: dict[str, tuple[str, str | None]]
    """Pod name → (annotation key, value to set, None to remove): the owner's mirror."""
    memory: SingletonMemory
    requeue_after: float | None
    holder: str | None
    """Who holds the Lease once the plan is applied: the holder it writes, else the one
    there (the bounded loads count every singleton so, planned or not)."""


def plan(
    singleton: SingletonFacts,
    *,
    owner: ObjectRef,
    context: Context,
    memory: SingletonMemory,
    now: datetime.datetime,
    labels: Mapping[str, str],
) -> SingletonPlan:
    """A singleton's status, Lease write, pod annotations, events and metrics."""
    name, spec, status, lease = owner.name, singleton.spec, singleton.status, singleton.lease
    if lease is not None and lease.controller_uid != owner.uid:
        condition = Wanted(
            PLACED, False, "LeaseConflict", f"Lease {name!r} exists and is not this Singleton's; delete it"
        )
        events = []
        if not any(c.type == PLACED and c.reason == "LeaseConflict" for c in status.conditions):
            events = [EventIntent(owner, "Warning", "LeaseConflict", "Place", condition.message)]
        return SingletonPlan(
            SingletonStatus(phase="Pending"), condition, events, [], None, {}, memory, None, lease.holder
        )
    decision = decide(singleton, context, memory)
    holder = decision.holder
    same = decision.phase == status.phase and (holder.name if holder else None) == status.owner
    decided = SingletonStatus(
        owner=holder.name if holder else None,
        owner_pod=holder.pod if holder else None,
        epoch=decision.epoch,
        phase=decision.phase,
        since=status.since if same and status.since else times.whole_seconds(now),
    )
    events, samples = _transitions(owner, status, decision, context.clock, labels)
    remembered = decision.memory
    published = holder is not None and (holder.name, decision.epoch) == (status.owner, status.epoch)
    if published and remembered.failover_since is not None:  # its failover was timed already
        remembered = dataclasses.replace(remembered, failover_since=None)
    lease_object, lease_holder = None, lease.holder if lease is not None else None
    if decision.write is not None:
        lease_object = _lease_object(owner, lease, decision.write, now)
        lease_holder = decision.write.holder.name if decision.write.holder is not None else None
    return SingletonPlan(
        decided,
        decision.condition,
        events,
        samples,
        lease_object,
        _annotations(name, spec.pod_annotation, holder, decision.epoch, context.pods),
        remembered,
        decision.wait,
        lease_holder,
    )


def _transitions(
    owner: ObjectRef,
    status: SingletonStatus,
    decision: Decision,
    clock: float,
    labels: Mapping[str, str],
) -> tuple[list[EventIntent], list[MetricSample]]:
    """Events and counts from the status transition (what was published → what will be),
    so a plan retried after a conflict reports a change exactly once."""
    events: list[EventIntent] = []
    samples: list[MetricSample] = []
    holder, reason = decision.holder, decision.reason
    if holder is not None and (holder.name != status.owner or decision.epoch != status.epoch):
        note = f"Granted to {holder.name}{_pod(holder)} at epoch {decision.epoch} ({reason})"
        events.append(EventIntent(owner, "Normal", "OwnerGranted", "Grant", note))
        samples.append(
            MetricSample("conclave_singleton_owner_changes", {**labels, "reason": reason}, 1, "inc")
        )
        if decision.failover_since is not None:
            waited = max(0.0, clock - decision.failover_since)
            samples.append(MetricSample("conclave_singleton_failover_seconds", labels, waited, "observe"))
    elif holder is None and status.owner:
        note = f"Revoked from {status.owner} at epoch {decision.epoch} ({reason})"
        events.append(EventIntent(owner, "Normal", "OwnerRevoked", "Revoke", note))
        samples.append(
            MetricSample("conclave_singleton_owner_changes", {**labels, "reason": reason}, 1, "inc")
        )
    if decision.phase == "Fenced" and status.phase != "Fenced":
        note = f"No owner while fenced: {decision.condition.message}"
        events.append(EventIntent(owner, "Warning", "SingletonFenced", "Fence", note))
    return events, samples


def _lease_object(
    owner: ObjectRef, lease: LeaseState | None, write: LeaseWrite, now: datetime.datetime
) -> OwnedObject:
    spec: dict[str, object] = {"holderIdentity": None, "leaseTransitions": write.epoch}
    annotations: dict[str, str | None] = {REASON_ANNOTATION: write.reason}
    if write.holder is not None:
        moment = times.micro_time(now)
        spec |= {
            "holderIdentity": write.holder.name,
            "acquireTime": moment,
            "renewTime": moment,
            "leaseDurationSeconds": write.duration_seconds,
        }
        annotations |= {
            OWNER_ANNOTATION: write.holder.name,
            OWNER_POD_ANNOTATION: write.holder.pod,
            OWNER_POD_UID_ANNOTATION: write.holder.pod_uid,
        }
    if lease is None:
        spec = {key: value for key, value in spec.items() if value is not None}
        annotations = {key: value for key, value in annotations.items() if value is not None}
    return OwnedObject(
        kind="Lease",
        namespace=owner.namespace,
        name=owner.name,
        owner=owner,
        labels={LEASE_LABEL: "Singleton"},
        content={"spec": spec},
        exists=lease is not None,
        annotations=annotations,
        resource_version=lease.resource_version if lease else None,
    )


def _annotations(
    singleton: str, enabled: bool, holder: Holder | None, epoch: int, pods: Mapping[str, PodFacts]
) -> dict[str, tuple[str, str | None]]:
    """Set the annotation on the owner's pod, remove it from every other pod."""
    key = pod_annotation(singleton)
    changes: dict[str, tuple[str, str | None]] = {}
    for pod in pods.values():
        owns = enabled and holder is not None and holder.pod == pod.name and holder.pod_uid in (None, pod.uid)
        wanted = str(epoch) if owns else None
        if pod.annotations.get(key) != wanted:
            changes[pod.name] = (key, wanted)
    return changes


def orphaned(pods: Mapping[str, PodFacts], singletons: frozenset[str]) -> dict[str, list[str]]:
    """Pod name → conclave annotations (ownership or release) of singletons that no longer
    exist in the namespace: deleting a Singleton leaves no owner mark behind."""
    live = {pod_annotation(name) for name in singletons}
    found: dict[str, list[str]] = {}
    for pod in pods.values():
        stale = [
            key
            for key in pod.annotations
            if key.startswith(ANNOTATION_PREFIX) and key.removesuffix(RELEASED_SUFFIX) not in live
        ]
        if stale:
            found[pod.name] = sorted(stale)
    return found


def _pod(holder: Holder) -> str:
    return f" (pod {holder.pod})" if holder.pod else ""

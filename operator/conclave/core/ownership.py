"""Who owns a singleton: the Lease-fenced state machine, decided purely.

The Lease is the truth; the Singleton's status, the owner pod's annotation, events and
metrics all mirror it. The operator writes the Lease only when ownership changes (never
to renew), each write a compare-and-swap on its resourceVersion. The rules (DESIGN.md §2):

- an owner that is *confirmed gone* (its pod object gone, replaced by a pod with another
  uid, or Succeeded/Failed) or that *released* (its pod annotated
  ``conclave.dev/singleton.<name>.released: "<epoch>"``) is replaced at once, epoch + 1;
- any other owner that must move is *revoked* first (holderIdentity cleared, the epoch
  kept), and the next owner is granted only once the lease duration has passed since the
  operator saw the revocation committed, by its own monotonic clock; after a restart
  that wait starts afresh, because the clock reading is kept only in memory;
- the epoch never decreases: it continues from the larger of the Lease's and the status's.

By the app's rule (run only while a Lease read that started less than leaseDuration ago
named you), a revoked owner that cannot reach the API stops before the wait is over, so
two members never both run the singleton.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
from collections.abc import Mapping
from typing import Literal

from conclave.api import Singleton, SingletonSpec, SingletonStatus, durations
from conclave.core.conditions import Wanted
from conclave.core.grouping import PodFacts
from conclave.core.partitions import Verdict
from conclave.core.placement import Candidate, choose, eligible, keep_reason
from conclave.core.plans import EventIntent, MetricSample, ObjectRef, OwnedObject

PLACED = "Placed"
LEASE_LABEL = "conclave.dev/lease-of"
"""On every Lease conclave writes for a singleton; the operator watches only those."""
OWNER_ANNOTATION = "conclave.dev/owner"
OWNER_POD_ANNOTATION = "conclave.dev/owner-pod"
OWNER_POD_UID_ANNOTATION = "conclave.dev/owner-pod-uid"
REASON_ANNOTATION = "conclave.dev/reason"
ANNOTATION_PREFIX = "conclave.dev/singleton."
MAX_ANNOTATION_NAME = 63
RELEASED_SUFFIX = ".released"
GONE_PHASES = ("Succeeded", "Failed")

Phase = Literal["Pending", "Placed", "Moving", "Fenced"]


def pod_annotation(singleton: str) -> str:
    """``conclave.dev/singleton.<name>``; a name too long for an annotation key (63
    characters, with room for ``.released``) is cut and given a hash of the whole."""
    stem = f"singleton.{singleton}"
    if len(stem) + len(RELEASED_SUFFIX) > MAX_ANNOTATION_NAME:
        digest = hashlib.sha256(singleton.encode()).hexdigest()[:8]
        room = MAX_ANNOTATION_NAME - len(RELEASED_SUFFIX) - len("singleton.") - len(digest) - 1
        stem = f"singleton.{singleton[:room].rstrip('.-')}-{digest}"
    return f"conclave.dev/{stem}"


def released_annotation(singleton: str) -> str:
    return pod_annotation(singleton) + RELEASED_SUFFIX


@dataclasses.dataclass(frozen=True)
class LeaseState:
    """A singleton's Lease as observed."""

    resource_version: str
    controller_uid: str | None
    holder: str | None
    epoch: int
    duration_seconds: int | None
    last_owner: str | None = None
    """The member granted last (kept through a revocation, so its pod can be checked)."""
    last_owner_pod: str | None = None
    last_owner_pod_uid: str | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class Holder:
    name: str
    pod: str | None
    pod_uid: str | None


UNKNOWN_OWNER = Holder("", None, None)
"""A previous owner nobody can name (its Lease deleted while revoked): it must expire."""


def _prior(lease: LeaseState | None, status: SingletonStatus) -> Holder | None:
    """Who held the singleton last: the Lease says, else (it was deleted) the status."""
    if lease is not None and lease.last_owner:
        return Holder(lease.last_owner, lease.last_owner_pod, lease.last_owner_pod_uid)
    if lease is None and status.owner:
        return Holder(status.owner, status.owner_pod, None)
    if lease is None and status.epoch:
        return UNKNOWN_OWNER
    return None


@dataclasses.dataclass(frozen=True)
class Memory:
    """What one operator process remembers between iterations, by its monotonic clock."""

    ineligible_since: float | None = None
    """When the current (or last) owner was first seen unable to keep the singleton."""
    revoked_epoch: int | None = None
    revoked_seen_at: float | None = None
    """When the revocation of ``revoked_epoch`` was seen committed; None right after this
    process wrote it: the reconciler stamps it once the write has returned."""

    def stamped(self, clock: float) -> Memory:
        if self.revoked_epoch is not None and self.revoked_seen_at is None:
            return dataclasses.replace(self, revoked_seen_at=clock)
        return self


@dataclasses.dataclass(frozen=True)
class LeaseWrite:
    """Make the Lease name ``holder`` (None: revoke) at ``epoch``, for ``reason``."""

    holder: Holder | None
    epoch: int
    reason: str
    duration_seconds: int


@dataclasses.dataclass(frozen=True)
class Decision:
    write: LeaseWrite | None
    holder: Holder | None
    """The owner once ``write`` is applied (None: nobody may run it)."""
    epoch: int
    phase: Phase
    condition: Wanted
    reason: str
    """Why ownership is what it is (the Lease's reason annotation once written)."""
    memory: Memory
    wait: float | None = None
    """Seconds until a pending grant may happen (look again then)."""
    failover_since: float | None = None
    """For a grant that replaces an owner: when that owner was first seen unable to keep it."""


def duration_seconds(spec: SingletonSpec) -> int:
    return math.ceil(durations.parse(spec.lease_duration).total_seconds())


def _gone_or_released(prior: Holder, epoch: int, singleton: str, pods: Mapping[str, PodFacts]) -> str | None:
    """ "OwnerGone" or "Released" when the prior owner can run it no more, else None.

    Without a pod (Static members) nothing can be confirmed, so the lease must expire.
    """
    if prior.pod is None:
        return None
    pod = pods.get(prior.pod)
    if pod is None or (prior.pod_uid is not None and pod.uid != prior.pod_uid) or pod.phase in GONE_PHASES:
        return "OwnerGone"
    if pod.annotations.get(released_annotation(singleton)) == str(epoch):
        return "Released"
    return None


def _holder_of(name: str, candidates: Mapping[str, Candidate]) -> Holder:
    candidate = candidates[name]
    return Holder(name, candidate.pod, candidate.pod_uid)


def decide(
    singleton: str,
    identity: str,
    spec: SingletonSpec,
    status: SingletonStatus,
    lease: LeaseState | None,
    candidates: Mapping[str, Candidate],
    pods: Mapping[str, PodFacts],
    verdict: Verdict,
    memory: Memory,
    clock: float,
) -> Decision:
    """One singleton's ownership for this iteration. ``identity`` seeds the hash
    (namespace/name); ``candidates`` are the topology's members, by node name."""
    epoch = max(lease.epoch if lease else 0, status.epoch or 0)
    duration = max(duration_seconds(spec), (lease.duration_seconds or 0) if lease else 0)
    options = eligible(spec, list(candidates.values()), verdict)
    prior = _prior(lease, status)
    holder_name = lease.holder if lease else None
    # when the current (or revoked) owner was first seen unable to keep it: now, if not before
    since = memory.ineligible_since if memory.ineligible_since is not None else clock

    def choice() -> str | None:
        if spec.rebalance == "Passive" and prior is not None and prior.name in options.members:
            return prior.name  # sticky: the last owner may have it back at once
        return choose(identity, options.members)

    def grant(name: str, reason: str, since: float | None = None) -> Decision:
        holder = _holder_of(name, candidates)
        message = f"Owned by {name}{_pod(holder)} at epoch {epoch + 1}"
        return Decision(
            LeaseWrite(holder, epoch + 1, reason, duration_seconds(spec)),
            holder,
            epoch + 1,
            "Placed",
            Wanted(PLACED, True, reason, message),
            reason,
            Memory(),
            failover_since=since,
        )

    def unowned(write: LeaseWrite | None, reason: str, since: float | None) -> Decision:
        """No owner now: Fenced or Pending, by what eligibility says."""
        phase: Phase = "Fenced" if options.fenced else "Pending"
        condition = Wanted(PLACED, False, options.reason, options.message)
        return Decision(write, None, epoch, phase, condition, reason, Memory(since, *_revoked(write, memory)))

    if holder_name is not None:
        assert prior is not None
        assert lease is not None
        holder = candidates.get(holder_name)
        if holder is None and prior.pod is not None and pods.get(prior.pod, None) is not None:
            pod = pods[prior.pod]
            holder = Candidate(holder_name, pod.name, pod.uid, pod.labels, False, pod.deleting)
        freed = _gone_or_released(prior, epoch, singleton, pods)
        if freed is not None:
            chosen = choose(identity, options.members)
            if chosen is not None:
                return grant(chosen, freed, since)
            return unowned(LeaseWrite(None, epoch, freed, duration), freed, since)
        leaving = keep_reason(spec, holder, verdict)
        if leaving is None:
            chosen = choose(identity, options.members)
            if spec.rebalance == "Active" and chosen is not None and chosen != holder_name:
                leaving = "Rebalance"
            else:
                kept = Holder(holder_name, prior.pod, prior.pod_uid)
                message = f"Owned by {holder_name}{_pod(kept)} at epoch {epoch}"
                return Decision(
                    None, kept, epoch, "Placed", Wanted(PLACED, True, lease.reason or PLACED, message),
                    lease.reason or PLACED, Memory(),
                )  # fmt: skip
        write = LeaseWrite(None, epoch, leaving, duration)
        if options.members:
            return _moving(write, leaving, prior, epoch, duration, Memory(since, epoch, None))
        return unowned(write, leaving, since)

    chosen = choice()
    if prior is None:
        if chosen is None:
            return unowned(None, options.reason, None)
        return grant(chosen, PLACED)
    freed = _gone_or_released(prior, epoch, singleton, pods)
    if chosen is None:
        return unowned(None, freed or (lease.reason if lease and lease.reason else options.reason), since)
    if freed is not None:
        return grant(chosen, freed, since)
    if chosen == prior.name and (prior.pod_uid is None or candidates[chosen].pod_uid == prior.pod_uid):
        return grant(chosen, "Reinstated", since)  # the revoked owner itself: nobody else can run it
    seen = memory.revoked_seen_at if memory.revoked_epoch == epoch else None
    seen = clock if seen is None else seen
    remaining = duration - (clock - seen)
    if remaining <= 0:
        return grant(chosen, "LeaseExpired", since)
    reason = lease.reason if lease and lease.reason else "Revoked"
    return _moving(None, reason, prior, epoch, duration, Memory(since, epoch, seen), remaining)


def _revoked(write: LeaseWrite | None, memory: Memory) -> tuple[int | None, float | None]:
    """The revocation to remember: one written now (stamped after the write), else the old."""
    if write is not None:
        return write.epoch, None
    return memory.revoked_epoch, memory.revoked_seen_at


def _moving(
    write: LeaseWrite | None,
    reason: str,
    prior: Holder,
    epoch: int,
    duration: int,
    memory: Memory,
    remaining: float | None = None,
) -> Decision:
    message = (
        f"Revoked from {prior.name or 'an owner whose Lease was deleted'}{_pod(prior)} at epoch {epoch} "
        f"({reason}); the next owner is "
        f"granted when it releases, is gone, or its {duration}s lease has expired"
    )
    wait = float(duration) if remaining is None else remaining
    return Decision(
        write, None, epoch, "Moving", Wanted(PLACED, False, "Moving", message), reason, memory, wait
    )


def _pod(holder: Holder) -> str:
    return f" (pod {holder.pod})" if holder.pod else ""


@dataclasses.dataclass(frozen=True)
class SingletonPlan:
    fields: dict[str, object]
    condition: Wanted
    events: list[EventIntent]
    metrics: list[MetricSample]
    lease: OwnedObject | None
    annotations: dict[str, tuple[str, str | None]]
    """Pod name → (annotation key, value to set, None to remove): the owner's mirror."""
    memory: Memory
    requeue_after: float | None


def plan(
    singleton: Singleton,
    owner: ObjectRef,
    lease: LeaseState | None,
    candidates: Mapping[str, Candidate],
    pods: Mapping[str, PodFacts],
    verdict: Verdict,
    memory: Memory,
    clock: float,
    now: datetime.datetime,
    labels: Mapping[str, str],
) -> SingletonPlan:
    """A singleton's status, Lease write, pod annotations, events and metrics."""
    name, spec, status = owner.name, singleton.spec, singleton.status
    if lease is not None and lease.controller_uid != owner.uid:
        condition = Wanted(
            PLACED, False, "LeaseConflict", f"Lease {name!r} exists and is not this Singleton's; delete it"
        )
        events = []
        if not any(c.type == PLACED and c.reason == "LeaseConflict" for c in status.conditions):
            events = [EventIntent(owner, "Warning", "LeaseConflict", "Place", condition.message)]
        return SingletonPlan({"phase": "Pending"}, condition, events, [], None, {}, memory, None)
    decision = decide(
        name, f"{owner.namespace}/{name}", spec, status, lease, candidates, pods, verdict, memory, clock
    )
    holder = decision.holder
    same = decision.phase == status.phase and (holder.name if holder else None) == status.owner
    fields: dict[str, object] = {
        "owner": holder.name if holder else None,
        "ownerPod": holder.pod if holder else None,
        "epoch": decision.epoch,
        "phase": decision.phase,
        "since": _time(status.since) if same and status.since else _time(now),
    }
    events, samples = _transitions(owner, status, decision, clock, labels)
    lease_object = None
    if decision.write is not None:
        lease_object = _lease_object(owner, lease, decision.write, now)
    return SingletonPlan(
        fields,
        decision.condition,
        events,
        samples,
        lease_object,
        _annotations(name, spec.pod_annotation, holder, decision.epoch, pods),
        decision.memory,
        decision.wait,
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
        moment = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # MicroTime: exactly six digits
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
        api_version="coordination.k8s.io/v1",
        kind="Lease",
        plural="leases",
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


def _time(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

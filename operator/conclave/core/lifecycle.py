"""A Singleton's ownership lifecycle as one transition table, decided purely.

Like h11's ``_state.py`` keeps all of HTTP's transitions in one place, ``TABLE`` keeps
every move a singleton's ownership can make. The state comes from the Lease:

- Unclaimed: nobody holds it and nobody held it before (no prior owner to wait for);
- Held: the Lease names a holder;
- Revoked: nobody holds it, but a prior owner may still be running it.

In each state the rules are tried in order; the first whose guards all hold decides the
action and the reason (reasons are data: a fixed word, or the first fact that has one).
The facts the guards read are computed once, in ``_facts``. The safety rules
(DESIGN.md §2): a prior owner that is confirmed gone or released is replaced at once,
epoch + 1; any other is revoked first, and the next owner is granted only once the lease
duration has passed since this process saw the revocation committed, by its own clock.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Literal

from conclave.api import SingletonSpec, SingletonStatus, durations
from conclave.core.conditions import Wanted
from conclave.core.facts import LeaseState, PodFacts
from conclave.core.marks import released_annotation
from conclave.core.memory import SingletonMemory
from conclave.core.partitions import Verdict
from conclave.core.placement import (
    Candidate,
    Eligibility,
    bounded,
    capacity,
    choose,
    eligible,
    keep_reason,
)

PLACED = "Placed"
GONE_PHASES = ("Succeeded", "Failed")

Phase = Literal["Pending", "Placed", "Moving", "Fenced"]
State = Literal["Unclaimed", "Held", "Revoked"]


class Guard(enum.Enum):
    ELIGIBLE = "someone may be granted it now"
    NONE_ELIGIBLE = "nobody may be granted it now"
    FREED = "the prior owner is confirmed gone or released"
    LEAVING = "the holder must give it up"
    CHOICE_IS_PRIOR = "the choice is the revoked owner itself"
    EXPIRED = "the lease has run out since the revocation was seen"


class Action(enum.Enum):
    GRANT = "write a new holder, epoch + 1"
    KEEP = "leave the holder as it is"
    REVOKE = "clear the holder, keep the epoch"
    WAIT = "write nothing; grant once the lease has run out"
    UNOWNED = "write nothing; nobody may own it"


class Fact(enum.Enum):
    """A reason taken from the facts, not a fixed word."""

    FREED = "why the prior owner is free: OwnerGone or Released"
    LEAVING = "why the holder must leave: NotReady, Terminating, Left, MinorityFenced, ..."
    LEASE = "the reason the Lease records"
    ELIGIBILITY = "why nobody (or who) is eligible"


class Pick(enum.Enum):
    HASHED = "the rendezvous hash's choice among the eligible, passing over the full (bounded loads)"
    STICKY = "the prior owner when it is eligible again (Passive), else the hash's choice"


@dataclasses.dataclass(frozen=True)
class Rule:
    when: tuple[Guard, ...]
    """Every guard must hold; empty: always."""
    then: Action
    reason: tuple[str | Fact, ...]
    """The first fact that is known, or a fixed word."""
    pick: Pick = Pick.STICKY
    """Whom a GRANT goes to."""


TABLE: Mapping[State, tuple[Rule, ...]] = {
    "Unclaimed": (
        Rule((Guard.ELIGIBLE,), Action.GRANT, (PLACED,)),
        Rule((), Action.UNOWNED, (Fact.ELIGIBILITY,)),
    ),
    "Held": (
        Rule((Guard.FREED, Guard.ELIGIBLE), Action.GRANT, (Fact.FREED,), Pick.HASHED),
        Rule((Guard.FREED,), Action.REVOKE, (Fact.FREED,)),
        Rule((Guard.LEAVING,), Action.REVOKE, (Fact.LEAVING,)),
        Rule((), Action.KEEP, (Fact.LEASE, PLACED)),
    ),
    "Revoked": (
        Rule((Guard.NONE_ELIGIBLE,), Action.UNOWNED, (Fact.FREED, Fact.LEASE, Fact.ELIGIBILITY)),
        Rule((Guard.FREED,), Action.GRANT, (Fact.FREED,)),
        Rule((Guard.CHOICE_IS_PRIOR,), Action.GRANT, ("Reinstated",)),  # nobody else can run it
        Rule((Guard.EXPIRED,), Action.GRANT, ("LeaseExpired",)),
        Rule((), Action.WAIT, (Fact.LEASE, "Revoked")),
    ),
}


@dataclasses.dataclass(frozen=True)
class Holder:
    name: str
    pod: str | None
    pod_uid: str | None


UNKNOWN_OWNER = Holder("", None, None)
"""A previous owner nobody can name (its Lease deleted while revoked): it must expire."""


@dataclasses.dataclass(frozen=True)
class SingletonFacts:
    """One singleton as observed: its identity, desired behaviour, status and Lease."""

    name: str
    identity: str
    """What seeds its hash: ``namespace/name``."""
    spec: SingletonSpec
    status: SingletonStatus
    lease: LeaseState | None


@dataclasses.dataclass(frozen=True)
class Context:
    """What every singleton of a topology is decided against in one iteration."""

    candidates: Mapping[str, Candidate]
    """The topology's members, by node name."""
    pods: Mapping[str, PodFacts]
    verdict: Verdict
    clock: float
    """The operator's monotonic clock now."""
    loads: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """How many of the topology's balanced (Uniform, UniformQuorum) singletons each member
    holds, with the decisions taken before this one in the same plan."""
    balanced: int = 0
    """How many balanced singletons the topology has (0: no bound, plain rendezvous)."""
    eligibility: dict[tuple[object, ...], Eligibility] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )
    """``eligible`` by the spec fields it reads, worked out once per plan (the candidates
    and the verdict are the same for every singleton of it)."""

    def eligible(self, spec: SingletonSpec) -> Eligibility:
        pin = spec.pin_to.model_dump_json() if spec.distribution == "Pinned" and spec.pin_to else None
        key = (spec.distribution, spec.partition_policy, pin)
        if key not in self.eligibility:
            self.eligibility[key] = eligible(spec, list(self.candidates.values()), self.verdict)
        return self.eligibility[key]


def balanced(spec: SingletonSpec) -> bool:
    """Whether a singleton counts for, and is placed by, bounded loads."""
    return spec.distribution != "Pinned"


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
    memory: SingletonMemory
    wait: float | None = None
    """Seconds until a pending grant may happen (look again then)."""
    failover_since: float | None = None
    """For a grant that replaced an owner (now, or in an iteration whose status was not
    published): when that owner was first seen unable to keep it."""


def duration_seconds(spec: SingletonSpec) -> int:
    return math.ceil(durations.parse(spec.lease_duration).total_seconds())


@dataclasses.dataclass(frozen=True)
class _Facts:
    """What the guards and reasons read, computed once per decision."""

    state: State
    epoch: int
    duration: int
    """The longest lease anyone may still hold: the spec's, or the Lease's if longer."""
    grant_duration: int
    """The lease a new grant is given: the spec's."""
    options: Eligibility
    prior: Holder | None
    holder: str | None
    freed: str | None
    leaving: str | None
    hashed: str | None
    sticky: str | None
    since: float
    """When the owner was first seen unable to keep it: now, if not before."""
    seen: float
    """When the revocation at ``epoch`` was seen committed: now, if not before."""
    remaining: float
    lease_reason: str | None

    def holds(self, guard: Guard, context: Context) -> bool:
        if guard is Guard.ELIGIBLE:
            return bool(self.options.members)
        if guard is Guard.NONE_ELIGIBLE:
            return not self.options.members
        if guard is Guard.FREED:
            return self.freed is not None
        if guard is Guard.LEAVING:
            return self.leaving is not None
        if guard is Guard.EXPIRED:
            return self.remaining <= 0
        assert guard is Guard.CHOICE_IS_PRIOR
        prior, chosen = self.prior, self.sticky
        return (
            prior is not None
            and chosen == prior.name
            and (prior.pod_uid is None or context.candidates[chosen].pod_uid == prior.pod_uid)
        )

    def reason(self, rule: Rule) -> str:
        by_fact = {
            Fact.FREED: self.freed,
            Fact.LEAVING: self.leaving,
            Fact.LEASE: self.lease_reason,
            Fact.ELIGIBILITY: self.options.reason,
        }
        for item in rule.reason:
            value = by_fact[item] if isinstance(item, Fact) else item
            if value:
                return value
        raise AssertionError(f"rule {rule} has no reason")


def decide(singleton: SingletonFacts, context: Context, memory: SingletonMemory) -> Decision:
    """One singleton's ownership for this iteration: the first rule of its state that holds."""
    facts = _facts(singleton, context, memory)
    rule = next(r for r in TABLE[facts.state] if all(facts.holds(guard, context) for guard in r.when))
    return _act(rule, facts, context, memory)


def _facts(singleton: SingletonFacts, context: Context, memory: SingletonMemory) -> _Facts:
    spec, status, lease = singleton.spec, singleton.status, singleton.lease
    epoch = max(lease.epoch if lease else 0, status.epoch or 0)
    options = context.eligible(spec)
    prior = _prior(lease, status)
    holder_name = lease.holder if lease else None
    hashed = _hashed(singleton, context, options, holder_name)
    passive = spec.rebalance == "Passive" and prior is not None and prior.name in options.members
    leaving = None
    if holder_name is not None:
        holder = context.candidates.get(holder_name)
        if holder is None and prior is not None and prior.pod is not None and prior.pod in context.pods:
            pod = context.pods[prior.pod]
            holder = Candidate(holder_name, pod.name, pod.uid, pod.labels, False, pod.deleting)
        leaving = keep_reason(spec, holder, context.verdict)
        if leaving is None and spec.rebalance == "Active" and hashed not in (None, holder_name):
            leaving = "Rebalance"
    seen = memory.revoked_seen_at if memory.revoked_epoch == epoch else None
    seen = context.clock if seen is None else seen
    duration = max(duration_seconds(spec), (lease.duration_seconds or 0) if lease else 0)
    return _Facts(
        state="Held" if holder_name is not None else "Unclaimed" if prior is None else "Revoked",
        epoch=epoch,
        duration=duration,
        grant_duration=duration_seconds(spec),
        options=options,
        prior=prior,
        holder=holder_name,
        freed=_gone_or_released(prior, epoch, singleton.name, context.pods) if prior else None,
        leaving=leaving,
        hashed=hashed,
        sticky=prior.name if passive and prior is not None else hashed,
        since=memory.ineligible_since if memory.ineligible_since is not None else context.clock,
        seen=seen,
        remaining=duration - (context.clock - seen),
        lease_reason=lease.reason if lease else None,
    )


def _hashed(
    singleton: SingletonFacts, context: Context, options: Eligibility, holder: str | None
) -> str | None:
    """The rendezvous choice among the eligible; for a balanced singleton, the first in its
    rendezvous order that holds fewer than the capacity its loadFactor allows (its own
    holding not counted, so a holder within the bound is its own choice when first)."""
    if not balanced(singleton.spec) or not context.balanced:
        return choose(singleton.identity, options.members)
    limit = capacity(context.balanced, len(options.members), singleton.spec.load_factor)
    loads = {member: context.loads.get(member, 0) - (member == holder) for member in options.members}
    return bounded(singleton.identity, options.members, loads, limit)


def _act(rule: Rule, facts: _Facts, context: Context, memory: SingletonMemory) -> Decision:
    reason, epoch, options = facts.reason(rule), facts.epoch, facts.options
    if rule.then is Action.GRANT:
        name = facts.hashed if rule.pick is Pick.HASHED else facts.sticky
        assert name is not None
        candidate = context.candidates[name]
        holder = Holder(name, candidate.pod, candidate.pod_uid)
        failover = None if facts.state == "Unclaimed" else facts.since
        message = f"Owned by {name}{_pod(holder)} at epoch {epoch + 1}"
        return Decision(
            write=LeaseWrite(holder, epoch + 1, reason, facts.grant_duration),
            holder=holder,
            epoch=epoch + 1,
            phase="Placed",
            condition=Wanted(PLACED, True, reason, message),
            reason=reason,
            memory=SingletonMemory(failover_since=failover),
            failover_since=failover,
        )
    if rule.then is Action.KEEP:
        assert facts.holder is not None
        assert facts.prior is not None
        kept = Holder(facts.holder, facts.prior.pod, facts.prior.pod_uid)
        message = f"Owned by {facts.holder}{_pod(kept)} at epoch {epoch}"
        condition = Wanted(PLACED, True, reason, message)
        pending = SingletonMemory(failover_since=memory.failover_since)  # until its grant is published
        return Decision(None, kept, epoch, "Placed", condition, reason, pending, None, memory.failover_since)
    since = None if facts.state == "Unclaimed" else facts.since
    write = LeaseWrite(None, epoch, reason, facts.duration) if rule.then is Action.REVOKE else None
    prior = facts.prior or UNKNOWN_OWNER
    if rule.then is Action.WAIT:
        return _moving(None, reason, prior, facts, SingletonMemory(since, epoch, facts.seen), facts.remaining)
    if write is not None and options.members:
        return _moving(write, reason, prior, facts, SingletonMemory(since, epoch, None), None)
    phase: Phase = "Fenced" if options.fenced else "Pending"
    revoked = (write.epoch, None) if write is not None else (memory.revoked_epoch, memory.revoked_seen_at)
    return Decision(
        write,
        None,
        epoch,
        phase,
        Wanted(PLACED, False, options.reason, options.message),
        reason,
        SingletonMemory(since, *revoked),
    )


def _moving(
    write: LeaseWrite | None,
    reason: str,
    prior: Holder,
    facts: _Facts,
    memory: SingletonMemory,
    remaining: float | None,
) -> Decision:
    message = (
        f"Revoked from {prior.name or 'an owner whose Lease was deleted'}{_pod(prior)} at epoch "
        f"{facts.epoch} ({reason}); the next owner is "
        f"granted when it releases, is gone, or its {facts.duration}s lease has expired"
    )
    wait = float(facts.duration) if remaining is None else remaining
    condition = Wanted(PLACED, False, "Moving", message)
    return Decision(write, None, facts.epoch, "Moving", condition, reason, memory, wait)


def _prior(lease: LeaseState | None, status: SingletonStatus) -> Holder | None:
    """Who held the singleton last: the Lease says, else (it was deleted) the status."""
    if lease is not None and lease.last_owner:
        return Holder(lease.last_owner, lease.last_owner_pod, lease.last_owner_pod_uid)
    if lease is not None and lease.holder:  # a holder without conclave's annotations
        return Holder(lease.holder, None, None)
    if lease is None and status.owner:
        return Holder(status.owner, status.owner_pod, None)
    if lease is None and status.epoch:
        return UNKNOWN_OWNER
    return None


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


def _pod(holder: Holder) -> str:
    return f" (pod {holder.pod})" if holder.pod else ""

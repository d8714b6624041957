"""Where a singleton may run, and where it should: eligibility and rendezvous hashing.

Horde's UniformDistribution puts each member on a consistent-hash ring with 128 virtual
points; a join or a leave moves about 1/N of the children, but the load is only as even
as 128 random arcs make it. Rendezvous (highest-random-weight) hashing gives every
(singleton, member) pair a weight and picks the heaviest member: a leave moves exactly
the departed member's singletons, a join takes exactly the ones the newcomer now
outweighs (1/(N+1) of them in expectation), and the load is as even as N independent
draws, with no virtual nodes at all.

As even as N independent draws is still uneven: at 10,000 singletons on 20 members the
busiest member holds about 1.11 * the mean. Bounded loads (consistent hashing with bounded
loads, Mirrokni, Thorup and Zadimoghaddam 2017) keep the rendezvous order but pass over a
member that already holds its ``capacity``: the first member, in the singleton's own
rendezvous order, with room is chosen. conclave's capacity is ⌊c * mean⌋ (never below
⌈mean⌉, so there is always room), not the paper's ⌈c * mean⌉: so max/mean ≤ c holds
exactly, where the room exists. The load is counted over the topology's balanced
(Uniform and UniformQuorum) singletons, by the members their Leases name.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence

from conclave.api import Member, SingletonSpec
from conclave.core.facts import PodFacts
from conclave.core.partitions import Verdict

SPLIT_STATES = ("Partitioned", "Degraded")


def weight(identity: str, member: str) -> int:
    """A stable 64-bit weight: the same on every replica and across restarts (not hash())."""
    digest = hashlib.blake2b(f"{identity}\0{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def choose(identity: str, members: Iterable[str]) -> str | None:
    """The heaviest member for ``identity``; the name breaks a (vanishingly rare) tie."""
    return max(members, key=lambda member: (weight(identity, member), member), default=None)


@functools.lru_cache(maxsize=1 << 16)
def ranked(identity: str, members: tuple[str, ...]) -> tuple[str, ...]:
    """``members`` heaviest first for ``identity`` (``choose``'s order). Kept for the
    latest 65,536 singletons and member sets: a plan asks it of every singleton, and
    the answer changes only when the members do."""
    return tuple(sorted(members, key=lambda member: (weight(identity, member), member), reverse=True))


def capacity(singletons: int, members: int, factor: float) -> int:
    """How many balanced singletons one member may hold: ⌊factor * mean⌋, at least ⌈mean⌉."""
    if members <= 0:
        return 0
    mean = singletons / members
    return max(math.ceil(mean), math.floor(factor * mean + 1e-9))


def bounded(identity: str, members: Iterable[str], loads: Mapping[str, int], limit: int) -> str | None:
    """The heaviest member for ``identity`` among those holding fewer than ``limit``
    (``loads`` counts what each holds, not counting ``identity`` itself); when every one
    is full (eligibility differs between singletons), the heaviest of all, as ``choose``."""
    order = ranked(identity, tuple(members))
    return next((member for member in order if loads.get(member, 0) < limit), order[0] if order else None)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A topology member as placement sees it: may it run a singleton right now?"""

    name: str
    pod: str | None
    pod_uid: str | None
    labels: Mapping[str, str]
    ready: bool
    """Ready and not terminating: a terminating pod is leaving, whatever its readiness."""
    terminating: bool = False
    down: bool = False
    """Its node refused the probe (crashed, not cut off): it can run nothing, under any policy."""


def candidates(
    members: Iterable[Member], pods: Mapping[str, PodFacts], down: Iterable[str] = ()
) -> dict[str, Candidate]:
    """Every member, by name; ready only if its pod is Ready right now (whatever
    memberReadiness says: an owner must be serving) and not terminating. ``down``: the
    members the published partition verdict lists as down.

    A member is not ready either while the pod the watches show is not yet its own (no pod
    by that name yet, or a predecessor's at another IP): an owner is granted with its pod's
    uid, and under a wrong one it would look gone, and be replaced at once, while it runs.
    """
    found = {}
    crashed = set(down)
    for member in members:
        pod = pods.get(member.pod) if member.pod else None
        serving = pod is not None and pod.ready and (member.ip is None or pod.ip == member.ip)
        found[member.name] = Candidate(
            name=member.name,
            pod=member.pod,
            pod_uid=pod.uid if pod else None,
            labels=pod.labels if pod else {},
            ready=member.ready and (serving if member.pod else True),
            terminating=bool(pod and pod.deleting),
            down=member.name in crashed,
        )
    return found


@dataclasses.dataclass(frozen=True)
class Eligibility:
    members: tuple[str, ...]
    """Who may be granted the singleton now, sorted."""
    fenced: bool
    """True when members were ready but the partition rules left none of them."""
    reason: str
    message: str


def _pinned(spec: SingletonSpec, candidate: Candidate) -> bool:
    pin = spec.pin_to
    if spec.distribution != "Pinned" or pin is None:
        return True
    if pin.member is not None:
        return candidate.name == pin.member
    return pin.selector is not None and candidate.pod is not None and pin.selector.matches(candidate.labels)


def eligible(spec: SingletonSpec, candidates: Sequence[Candidate], verdict: Verdict) -> Eligibility:
    """The members a new owner may be chosen from.

    Fence keeps grants on the majority side of a split; UniformQuorum grants only inside
    a known majority (a topology without member views never has one).
    """
    ready = sorted(
        c.name for c in candidates if c.ready and not c.terminating and not c.down and _pinned(spec, c)
    )
    if not ready:
        if spec.distribution == "Pinned":
            return Eligibility((), False, "PinnedMemberUnavailable", "No ready member matches spec.pinTo")
        return Eligibility((), False, "NoReadyMember", "The topology has no ready member")
    majority = set(verdict.majority)
    if spec.distribution == "UniformQuorum":
        if verdict.state == "Unknown":
            return Eligibility(
                (), True, "QuorumUnknown", "UniformQuorum needs member views to know the majority"
            )
        if not majority:
            return Eligibility((), True, "NoMajority", "No component of the topology holds a majority")
        ready = [name for name in ready if name in majority]
    elif spec.partition_policy == "Fence" and verdict.state in SPLIT_STATES:
        if not majority:
            return Eligibility((), True, "NoMajority", "The topology is split and no side holds a majority")
        ready = [name for name in ready if name in majority]
    if not ready:
        return Eligibility((), True, "NoReadyMajorityMember", "No ready member is on the majority side")
    return Eligibility(tuple(ready), False, "Eligible", f"{len(ready)} eligible members")


def keep_reason(spec: SingletonSpec, holder: Candidate | None, verdict: Verdict) -> str | None:
    """Why the current holder must give the singleton up, or None while it may keep it.

    Continue keeps an owner on whichever side of a split it is; Fence revokes an owner
    outside the majority, including when there is no majority at all. An owner that is
    down (its node refused the probe) is revoked under either.
    """
    if holder is None:
        return "Left"
    if holder.terminating:
        return "Terminating"
    if holder.down:
        return "MemberDown"  # under Continue too: a crashed node runs nothing
    if not holder.ready:
        return "NotReady"
    if not _pinned(spec, holder):
        return "Unpinned"
    if (
        spec.partition_policy == "Fence"
        and verdict.state in SPLIT_STATES
        and holder.name not in verdict.majority
    ):
        return "MinorityFenced"
    return None

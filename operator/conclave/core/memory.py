"""What one operator process remembers of a topology between iterations.

Everything here is safe to lose: after a restart the partition debounce is re-seeded from
status, a pending singleton grant waits its full lease duration afresh, and write failures
are found again by the next write. It is one record per topology, handed in with the
observation, handed back by the plan, and saved by the reconciler at one moment: after
the plan is applied, keeping for each object what its writes made true.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from conclave.api import Member
from conclave.core.facts import LeaseState, PodFacts, Publication
from conclave.core.partitions import Debounced
from conclave.core.placement import Candidate


@dataclasses.dataclass(frozen=True)
class SingletonMemory:
    """One singleton's readings of the operator's monotonic clock."""

    ineligible_since: float | None = None
    """When the current (or last) owner was first seen unable to keep the singleton."""
    revoked_epoch: int | None = None
    revoked_seen_at: float | None = None
    """When the revocation of ``revoked_epoch`` was seen committed; None right after this
    process wrote it: the reconciler stamps it once the write has returned."""
    failover_since: float | None = None
    """For a grant that replaced an owner and whose status is not published yet: when that
    owner was first seen unable to keep it (the failover is timed when the status is)."""

    def stamped(self, clock: float) -> SingletonMemory:
        if self.revoked_epoch is not None and self.revoked_seen_at is None:
            return dataclasses.replace(self, revoked_seen_at=clock)
        return self


Pair = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class Attempts:
    count: int
    not_before: float
    """The operator's monotonic clock: no new attempt for this pair before it."""


@dataclasses.dataclass(frozen=True)
class MeshMemory:
    """What ``connect: Mesh`` remembers (``core.meshing``)."""

    attempts: Mapping[Pair, Attempts] = dataclasses.field(default_factory=dict)
    """Missing pairs (sorted names) conclave asked to connect, and when it may ask again."""
    leaving: Mapping[str, tuple[str, str | None]] = dataclasses.field(default_factory=dict)
    """Nodes that left the topology while their pod still exists (terminating): node →
    (pod, the address it had)."""
    cut: frozenset[str] = frozenset()
    """Gone nodes the members were asked to disconnect that discovery still lists (an
    EndpointSlice lags its pod): not asked again."""
    waiting: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Counting members not heard from yet (new, or refused since they last answered), and
    since when (the operator's monotonic clock)."""


@dataclasses.dataclass(frozen=True)
class Basis:
    """What a topology's dependents were last planned from, so that the next plan looks
    again only at what changed since (``core.scoping``). An object whose writes did not
    all take effect is left out of it, so it counts as changed and is planned again."""

    context: tuple[object, ...]
    """What every dependent is decided against: TopologyFound, the topology's generation,
    the partition verdict's state and majority."""
    candidates: Mapping[str, Candidate]
    """The members as placement saw them."""
    counting: Mapping[str, Member]
    """The members that count, by name, as the groups saw them."""
    pods: Mapping[str, PodFacts]
    singletons: Mapping[str, tuple[str, LeaseState | None]]
    """Each singleton's version (uid and resourceVersion) and its Lease, by name."""
    groups: Mapping[str, str]
    """Each process group's version, by name."""
    publication: Publication


@dataclasses.dataclass(frozen=True)
class Remembered:
    """A topology's remembered state."""

    partition: Debounced | None = None
    """The partition debounce; None after a restart (then re-seeded from status)."""
    singletons: Mapping[str, SingletonMemory] = dataclasses.field(default_factory=dict)
    """Each singleton's memory, by uid."""
    write_failures: tuple[str, ...] = ()
    """What the previous iteration failed to write, to be surfaced as a condition."""
    mesh: MeshMemory = dataclasses.field(default_factory=MeshMemory)
    basis: Basis | None = None
    """What the dependents were last planned from; None: plan all of them (after a start,
    on the periodic resync, after an iteration that failed)."""

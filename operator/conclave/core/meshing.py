"""``connect: Mesh``: conclave as the cluster's connector (libcluster's job), decided purely.

- Connect: each counting member that answers and whose own view lacks another counting
  member is asked to ``net_kernel:connect_node/1`` it; one caller per missing pair (a
  member that knows its view), and per pair an exponential backoff, so conclave never
  fights the kernel's own disconnects (``prevent_overlapping_partitions``, a node that
  refuses the cookie). The plan asks to look again when a pair's next attempt is due.
- A member conclave has not heard from since it joined (not probed yet, or refused: its
  node is not up yet) is not connected: the attempt would fail and start the pair's
  backoff. It is probed every ``STARTING_PROBE_SECONDS`` instead, for its first
  ``STARTING_WINDOW_SECONDS``, so a new node is meshed within about that long of accepting
  connections, not at the next ``probe.interval``. A member whose probe timed out may only
  be cut off from the operator: it is still connected.
- Never connect a node that does not count: a terminating pod's node is not a member, so
  it is never reconnected once cut; but it is left connected while it drains, so graceful
  hand-offs still work.
- Disconnect: once a member's pod is confirmed gone (its pod object gone, even while its
  EndpointSlice still lists it; or, for one that left, replaced by a pod of the same name at
  another address), every member that answers is asked, once, to
  ``erlang:disconnect_node/1`` it; otherwise its peers notice only after ``net_ticktime``
  (45 to 75 s by default) and keep sending to a dead node.
- A discovery error never disconnects anyone: discovery keeps the last members, and only a
  pod object's absence says that one is gone.

What a member leaving looks like is remembered (``MeshMemory.leaving``) until its pod is
gone; after an operator restart, a member that left before it is not disconnected by
conclave (the kernel's ``net_ticktime`` still does it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from conclave.api import Member
from conclave.core.facts import PodFacts, Probed
from conclave.core.memory import Attempts, MeshMemory, Pair
from conclave.core.partitions import DOWN_REASONS
from conclave.core.plans import MeshPlan

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0
STARTING_PROBE_SECONDS = 0.1
STARTING_WINDOW_SECONDS = 30.0


def plan(
    *,
    counting: Sequence[Member],
    views: Mapping[str, Probed],
    before: Sequence[Member],
    after: Sequence[Member],
    pods: Mapping[str, PodFacts],
    memory: MeshMemory,
    clock: float,
) -> MeshPlan:
    """What to ask of the members this iteration. ``before``/``after``: the members
    published before and now; ``counting``: those that count now."""
    published = {m.name for m in after}
    known = {**memory.leaving, **{m.name: (m.pod, m.ip) for m in (*before, *after) if m.pod}}
    gone = {
        name
        for name, (pod, address) in known.items()
        if _gone(pods.get(pod), address, replaced_counts=name not in published)
    }
    alive = [m for m in counting if m.ip and m.name not in gone]
    up = [m for m in alive if m.name in views and views[m.name].reason not in DOWN_REASONS]
    connects, attempts = _connects(up, views, memory, clock)
    fresh = sorted(gone - memory.cut)
    disconnects = [(m.name, name) for name in fresh for m in up if m.name != name]
    leaving = {name: entry for name, entry in known.items() if name not in published | gone}
    waiting = {
        m.name: memory.waiting.get(m.name, clock)
        for m in alive
        if m.name not in views or views[m.name].reason in DOWN_REASONS
    }
    due = [attempt.not_before - clock for attempt in attempts.values()]
    if any(clock - since < STARTING_WINDOW_SECONDS for since in waiting.values()):
        due.append(STARTING_PROBE_SECONDS)
    return MeshPlan(
        connects=tuple(sorted(connects)),
        disconnects=tuple(disconnects),
        addresses={m.name: m.ip for m in up if m.ip},
        memory=MeshMemory(attempts, leaving, frozenset(gone & published), waiting),
        requeue_after=max(min(due), 0.0) if due else None,
    )


def _connects(
    up: Sequence[Member], views: Mapping[str, Probed], memory: MeshMemory, clock: float
) -> tuple[list[Pair], dict[Pair, Attempts]]:
    """(caller, peer) for each pair of members that answer and are not linked, whose
    backoff allows it now; and every missing pair's attempts."""
    seen = {m.name: views[m.name].connected for m in up}
    connects, attempts = [], {}
    for index, a in enumerate(up):
        for b in up[index + 1 :]:
            pair = (a.name, b.name) if a.name < b.name else (b.name, a.name)
            caller = _caller(pair, seen)
            if caller is None:
                continue  # linked, or nobody can tell
            previous = memory.attempts.get(pair)
            if previous is not None and clock < previous.not_before:
                attempts[pair] = previous
                continue
            count = previous.count + 1 if previous else 1
            delay = min(FIRST_RETRY_SECONDS * 2 ** (count - 1), MAX_RETRY_SECONDS)
            attempts[pair] = Attempts(count, clock + delay)
            connects.append((caller, pair[1] if caller == pair[0] else pair[0]))
    return connects, attempts


def _caller(pair: Pair, known: Mapping[str, frozenset[str] | None]) -> str | None:
    """Who should connect the pair: a member whose known view lacks the other; None when
    either sees the other, or neither view is known."""
    a, b = pair
    view_a, view_b = known.get(a), known.get(b)
    if (view_a is not None and b in view_a) or (view_b is not None and a in view_b):
        return None
    if view_a is not None:
        return a
    return b if view_b is not None else None


def _gone(pod: PodFacts | None, address: str | None, *, replaced_counts: bool) -> bool:
    """Its pod is gone from the API; or (``replaced_counts``: for a member that left) a new
    pod holds the name at another address. A listed member's pod at another address is not
    taken for a replacement: discovery renames or re-addresses it on its own."""
    if pod is None:
        return True
    return replaced_counts and pod.ip is not None and address is not None and pod.ip != address

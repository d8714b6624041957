"""``connect: Mesh``: conclave as the cluster's connector (libcluster's job), decided purely.

- Connect: each counting member whose own view lacks another counting member is asked to
  ``net_kernel:connect_node/1`` it; one caller per missing pair (a member that knows its
  view), and per pair an exponential backoff, so conclave never fights the kernel's own
  disconnects (``prevent_overlapping_partitions``, a node that refuses the cookie).
- Never connect a node that does not count: a terminating pod's node is not a member, so
  it is never reconnected once cut; but it is left connected while it drains, so graceful
  hand-offs still work.
- Disconnect: when a member's pod is confirmed gone (its pod object gone, or replaced),
  every member is asked to ``erlang:disconnect_node/1`` it at once; otherwise its peers
  notice only after ``net_ticktime`` (45 to 75 s by default) and keep sending to a dead node.
- A discovery error never disconnects anyone: discovery keeps the last members then, so
  nobody leaves.

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
    up = [m for m in counting if m.ip and (views.get(m.name) or Probed(None)).reason not in DOWN_REASONS]
    known = {m.name: views[m.name].connected for m in up if m.name in views}
    connects, attempts = [], {}
    for index, a in enumerate(up):
        for b in up[index + 1 :]:
            pair = (a.name, b.name) if a.name < b.name else (b.name, a.name)
            caller = _caller(pair, known)
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
    members = {m.name for m in after}
    leaving = {name: pod for name, pod in memory.leaving.items() if name not in members}
    leaving |= {m.name: m.pod for m in before if m.name not in members and m.pod}
    gone = sorted(name for name, pod in leaving.items() if _gone(pods.get(pod), name, before))
    disconnects = [(m.name, name) for name in gone for m in up if m.name != name]
    remaining = {name: pod for name, pod in leaving.items() if name not in gone}
    addresses = {m.name: m.ip for m in up if m.ip}
    return MeshPlan(tuple(sorted(connects)), tuple(disconnects), addresses, MeshMemory(attempts, remaining))


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


def _gone(pod: PodFacts | None, node: str, before: Sequence[Member]) -> bool:
    """Its pod is gone from the API, or a new pod holds the name at another address."""
    if pod is None:
        return True
    address = next((m.ip for m in before if m.name == node), None)
    return pod.ip is not None and address is not None and pod.ip != address

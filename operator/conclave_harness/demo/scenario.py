"""The demo's story, step by step, each step timed from its action to its outcome.

The members are real Erlang nodes, started alone; the operator probes them over Erlang
distribution and is the only one that connects them (``connect: Mesh``). The demo writes
only what a user, a kubelet or a failing world would: pods, conclave resources, a frozen
BEAM, a network cut, killed processes. Every outcome it reports was written by the
operator, or is what the nodes themselves say (their ``nodes()``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from conclave.adapters.apiclient import ApiClient
from conclave.api import API_VERSION, SingletonStatus
from conclave_harness.demo import manifests
from conclave_harness.demo.manifests import (
    EMPTIED,
    FIRST_SIZE,
    GROUPS,
    LEASE_DURATION,
    MINORITY,
    SCALED_SIZE,
    SINGLETONS,
    STABLE_AFTER,
    TOPOLOGY,
)
from conclave_harness.demo.narrating import Measurement, Narration
from conclave_harness.demo.nodes import DISTRIBUTION_PORT, ErlangNodes
from conclave_harness.demo.splitting import Cut
from conclave_harness.demo.watching import Check, Seen, Watcher, healthy, meshed, stay
from conclave_harness.errors import ScenarioFailed


class Scenario:
    """The demo's story against one namespace; ``run`` returns the measurements or raises
    ScenarioFailed naming the outcome that did not show. The network cut never outlives it."""

    def __init__(
        self,
        api: ApiClient,
        namespace: str,
        nodes: ErlangNodes,
        start_operator: Callable[[], object],
        narration: Narration,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.nodes = nodes
        self.start_operator = start_operator
        self.narration = narration
        self.watcher = Watcher(api, namespace, nodes, narration)
        self.cut = Cut(nodes.network)
        self._nodes: dict[int, str] = {}
        """Pod index -> node name (chat@<pod IP>) of the members running now."""

    async def run(self) -> list[Measurement]:
        steps = [
            self.discover,
            self.place,
            self.scale,
            self.fail_over,
            self.rejoin,
            self.split,
            self.heal,
            self.empty_group,
        ]
        try:
            for number, step in enumerate(steps, 1):
                await step(number)
        finally:
            self.cut.remove()
            await self.nodes.hang_up()
        return self.watcher.measurements

    # The steps.

    async def discover(self, number: int) -> None:
        self.narration.step(
            number,
            "Discovery and the mesh",
            f"a Secret with the cookie, a headless Service, {FIRST_SIZE} pods each running a real "
            f"Erlang node, started alone (no EPMD, port {DISTRIBUTION_PORT}; it never connects on its "
            "own), a ClusterTopology (probe erlang, connect Mesh) and two ProcessGroups of real pg "
            "groups; then the operator starts",
        )
        await self.api.create(self._core("secrets"), manifests.cookie_secret(self.nodes.cookie))
        await self.api.create(
            self._core("services"),
            {"metadata": {"name": TOPOLOGY}, "spec": {"clusterIP": "None", "selector": {"app": TOPOLOGY}}},
        )
        await self._start_members(range(FIRST_SIZE))
        title = f"{number}. discovery"
        views = await self.nodes.views()
        if any(view != frozenset() for view in views.values()):
            raise ScenarioFailed(f"Step {title}: the nodes did not start alone: {views}")
        self.watcher.record(
            Measurement(title, "alone", f"{FIRST_SIZE} nodes up, each alone: nodes() = [] on every one", None)
        )
        for plural, body in manifests.resources():
            await self._create(plural, body)
        started = time.monotonic()
        self.start_operator()
        names = list(self._nodes.values())
        counts = {name: manifests.processes(name, range(FIRST_SIZE)) for name in GROUPS}

        def discovered(seen: Seen) -> str | None:
            topology = seen.snapshot.topology(TOPOLOGY).status
            if topology.member_count == topology.ready_members == FIRST_SIZE:
                return f"{FIRST_SIZE} members discovered (operator start included)"
            return None

        def connected(seen: Seen) -> str | None:
            if meshed(seen, names):
                pairs, others = FIRST_SIZE * (FIRST_SIZE - 1) // 2, FIRST_SIZE - 1
                return (
                    f"the operator connected all {pairs} pairs: each node's nodes() lists the other {others}"
                )
            return None

        def grouped(seen: Seen) -> str | None:
            found = {name: seen.snapshot.group(name).status.count for name in GROUPS}
            if healthy(seen, FIRST_SIZE) and found == counts:
                groups = ", ".join(f"{name} {count}" for name, count in counts.items())
                return f"Healthy after stableAfter, one component; pg groups {groups} (their processes)"
            return None

        outcomes = {"discovered": discovered, "meshed": connected, "healthy": grouped}
        await self.watcher.expect(title, started, outcomes)

    async def place(self, number: int) -> None:
        self.narration.step(
            number,
            "Singletons",
            "three Singletons: Uniform/Fence (CP), UniformQuorum, Uniform/Continue (AP), "
            f"leaseDuration {LEASE_DURATION}",
        )
        started = time.monotonic()
        for plural, body in manifests.singletons():
            await self._create(plural, body)

        def placed(seen: Seen) -> str | None:
            owners = {name: seen.snapshot.singleton(name).status for name in SINGLETONS}
            if all(s.phase == "Placed" and s.owner for s in owners.values()):
                return "placed: " + ", ".join(
                    f"{name} on {s.owner_pod} (epoch {s.epoch})" for name, s in owners.items()
                )
            return None

        await self.watcher.expect(f"{number}. placement", started, {"placed": placed})

    async def scale(self, number: int) -> None:
        self.narration.step(
            number,
            f"Scale to {SCALED_SIZE}",
            f"{SCALED_SIZE - FIRST_SIZE} more pods, their nodes started alone",
        )
        started = time.monotonic()
        await self._start_members(range(FIRST_SIZE, SCALED_SIZE))
        names = list(self._nodes.values())
        new = ", ".join(self._nodes[index] for index in range(FIRST_SIZE, SCALED_SIZE))

        def joined(seen: Seen) -> str | None:
            ready = seen.snapshot.topology(TOPOLOGY).status.ready_members
            subscribers = seen.snapshot.group("subscribers").status.count
            if ready == subscribers == SCALED_SIZE:
                return f"{SCALED_SIZE} members discovered; pg group subscribers {subscribers}"
            return None

        def connected(seen: Seen) -> str | None:
            return (
                f"{new} connected to every member: a full mesh of {SCALED_SIZE}"
                if meshed(seen, names)
                else None
            )

        def grown(seen: Seen) -> str | None:
            return f"Healthy, one component of {SCALED_SIZE}" if healthy(seen, SCALED_SIZE) else None

        outcomes = {"joined": joined, "meshed": connected, "grown": grown}
        await self.watcher.expect(f"{number}. scale to {SCALED_SIZE}", started, outcomes)

    async def fail_over(self, number: int) -> None:
        before = await self._singletons()
        pod = before["billing"].owner_pod
        if pod is None:
            raise ScenarioFailed(f"Step {number} (failover): billing has no owner to fail over")
        owned = {name: was for name, was in before.items() if was.owner_pod == pod}
        others = {name: was for name, was in before.items() if was.owner_pod != pod}
        node = self._nodes.pop(self._index(pod))
        self.narration.step(
            number,
            "Failover",
            f"the host of {pod} (owner of {' and '.join(owned)}) vanishes: its node is frozen (SIGSTOP: "
            "it neither answers nor closes a link) and the pod deleted",
        )
        self.nodes.freeze(node)
        started = time.monotonic()
        await self.api.delete(self._core("pods", pod))

        def dropped(seen: Seen) -> str | None:
            views = seen.views.values()
            if len(views) == SCALED_SIZE - 1 and all(view is not None and node not in view for view in views):
                return (
                    f"no member has {node} in nodes() any more: the operator disconnected it from all "
                    f"{len(views)} at once (on their own they wait net_ticktime, 60 s)"
                )
            return None

        def moved(seen: Seen) -> str | None:
            now = {name: seen.snapshot.singleton(name).status for name in owned}
            if all(
                status.phase == "Placed"
                and status.owner not in (None, owned[name].owner)
                and status.epoch == (owned[name].epoch or 0) + 1
                for name, status in now.items()
            ):
                return "failed over: " + "; ".join(
                    f"{name} {pod} → {status.owner_pod}, epoch {owned[name].epoch} → {status.epoch}"
                    for name, status in now.items()
                )
            return None

        steady = {"elsewhere": stay(others, "not on the deleted pod, unchanged")} if others else {}
        await self.watcher.expect(
            f"{number}. failover", started, {"dropped": dropped, "moved": moved}, steady
        )
        self.nodes.kill(node)  # gone with its host

    async def rejoin(self, number: int) -> None:
        gone = next(i for i in range(SCALED_SIZE) if i not in self._nodes)
        before = await self._singletons()
        self.narration.step(number, "Rejoin", f"{TOPOLOGY}-{gone} comes back, with a new IP and a new node")
        await self.watcher.deleted(f"{TOPOLOGY}-{gone}")
        started = time.monotonic()
        await self._start_members([gone])
        names = list(self._nodes.values())

        def back(seen: Seen) -> str | None:
            if meshed(seen, names) and healthy(seen, SCALED_SIZE):
                return f"{self._nodes[gone]} connected by the operator: a full mesh of {SCALED_SIZE}, Healthy"
            return None

        passive = stay(before, "rebalance Passive moves nothing to a newcomer")
        await self.watcher.expect(f"{number}. rejoin", started, {"back": back}, {"passive": passive})

    async def split(self, number: int) -> None:
        before = await self._singletons()
        minority = self._minority([status.owner for status in before.values()])
        majority = sorted(set(self._nodes.values()) - set(minority))
        self.narration.step(
            number,
            f"Split {len(majority)}/{len(minority)}",
            f"a network cut between {len(majority)} members and the {len(minority)} that own the "
            "singletons (the pod network drops every packet between the sides), and each node drops "
            "its links across it (disconnect_node: what its kernel does once net_ticktime, 60 s, passes)",
        )
        started = time.monotonic()
        self.cut.apply([self.nodes.ip(name) for name in majority], [self.nodes.ip(name) for name in minority])
        across = [(a, b) for a in majority for b in minority]
        await self.nodes.disconnect([*across, *((b, a) for a, b in across)])

        def cut(seen: Seen) -> str | None:
            if meshed(seen, majority) and meshed(seen, minority):
                return f"each node's nodes() is its own side only ({len(majority)} and {len(minority)})"
            return None

        def held(seen: Seen) -> str | None:
            side = {name: set(majority if name in majority else minority) for name in seen.views}
            if all(not (view or frozenset()) - side[name] for name, view in seen.views.items()):
                return "no link across the cut came back: the mesh's connects get no answer"
            return None

        def declared(seen: Seen) -> str | None:
            partition = seen.snapshot.topology(TOPOLOGY).status.partition
            if partition is not None and partition.state == "Partitioned" and partition.majority == majority:
                sizes = "+".join(str(len(c)) for c in partition.components)
                return f"Partitioned ({sizes}) after stableAfter {STABLE_AFTER}, majority of {len(majority)}"
            return None

        def to_majority(name: str) -> Check:
            old = before[name]
            distribution, policy = SINGLETONS[name]

            def moved(seen: Seen) -> str | None:
                now = seen.snapshot.singleton(name).status
                if now.phase == "Placed" and now.owner in majority and now.epoch == (old.epoch or 0) + 1:
                    move = f"{old.owner_pod} → {now.owner_pod}, epoch {old.epoch} → {now.epoch}"
                    return f"{name} ({distribution}/{policy}) revoked, granted on the majority: {move}"
                return None

            return moved

        outcomes = {"cut": cut, "declared": declared, "fenced": to_majority("billing")}
        outcomes["quorum"] = to_majority("ledger")
        kept = stay({"presence": before["presence"]}, "Continue keeps the owner on its side")
        title = f"{number}. split {len(majority)}/{len(minority)}"
        await self.watcher.expect(title, started, outcomes, {"held": held, "kept": kept})

    async def heal(self, number: int) -> None:
        before = await self._singletons()
        self.narration.step(number, "Heal", "the network cut is removed; the nodes do nothing on their own")
        started = time.monotonic()
        self.cut.remove()
        names = list(self._nodes.values())
        links = MINORITY * (SCALED_SIZE - MINORITY)

        def reconnected(seen: Seen) -> str | None:
            if meshed(seen, names):
                return (
                    f"the operator reconnected the {links} links across, at its next try per pair "
                    "(it backs off while they fail): a full mesh again"
                )
            return None

        def healed(seen: Seen) -> str | None:
            return f"Healthy again: one component of {SCALED_SIZE}" if healthy(seen, SCALED_SIZE) else None

        passive = stay(before, "nothing moves back (Passive)")
        outcomes = {"reconnected": reconnected, "healed": healed}
        await self.watcher.expect(f"{number}. heal", started, outcomes, {"passive": passive})

    async def empty_group(self, number: int) -> None:
        scope, group, _ = GROUPS[EMPTIED]
        self.narration.step(
            number,
            "Empty a group",
            f"kill every process of the pg group {group} (scope {scope}): exit(Pid, kill) on each node",
        )
        started = time.monotonic()
        killed = await self.nodes.kill_processes(scope, group)
        title = f"{number}. empty a group"
        where = ", ".join(f"{count} on {node}" for node, count in sorted(killed.items()))
        self.watcher.record(Measurement(title, "killed", f"killed {sum(killed.values())}: {where}", None))

        def emptied(seen: Seen) -> str | None:
            status = seen.snapshot.group(EMPTIED).status
            populated = next((c for c in status.conditions if c.type == "Populated"), None)
            if status.count == 0 and populated is not None and populated.reason == "Empty":
                return (
                    f"{EMPTIED} is empty: Populated={populated.status} ({populated.reason}), event GroupEmpty"
                )
            return None

        await self.watcher.expect(title, started, {"emptied": emptied})

    # How the steps act.

    def _core(self, plural: str, name: str = "") -> str:
        return f"/api/v1/namespaces/{self.namespace}/{plural}" + (f"/{name}" if name else "")

    async def _create(self, plural: str, body: dict[str, Any]) -> None:
        path = f"/apis/{API_VERSION}/namespaces/{self.namespace}/{plural}"
        await self.api.create(path, {"apiVersion": API_VERSION, **body})

    @staticmethod
    def _index(pod: str) -> int:
        return int(pod.rsplit("-", 1)[1])

    async def _start_members(self, indexes: Sequence[int] | range) -> None:
        """Create the pods, wait until the kubelet runs them, then start each one's node at its
        pod IP, alone; return once every node answers."""
        for index in indexes:
            await self.api.create(self._core("pods"), manifests.pod(index))
        ips = {index: await self.watcher.running(f"{TOPOLOGY}-{index}") for index in indexes}
        names = {index: f"{TOPOLOGY}@{ip}" for index, ip in ips.items()}
        await self.nodes.start({names[i]: (ips[i], manifests.node_groups(i)) for i in indexes})
        self._nodes.update(names)

    def _minority(self, owners: Sequence[str | None]) -> list[str]:
        """MINORITY members: the given owners first, then the highest addresses."""
        chosen = list(dict.fromkeys(owner for owner in owners if owner))
        others = sorted(set(self._nodes.values()) - set(chosen), reverse=True)
        return sorted((chosen + others)[:MINORITY])

    async def _singletons(self) -> dict[str, SingletonStatus]:
        seen = await self.watcher.look()
        return {name: seen.snapshot.singleton(name).status for name in SINGLETONS}

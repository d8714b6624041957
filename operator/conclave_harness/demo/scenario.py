"""The demo's story, step by step, each step timed from its action to its outcome in the API.

It writes only pods, their labels and conclave resources, and reads the rest; every
outcome it reports was written by the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conclave import summarizing
from conclave.adapters.apiclient import ApiClient
from conclave.api import API_VERSION, SingletonStatus
from conclave.errors import NotFoundError
from conclave.summarizing import Snapshot
from conclave_harness.demo import manifests
from conclave_harness.demo.manifests import (
    EMPTIED,
    FIRST_SIZE,
    GROUP_LABEL,
    GROUPS,
    LEASE_DURATION,
    MINORITY,
    SCALED_SIZE,
    SINGLETONS,
    STABLE_AFTER,
    TOPOLOGY,
)
from conclave_harness.demo.narrating import Measurement, Narration
from conclave_harness.errors import ScenarioFailed
from conclave_harness.sim import SimulatedMembers

POLL_INTERVAL = 0.05
STEP_TIMEOUT = 45.0
POD_TIMEOUT = 20.0

Check = Callable[[Snapshot], str | None]
"""Looks at a snapshot: the outcome's description once it shows, else None."""


def _healthy(snapshot: Snapshot, size: int) -> bool:
    topology = snapshot.topology(TOPOLOGY).status
    partition = topology.partition
    return (
        topology.member_count == size
        and topology.ready_members == size
        and partition is not None
        and partition.state == "Healthy"
        and [len(c) for c in partition.components] == [size]
    )


def _whole(outcome: str) -> Check:
    """A check that all SCALED_SIZE members are ready and form one Healthy component."""

    def whole(snapshot: Snapshot) -> str | None:
        return outcome if _healthy(snapshot, SCALED_SIZE) else None

    return whole


class Scenario:
    """The demo's story against one namespace; ``run`` returns the measurements or raises
    ScenarioFailed naming the outcome that did not show."""

    def __init__(
        self,
        api: ApiClient,
        namespace: str,
        members: SimulatedMembers,
        start_operator: Callable[[], object],
        narration: Narration,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.members = members
        self.start_operator = start_operator
        self.narration = narration
        self.measurements: list[Measurement] = []
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
        for number, step in enumerate(steps, 1):
            await step(number)
        return self.measurements

    # The steps.

    async def discover(self, number: int) -> None:
        self.narration.step(
            number,
            "Discovery",
            f"a headless Service, {FIRST_SIZE} pods whose members serve their view of the cluster, "
            "a ClusterTopology and two ProcessGroups; then the operator starts",
        )
        await self.api.create(
            self._core("services"),
            {"metadata": {"name": TOPOLOGY}, "spec": {"clusterIP": "None", "selector": {"app": TOPOLOGY}}},
        )
        await self._start_members(range(FIRST_SIZE))
        for plural, body in manifests.resources():
            await self._create(plural, body)
        started = time.monotonic()
        self.start_operator()

        def discovered(snapshot: Snapshot) -> str | None:
            counts = {name: snapshot.group(name).status.count for name in GROUPS}
            expected = {
                name: len([i for i in pods if i < FIRST_SIZE]) for name, (_, _, pods) in GROUPS.items()
            }
            if _healthy(snapshot, FIRST_SIZE) and counts == expected:
                groups = ", ".join(f"{name} {count}" for name, count in counts.items())
                return f"{FIRST_SIZE} members discovered, Healthy; groups {groups} (operator start included)"
            return None

        await self._expect(number, "discovery", started, {"discovered": discovered})

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

        def placed(snapshot: Snapshot) -> str | None:
            owners = {name: snapshot.singleton(name).status for name in SINGLETONS}
            if all(s.phase == "Placed" and s.owner for s in owners.values()):
                return "placed: " + ", ".join(
                    f"{name} on {s.owner_pod} (epoch {s.epoch})" for name, s in owners.items()
                )
            return None

        await self._expect(number, "placement", started, {"placed": placed})

    async def scale(self, number: int) -> None:
        self.narration.step(number, f"Scale to {SCALED_SIZE}", f"{SCALED_SIZE - FIRST_SIZE} more pods join")
        started = time.monotonic()
        await self._start_members(range(FIRST_SIZE, SCALED_SIZE))

        def joined(snapshot: Snapshot) -> str | None:
            ready = snapshot.topology(TOPOLOGY).status.ready_members
            subscribers = snapshot.group("subscribers").status.count
            if ready == subscribers == SCALED_SIZE:
                return f"{SCALED_SIZE} members discovered; group subscribers {subscribers}"
            return None

        grown = _whole(f"every member's view probed: Healthy, one component of {SCALED_SIZE}")
        await self._expect(number, f"scale to {SCALED_SIZE}", started, {"joined": joined, "grown": grown})

    async def fail_over(self, number: int) -> None:
        before = await self._singletons()
        pod = before["billing"].owner_pod
        if pod is None:
            raise ScenarioFailed(f"Step {number} (failover): billing has no owner to fail over")
        owned = {name: was for name, was in before.items() if was.owner_pod == pod}
        others = {name: was for name, was in before.items() if was.owner_pod != pod}
        self.narration.step(number, "Failover", f"delete {pod}, which owns {' and '.join(owned)}")
        started = time.monotonic()
        await self.api.delete(self._core("pods", pod))
        self.members.remove(self._nodes.pop(self._index(pod)))  # the member dies with its pod

        def moved(snapshot: Snapshot) -> str | None:
            now = {name: snapshot.singleton(name).status for name in owned}
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

        steady = {"elsewhere": self._stay(others, "not on the deleted pod, unchanged")} if others else {}
        await self._expect(number, "failover", started, {"moved": moved}, steady)

    async def rejoin(self, number: int) -> None:
        gone = next(i for i in range(SCALED_SIZE) if i not in self._nodes)
        before = await self._singletons()
        self.narration.step(number, "Rejoin", f"{TOPOLOGY}-{gone} comes back, with a new IP")
        await self._wait_deleted(f"{TOPOLOGY}-{gone}")
        started = time.monotonic()
        await self._start_members([gone])

        back = _whole(f"{self._nodes[gone]} joined: {SCALED_SIZE} members, Healthy")
        passive = self._stay(before, "rebalance Passive moves nothing to a newcomer")
        await self._expect(number, "rejoin", started, {"back": back}, {"passive": passive})

    async def split(self, number: int) -> None:
        before = await self._singletons()
        minority = self._minority([status.owner for status in before.values()])
        majority = sorted(set(self._nodes.values()) - set(minority))
        self.narration.step(
            number,
            "Split 4/3",
            f"a netsplit: {len(majority)} members on one side, {len(minority)} on the other, "
            "with the singletons' owners",
        )
        started = time.monotonic()
        self.members.partition([majority, minority])

        def declared(snapshot: Snapshot) -> str | None:
            partition = snapshot.topology(TOPOLOGY).status.partition
            if partition is not None and partition.state == "Partitioned" and partition.majority == majority:
                sizes = "+".join(str(len(c)) for c in partition.components)
                return f"Partitioned ({sizes}) after stableAfter {STABLE_AFTER}, majority of {len(majority)}"
            return None

        def to_majority(name: str) -> Check:
            old = before[name]
            distribution, policy = SINGLETONS[name]

            def moved(snapshot: Snapshot) -> str | None:
                now = snapshot.singleton(name).status
                if now.phase == "Placed" and now.owner in majority and now.epoch == (old.epoch or 0) + 1:
                    move = f"{old.owner_pod} → {now.owner_pod}, epoch {old.epoch} → {now.epoch}"
                    return f"{name} ({distribution}/{policy}) revoked, granted on the majority: {move}"
                return None

            return moved

        await self._expect(
            number,
            "split 4/3",
            started,
            {"declared": declared, "fenced": to_majority("billing"), "quorum": to_majority("ledger")},
            {"kept": self._stay({"presence": before["presence"]}, "Continue keeps the owner on its side")},
        )

    async def heal(self, number: int) -> None:
        before = await self._singletons()
        self.narration.step(number, "Heal", "the network heals: every member sees every other again")
        started = time.monotonic()
        self.members.connect_all()

        healed = _whole(f"Healthy again: one component of {SCALED_SIZE}")
        passive = self._stay(before, "nothing moves back (Passive)")
        await self._expect(number, "heal", started, {"healed": healed}, {"passive": passive})

    async def empty_group(self, number: int) -> None:
        _, group, pods = GROUPS[EMPTIED]
        names = [f"{TOPOLOGY}-{i}" for i in pods]
        self.narration.step(
            number, "Empty a group", f"unlabel {', '.join(names)}: nobody is left in {group!r}"
        )
        started = time.monotonic()
        for name in names:
            patch = {"metadata": {"labels": {GROUP_LABEL.format(EMPTIED): None}}}
            await self.api.merge_patch(self._core("pods", name), patch)

        def emptied(snapshot: Snapshot) -> str | None:
            group_status = snapshot.group(EMPTIED).status
            populated = next((c for c in group_status.conditions if c.type == "Populated"), None)
            if group_status.count == 0 and populated is not None and populated.reason == "Empty":
                return (
                    f"{EMPTIED} is empty: Populated={populated.status} ({populated.reason}), event GroupEmpty"
                )
            return None

        await self._expect(number, "empty a group", started, {"emptied": emptied})

    # How the steps act and wait.

    def _core(self, plural: str, name: str = "") -> str:
        return f"/api/v1/namespaces/{self.namespace}/{plural}" + (f"/{name}" if name else "")

    async def _create(self, plural: str, body: dict[str, Any]) -> None:
        path = f"/apis/{API_VERSION}/namespaces/{self.namespace}/{plural}"
        await self.api.create(path, {"apiVersion": API_VERSION, **body})

    async def _snapshot(self) -> Snapshot:
        return await summarizing.fetch(self.api, self.namespace)

    @staticmethod
    def _index(pod: str) -> int:
        return int(pod.rsplit("-", 1)[1])

    async def _start_members(self, indexes: Sequence[int] | range) -> None:
        """Create the pods, wait until the kubelet runs them, then serve each member's view
        on its pod IP, connected to every member."""
        for index in indexes:
            await self.api.create(self._core("pods"), manifests.pod(index))
        for index in indexes:
            ip = await self._wait_running(f"{TOPOLOGY}-{index}")
            self._nodes[index] = f"{TOPOLOGY}@{ip}"
            self.members.add(self._nodes[index], ip)
        self.members.connect_all()

    async def _wait_running(self, name: str) -> str:
        deadline = time.monotonic() + POD_TIMEOUT
        while time.monotonic() < deadline:
            pod = await self.api.get(self._core("pods", name))
            pod_status = pod.get("status", {})
            if pod_status.get("phase") == "Running" and pod_status.get("podIP"):
                ip: str = pod_status["podIP"]
                return ip
            await asyncio.sleep(POLL_INTERVAL)
        raise ScenarioFailed(
            f"Pod {name} did not run within {POD_TIMEOUT:.0f}s: is the fake kubelet running?"
        )

    async def _wait_deleted(self, name: str) -> None:
        deadline = time.monotonic() + POD_TIMEOUT
        while time.monotonic() < deadline:
            try:
                await self.api.get(self._core("pods", name))
            except NotFoundError:
                return
            await asyncio.sleep(POLL_INTERVAL)
        raise ScenarioFailed(f"Pod {name} was not deleted within {POD_TIMEOUT:.0f}s")

    def _minority(self, owners: Sequence[str | None]) -> list[str]:
        """MINORITY members: the given owners first, then the highest addresses."""
        chosen = list(dict.fromkeys(owner for owner in owners if owner))
        others = sorted(set(self._nodes.values()) - set(chosen), reverse=True)
        return sorted((chosen + others)[:MINORITY])

    async def _singletons(self) -> dict[str, SingletonStatus]:
        snapshot = await self._snapshot()
        return {name: snapshot.singleton(name).status for name in SINGLETONS}

    @staticmethod
    def _stay(before: Mapping[str, SingletonStatus], why: str) -> Check:
        """A check that each singleton keeps the owner and epoch it had ``before``."""

        def stay(snapshot: Snapshot) -> str | None:
            now = {name: snapshot.singleton(name).status for name in before}
            if all((now[n].owner, now[n].epoch) == (b.owner, b.epoch) for n, b in before.items()):
                where = ", ".join(f"{name} on {b.owner_pod} (epoch {b.epoch})" for name, b in before.items())
                return f"{where}: {why}"
            return None

        return stay

    async def _expect(
        self,
        number: int,
        step: str,
        started: float,
        outcomes: Mapping[str, Check],
        steady: Mapping[str, Check] | None = None,
    ) -> None:
        """Poll until every outcome shows, recording each (by its key) the first time it
        does, while every ``steady`` check holds at each poll; then record those untimed and
        show the view. Raises ScenarioFailed when a steady check fails or after STEP_TIMEOUT."""
        pending = dict(outcomes)
        title = f"{number}. {step}"
        while True:
            snapshot = await self._snapshot()
            seen = time.monotonic()
            for name, check in list(pending.items()):
                with contextlib.suppress(KeyError):  # an object the check reads does not exist yet
                    outcome = check(snapshot)
                    if outcome:
                        del pending[name]
                        self._record(Measurement(title, name, outcome, seen - started))
            held = {name: check(snapshot) for name, check in (steady or {}).items()}
            broken = [name for name, outcome in held.items() if not outcome]
            if broken or (pending and seen - started > STEP_TIMEOUT):
                what = f"{', '.join(broken)} no longer held" if broken else f"no {', '.join(pending)}"
                raise ScenarioFailed(
                    f"Step {title}: {what} after {seen - started:.1f}s; the last status seen:\n"
                    + summarizing.render(snapshot, datetime.datetime.now(datetime.UTC))
                )
            if not pending:
                for name, outcome in held.items():
                    self._record(Measurement(title, name, outcome or "", None))
                self.narration.show(snapshot)
                return
            self.narration.watch(snapshot)
            await asyncio.sleep(POLL_INTERVAL)

    def _record(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)
        self.narration.outcome(measurement)

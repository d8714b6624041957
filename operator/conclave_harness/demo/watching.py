"""How the demo waits for an outcome: it polls what the operator published (the same
snapshot as `conclave status`) and what the nodes themselves say (each one's
``erlang:nodes()``), until every outcome of the step shows, timing each one.

It only reads; every outcome it reports was written by the operator or made by the nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import time
from collections.abc import Callable, Collection, Mapping

from conclave import summarizing
from conclave.adapters.apiclient import ApiClient
from conclave.api import SingletonStatus
from conclave.errors import NotFoundError
from conclave.summarizing import Snapshot
from conclave_harness.demo.manifests import TOPOLOGY
from conclave_harness.demo.narrating import Measurement, Narration
from conclave_harness.demo.nodes import ErlangNodes
from conclave_harness.errors import ScenarioFailed

POLL_INTERVAL = 0.05
STEP_TIMEOUT = 45.0
POD_TIMEOUT = 20.0


@dataclasses.dataclass(frozen=True)
class Seen:
    """One look at the world: the operator's status, and each running node's own view."""

    snapshot: Snapshot
    views: Mapping[str, frozenset[str] | None]
    """Node name → its erlang:nodes(), None when it did not answer."""


Check = Callable[[Seen], str | None]
"""Looks at the world: the outcome's description once it shows, else None."""


def healthy(seen: Seen, size: int) -> bool:
    """``size`` members, all ready, one Healthy component."""
    topology = seen.snapshot.topology(TOPOLOGY).status
    partition = topology.partition
    return (
        topology.member_count == size
        and topology.ready_members == size
        and partition is not None
        and partition.state == "Healthy"
        and [len(c) for c in partition.components] == [size]
    )


def meshed(seen: Seen, names: Collection[str]) -> bool:
    """Every one of ``names`` has exactly the others in its nodes(): a full mesh, and
    nothing else (the operator's hidden connections never show)."""
    return set(seen.views) >= set(names) and all(
        seen.views[name] == frozenset(names) - {name} for name in names
    )


def stay(before: Mapping[str, SingletonStatus], why: str) -> Check:
    """A check that each singleton keeps the owner and epoch it had ``before``."""

    def stayed(seen: Seen) -> str | None:
        now = {name: seen.snapshot.singleton(name).status for name in before}
        if all((now[n].owner, now[n].epoch) == (b.owner, b.epoch) for n, b in before.items()):
            where = ", ".join(f"{name} on {b.owner_pod} (epoch {b.epoch})" for name, b in before.items())
            return f"{where}: {why}"
        return None

    return stayed


class Watcher:
    """Polls the namespace's status and the nodes; records each outcome in ``measurements``."""

    def __init__(self, api: ApiClient, namespace: str, nodes: ErlangNodes, narration: Narration) -> None:
        self.api = api
        self.namespace = namespace
        self.nodes = nodes
        self.narration = narration
        self.measurements: list[Measurement] = []

    async def look(self) -> Seen:
        snapshot, views = await asyncio.gather(
            summarizing.fetch(self.api, self.namespace), self.nodes.views()
        )
        return Seen(snapshot, views)

    async def expect(
        self,
        title: str,
        started: float,
        outcomes: Mapping[str, Check],
        steady: Mapping[str, Check] | None = None,
    ) -> None:
        """Poll until every outcome shows, recording each (by its key) the first time it
        does, while every ``steady`` check holds at each poll; then record those untimed and
        show the view. Raises ScenarioFailed when a steady check fails or after STEP_TIMEOUT."""
        pending = dict(outcomes)
        while True:
            seen = await self.look()
            at = time.monotonic()
            for name, check in list(pending.items()):
                with contextlib.suppress(KeyError):  # an object the check reads does not exist yet
                    outcome = check(seen)
                    if outcome:
                        del pending[name]
                        self.record(Measurement(title, name, outcome, at - started))
            held = {name: check(seen) for name, check in (steady or {}).items()}
            broken = [name for name, outcome in held.items() if not outcome]
            if broken or (pending and at - started > STEP_TIMEOUT):
                what = f"{', '.join(broken)} no longer held" if broken else f"no {', '.join(pending)}"
                views = "\n".join(
                    f"  {node}: {sorted(view or ['?'])}" for node, view in sorted(seen.views.items())
                )
                raise ScenarioFailed(
                    f"Step {title}: {what} after {at - started:.1f}s; the last status seen:\n"
                    + summarizing.render(seen.snapshot, datetime.datetime.now(datetime.UTC))
                    + f"\nand each node's nodes():\n{views}"
                )
            if not pending:
                for name, outcome in held.items():
                    self.record(Measurement(title, name, outcome or "", None))
                self.narration.show(seen.snapshot)
                return
            self.narration.watch(seen.snapshot)
            await asyncio.sleep(POLL_INTERVAL)

    async def running(self, pod: str) -> str:
        """Wait until the kubelet runs the pod; return its IP. Raises ScenarioFailed."""
        deadline = time.monotonic() + POD_TIMEOUT
        while time.monotonic() < deadline:
            status = (await self.api.get(self._pod(pod))).get("status", {})
            if status.get("phase") == "Running" and status.get("podIP"):
                ip: str = status["podIP"]
                return ip
            await asyncio.sleep(POLL_INTERVAL)
        raise ScenarioFailed(f"Pod {pod} did not run within {POD_TIMEOUT:.0f}s: is the fake kubelet running?")

    async def deleted(self, pod: str) -> None:
        """Wait until the pod is gone from the API. Raises ScenarioFailed."""
        deadline = time.monotonic() + POD_TIMEOUT
        while time.monotonic() < deadline:
            try:
                await self.api.get(self._pod(pod))
            except NotFoundError:
                return
            await asyncio.sleep(POLL_INTERVAL)
        raise ScenarioFailed(f"Pod {pod} was not deleted within {POD_TIMEOUT:.0f}s")

    def _pod(self, name: str) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{name}"

    def record(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)
        self.narration.outcome(measurement)

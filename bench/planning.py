"""The planner's own cost at scale, in process: observe → plan → apply, with the writes
answered by an in-memory API (``conclave_harness.memoryapi``: no server, no network), so
only conclave's work is timed.

A topology of --members members and --singletons Singletons (Uniform, Passive): planned
until nothing is left to write, then one iteration with nothing changed, then one after
an owner's pod is deleted. Run twice: every iteration a full look (as the periodic resync
plans: every singleton), then incremental (only what changed since the previous plan,
``core.scoping``). Prints each step's seconds, the singletons planned and the writes.

With --groups N (issue #16, as ``bench/scale.py`` part 3 on a real control plane): a
topology of --group-members M pods, pod i labelled with the shard i mod N, and N
ProcessGroups, group g selecting the 1 + g mod 10 shards from g on (``shard In [...]``).
Settled incrementally until nothing is left to write; then a full look (every group
planned, as the periodic resync does) and an incremental one with nothing changed; then
100 pods moved to the shard half the ring away, and one pod alone, each planned until
nothing is left to write. Prints each step's iterations, the groups planned, the seconds
of the whole loop and of ``planning.plan`` alone, the fastest of 10 plans of its first
iteration's observation again (the plan is pure: that is its cost without the noise of a
shared machine), and the writes. --groups 0 skips this part, --singletons 0 the other.

    .venv/bin/python bench/planning.py [--singletons 10000] [--members 20]
                                       [--groups 200] [--group-members 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import time
from typing import Any

from conclave.act.applying import Applier
from conclave.adapters.cache import Cache
from conclave.core import planning
from conclave.core.facts import Moment
from conclave.core.keys import Key
from conclave.core.memory import Remembered
from conclave.core.observations import Observation
from conclave.observe import reading
from conclave.runtime import reconciling
from conclave_harness.memoryapi import World

JSON = dict[str, Any]


def world(cache: Cache, singletons: int, members: int) -> World:
    found = World(cache)
    for i in range(members):
        found.add_pod(f"pod-{i}")
    for i in range(singletons):
        found.add_singleton(f"s-{i:05d}")
    return found


@dataclasses.dataclass
class Iteration:
    seconds: float
    planned: int
    writes: int
    planning: float = 0.0
    """The seconds of ``planning.plan`` alone."""
    observation: Observation | None = None
    """What it planned from (the plan is pure: planning it again times it without the noise
    of one run)."""


class Loop:
    """One supervisor's observe → plan → apply, as the reconciler runs it."""

    def __init__(self, world: World) -> None:
        self.world, self.api, self.cache = world, world.api, world.cache
        self.applier = Applier(self.api, self.cache, guard=lambda: None, identity="bench")  # type: ignore[arg-type]
        self.memory = Remembered()

    async def iterate(self, *, full: bool, kind: str = "Singleton") -> Iteration:
        started, writes = time.perf_counter(), self.api.writes
        memory = dataclasses.replace(self.memory, basis=None) if full else self.memory
        observation = reading.observe(
            self.cache,
            Key(self.world.namespace, self.world.topology),
            moment=Moment(datetime.datetime.now(datetime.UTC), time.monotonic()),
            cluster_domain="cluster.local",
            lookups=reading.Lookups(),
            memory=memory,
        )
        planned_at = time.perf_counter()
        plan = planning.plan(observation)
        planning_seconds = time.perf_counter() - planned_at
        applied = await self.applier.apply(plan)
        self.memory = reconciling.remember(memory, plan, applied, time.monotonic())
        planned = sum(1 for item in plan.objects if item.target.kind == kind)
        seconds = time.perf_counter() - started
        return Iteration(seconds, planned, self.api.writes - writes, planning_seconds, observation)


async def run(singletons: int, members: int) -> list[list[str]]:
    rows = []
    for full in (True, False):
        loop = Loop(world(Cache(), singletons, members))
        how = "full" if full else "incremental"
        placing = [await loop.iterate(full=full)]
        while placing[-1].writes:
            placing.append(await loop.iterate(full=full))
        took = sum(i.seconds for i in placing)
        rows.append([f"place every singleton, {how}", f"{len(placing)} iterations", f"{took:.2f}",
                     str(sum(i.writes for i in placing))])  # fmt: skip
        quiet = await loop.iterate(full=full)
        rows.append([f"nothing changed, {how}", str(quiet.planned), f"{quiet.seconds:.3f}",
                     str(quiet.writes)])  # fmt: skip
        loop.world.delete_pod("pod-0")
        failover = await loop.iterate(full=full)
        rows.append([f"an owner's pod deleted, {how}", str(failover.planned),
                     f"{failover.seconds:.3f}", str(failover.writes)])  # fmt: skip
    return rows


def sharded(cache: Cache, count: int, pods: int) -> World:
    """``pods`` pods, pod i in shard i mod ``count``, and ``count`` ProcessGroups, group g
    selecting the 1 + g mod 10 shards from g on."""
    found = World(cache, topology="grp")
    for i in range(pods):
        found.add_pod(f"pod-{i:04d}", {"shard": f"{i % count:03d}"})
    for g in range(count):
        values = sorted(f"{(g + j) % count:03d}" for j in range(1 + g % 10))
        selector = {"matchExpressions": [{"key": "shard", "operator": "In", "values": values}]}
        found.add_group(f"g-{g:03d}", selector)
    return found


async def settle(loop: Loop) -> list[Iteration]:
    """Incremental iterations until one writes nothing (that one included)."""
    done = [await loop.iterate(full=False, kind="ProcessGroup")]
    while done[-1].writes:
        done.append(await loop.iterate(full=False, kind="ProcessGroup"))
    return done


REPLAYS = 10


def row(step: str, done: list[Iteration]) -> list[str]:
    """One table row: iterations, the most groups one of them planned, the seconds (whole
    loop, then planning.plan alone) summed and of the slowest iteration, the fastest of
    REPLAYS plans of the first iteration's observation again, and the writes."""
    replays = []
    for _ in range(REPLAYS):
        started = time.perf_counter()
        planning.plan(done[0].observation)  # type: ignore[arg-type]
        replays.append(time.perf_counter() - started)
    return [
        step,
        str(len(done)),
        str(max(i.planned for i in done)),
        f"{sum(i.seconds for i in done):.3f} (max {max(i.seconds for i in done):.3f})",
        f"{sum(i.planning for i in done):.3f} (max {max(i.planning for i in done):.3f})",
        f"{min(replays):.3f}",
        str(sum(i.writes for i in done)),
    ]


async def run_groups(count: int, pods: int) -> list[list[str]]:
    loop = Loop(sharded(Cache(), count, pods))
    rows = [row("settle: every group Populated", await settle(loop))]
    rows.append(row("nothing changed, full look", [await loop.iterate(full=True, kind="ProcessGroup")]))
    rows.append(row("nothing changed, incremental", [await loop.iterate(full=False, kind="ProcessGroup")]))
    names = [f"pod-{i:04d}" for i in range(pods)]
    for moved, step in ((names[:100], "relabel 100 pods"), (names[-1:], "relabel 1 pod")):
        for name in moved:
            shard = loop.world.pods()[name]["metadata"]["labels"]["shard"]
            loop.world.label_pod(name, {"shard": f"{(int(shard) + count // 2) % count:03d}"})
        rows.append(row(step, await settle(loop)))
    return rows


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for line in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singletons", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--group-members", type=int, default=1000)
    arguments = parser.parse_args()
    if arguments.singletons:
        rows = asyncio.run(run(arguments.singletons, arguments.members))
        print(f"\n{arguments.singletons} Singletons on {arguments.members} members, in process\n")
        table(["iteration", "singletons planned", "seconds", "writes"], rows)
    if arguments.groups:
        rows = asyncio.run(run_groups(arguments.groups, arguments.group_members))
        print(f"\n{arguments.groups} ProcessGroups over {arguments.group_members} members, in process\n")
        header = [
            "step",
            "iterations",
            "groups planned",
            "seconds",
            "of which plan",
            "1st plan again, best of 10",
            "writes",
        ]
        table(header, rows)


if __name__ == "__main__":
    main()

"""The planner's own cost at scale, in process: observe → plan → apply, with the writes
answered by an in-memory API (``conclave_harness.memoryapi``: no server, no network), so
only conclave's work is timed.

A topology of --members members and --singletons Singletons (Uniform, Passive): planned
until nothing is left to write, then one iteration with nothing changed, then one after
an owner's pod is deleted. Run twice: every iteration a full look (as the periodic resync
plans: every singleton), then incremental (only what changed since the previous plan,
``core.scoping``). Prints each step's seconds, the singletons planned and the writes.

    .venv/bin/python bench/planning.py [--singletons 10000] [--members 20]
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


class Loop:
    """One supervisor's observe → plan → apply, as the reconciler runs it."""

    def __init__(self, world: World) -> None:
        self.world, self.api, self.cache = world, world.api, world.cache
        self.applier = Applier(self.api, self.cache, guard=lambda: None, identity="bench")  # type: ignore[arg-type]
        self.memory = Remembered()

    async def iterate(self, *, full: bool) -> Iteration:
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
        plan = planning.plan(observation)
        applied = await self.applier.apply(plan)
        self.memory = reconciling.remember(memory, plan, applied, time.monotonic())
        planned = sum(1 for item in plan.objects if item.target.kind == "Singleton")
        return Iteration(time.perf_counter() - started, planned, self.api.writes - writes)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singletons", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=20)
    arguments = parser.parse_args()
    rows = asyncio.run(run(arguments.singletons, arguments.members))
    print(f"\n{arguments.singletons} Singletons on {arguments.members} members, in process\n")
    header = ["iteration", "singletons planned", "seconds", "writes"]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()

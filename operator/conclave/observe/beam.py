"""Asks BEAM nodes directly, over Erlang distribution as a hidden node: each member's own
view (``erlang:nodes()``) and its local pg group members (``pg:get_local_members/2``),
every node at once and each under its own timeout.

It only asks; what the answers mean is core's business. Must never: show the cookie, or
let one node's silence delay another's answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from conclave.adapters import erlang, metrics
from conclave.adapters.distribution import CookieRef, CookieUnavailable, Pool, to_erlang
from conclave.api import ClusterTopology, Member, ProcessGroup, durations, terms
from conclave.core import discovery
from conclave.observe.probing import View

logger = logging.getLogger(__name__)
T = TypeVar("T")


def cookie_ref(topology: ClusterTopology) -> CookieRef | None:
    secret = topology.spec.probe.cookie_secret_ref
    return CookieRef(topology.metadata.namespace, secret.name, secret.key) if secret else None


GONE_CHECK_SECONDS = 0.02
"""How often a call still waiting checks that its member's pod still exists."""

Present = Callable[[str], bool]
"""Whether the pod of that name exists now (the operator's cache of the API)."""


def targets(topology: ClusterTopology, present: Present) -> list[Member]:
    """The members to ask: those that count (as status lists them), with an address, but
    not one whose pod is gone from the API: its node cannot answer."""
    readiness = topology.spec.member_readiness
    return [
        m
        for m in topology.status.members
        if m.ip and discovery.counts(m, readiness) and (m.pod is None or present(m.pod))
    ]


async def _each(
    members: Sequence[Member], ask: Callable[[Member], Awaitable[T]], present: Present
) -> list[tuple[Member, T | erlang.DistributionError]]:
    """``ask`` every member at once, each answer or failure. A member whose pod goes from
    the API while its call waits is left out: a vanished node never answers, and waiting
    for its timeout would hold up the iteration that disconnects it."""

    async def one(member: Member) -> T | erlang.DistributionError:
        try:
            return await ask(member)
        except erlang.DistributionError as error:
            return error

    calls = [asyncio.create_task(one(member)) for member in members]
    try:
        pending = set(calls)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=GONE_CHECK_SECONDS)
            for call, member in zip(calls, members, strict=True):
                if call in pending and member.pod is not None and not present(member.pod):
                    call.cancel()
                    pending.discard(call)
    finally:
        for call in calls:
            call.cancel()  # nothing, for those done; all of them, when this is cancelled
        await asyncio.gather(*calls, return_exceptions=True)
    return [
        (member, call.result()) for call, member in zip(calls, members, strict=True) if not call.cancelled()
    ]


async def views(pool: Pool | None, topology: ClusterTopology, present: Present) -> dict[str, View]:
    """Every counting member's ``erlang:nodes()``, or why it is unknown; none for a member
    whose pod is gone."""
    members = targets(topology, present)
    ref = cookie_ref(topology)
    if pool is None or ref is None:
        return {m.name: View(m.name, None, "NoDistribution") for m in members}
    try:
        client = await pool.client(ref)
    except CookieUnavailable as error:
        logger.warning("Cannot probe over Erlang distribution: %s", error)
        return {m.name: View(m.name, None, error.reason) for m in members}
    probe = topology.spec.probe
    timeout = durations.parse(probe.timeout).total_seconds()
    started = time.perf_counter()

    async def ask(member: Member) -> frozenset[str]:
        assert member.ip is not None
        return await erlang.nodes(client, member.name, member.ip, timeout, port=probe.distribution_port)

    found = {}
    for member, answer in await _each(members, ask, present):
        if isinstance(answer, erlang.DistributionError):
            metrics.PROBE_FAILURES.labels(reason=answer.reason).inc()
            found[member.name] = View(member.name, None, answer.reason)
        else:
            found[member.name] = View(member.name, answer - {member.name})
    metrics.PROBE_SECONDS.labels(type="erlang").observe(time.perf_counter() - started)
    return found


async def group_members(
    pool: Pool | None,
    topology: ClusterTopology | None,
    groups: Sequence[ProcessGroup],
    present: Present,
) -> dict[str, dict[str, int | None]]:
    """For each ProcessGroup with source Erlang (by name): member node → how many local
    processes pg has in the group there (None: that node did not answer). A node where the
    scope is not running answers badarg: it has none."""
    erlang_groups = [g for g in groups if g.spec.source == "Erlang"]
    if topology is None or pool is None or not erlang_groups or topology.spec.probe.type != "erlang":
        return {}
    ref = cookie_ref(topology)
    if ref is None:
        return {}
    try:
        client = await pool.client(ref)
    except CookieUnavailable:
        return {group.metadata.name: {} for group in erlang_groups}
    probe = topology.spec.probe
    timeout = durations.parse(probe.timeout).total_seconds()
    members = targets(topology, present)

    async def count(group: ProcessGroup) -> dict[str, int | None]:
        args = [to_erlang(terms.parse(group.spec.scope)), to_erlang(terms.parse(group.spec.group))]

        async def ask(member: Member) -> int:
            assert member.ip is not None
            pids = await client.call(
                member.name,
                member.ip,
                "pg",
                "get_local_members",
                args,
                timeout=timeout,
                port=probe.distribution_port,
            )
            return len(pids) if isinstance(pids, list) else 0

        return {member.name: _count(answer) for member, answer in await _each(members, ask, present)}

    counted = await asyncio.gather(*(count(group) for group in erlang_groups))
    return {group.metadata.name: found for group, found in zip(erlang_groups, counted, strict=True)}


def _count(answer: int | erlang.DistributionError) -> int | None:
    """badarg from pg (the scope is not running there) is no members; silence is unknown."""
    if isinstance(answer, erlang.BadRpc):
        return 0
    return None if isinstance(answer, erlang.DistributionError) else answer

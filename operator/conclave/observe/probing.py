"""Asks members for their own view of the cluster (docs/member-view.md), each under its
own timeout and all at once, so one hung member never delays the others' verdict.

It only fetches and validates; what the views mean is ``core.partitions``'s business.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Sequence

import aiohttp

from conclave.adapters import metrics
from conclave.api import ClusterTopology, durations
from conclave.core import discovery


@dataclasses.dataclass(frozen=True)
class View:
    """A member's view: who it is connected to, or why that is unknown."""

    member: str
    connected: frozenset[str] | None
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class Target:
    member: str
    ip: str


async def _http(session: aiohttp.ClientSession, target: Target, port: int, path: str) -> View:
    async with session.get(f"http://{target.ip}:{port}{path}") as response:
        if response.status != 200:
            return View(target.member, None, f"HTTP{response.status}")
        try:
            body = json.loads(await response.read())
            node, connected = body["node"], body["connected"]
            if not isinstance(node, str) or not isinstance(connected, list):
                raise TypeError("node must be a string and connected a list")
        except (ValueError, KeyError, TypeError):
            return View(target.member, None, "MalformedView")
        if node != target.member:
            return View(target.member, None, "WrongNode")
        return View(target.member, frozenset(str(peer) for peer in connected) - {node})


async def _tcp(target: Target, port: int) -> View:
    _, writer = await asyncio.open_connection(target.ip, port)
    writer.close()
    await writer.wait_closed()
    return View(target.member, None, "NoView")


async def probe(
    kind: str, targets: Sequence[Target], port: int, path: str, timeout: float
) -> dict[str, View]:
    """Probe every target concurrently; each result arrives within ``timeout``."""
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def one(target: Target) -> View:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    if kind == "http":
                        view = await _http(session, target, port, path)
                    else:
                        view = await _tcp(target, port)
            except TimeoutError:
                view = View(target.member, None, "Timeout")
            except ConnectionRefusedError:
                view = View(target.member, None, "ConnectionRefused")
            except aiohttp.ClientConnectorError as error:
                refused = isinstance(error.os_error, ConnectionRefusedError)
                view = View(target.member, None, "ConnectionRefused" if refused else "Unreachable")
            except (aiohttp.ClientError, OSError):
                view = View(target.member, None, "Unreachable")
            metrics.PROBE_SECONDS.labels(type=kind).observe(time.perf_counter() - started)
            if view.reason not in (None, "NoView"):
                metrics.PROBE_FAILURES.labels(reason=view.reason).inc()
            return view

        views = await asyncio.gather(*(one(target) for target in targets))
    return {view.member: view for view in views}


async def probe_members(topology: ClusterTopology | None) -> dict[str, View]:
    """Ask the topology's counted members (as its status lists them) for their views."""
    if topology is None:
        return {}
    spec = topology.spec.probe
    if spec.type == "none" or spec.port is None:
        return {}
    targets = [
        Target(member.name, member.ip)
        for member in topology.status.members
        if member.ip and discovery.counts(member, topology.spec.member_readiness)
    ]
    timeout = durations.parse(spec.timeout).total_seconds()
    return await probe(spec.type, targets, spec.port, spec.path, timeout)

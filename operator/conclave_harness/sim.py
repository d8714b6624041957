"""Simulated cluster members for tests and the demo.

One process inside the local cluster's pod network serves, for each simulated member, the
member-view endpoint (``GET /cluster`` → ``{"node": ..., "connected": [...]}``, see
docs/member-view.md) on that member's pod IP, just as a BEAM node would. The process is
steered over a small control API on the network namespace's own address: a test sets each
member's view, so a partition is made the way a real netsplit shows (both sides stop
seeing each other), and can make a member hang, answer garbage, or claim another name.

``SimulatedMembers`` is the test side; ``python -m conclave_harness.sim --control ADDR:PORT`` is
the process inside the namespace. It never serves on any address outside the pod network.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterable
from typing import Any, Literal

from aiohttp import web

from conclave_harness.localcluster.clusters import free_port
from conclave_harness.localcluster.podnetwork import PodNetwork

Mode = Literal["normal", "hang", "garbage", "error", "impostor"]


class _Server:
    """The process inside the pod network: one HTTP site per member plus the control API."""

    def __init__(self) -> None:
        self.members: dict[str, dict[str, Any]] = {}
        self.runners: dict[str, web.AppRunner] = {}

    async def view(self, request: web.Request) -> web.StreamResponse:
        member = self.members[request.app["node"]]
        mode: Mode = member["mode"]
        if mode == "hang":
            await asyncio.Event().wait()  # accepts, never answers: a frozen BEAM
        if mode == "garbage":
            return web.Response(text="{not json", content_type="application/json")
        if mode == "error":
            return web.Response(status=500, text="internal error")
        node = (member.get("claims") or request.app["node"]) if mode == "impostor" else request.app["node"]
        return web.json_response({"node": node, "connected": sorted(member["connected"])})

    async def put_member(self, request: web.Request) -> web.Response:
        body = await request.json()
        node = body["node"]
        known = self.members.get(node)
        self.members[node] = {**(known or {}), **body}
        if known is None:
            app = web.Application()
            app["node"] = node
            app.router.add_get(body.get("path", "/cluster"), self.view)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
            await runner.setup()
            await web.TCPSite(runner, body["ip"], body["port"]).start()
            self.runners[node] = runner
        return web.json_response(self.members[node])

    async def delete_member(self, request: web.Request) -> web.Response:
        node = request.match_info["node"]
        runner = self.runners.pop(node, None)
        if runner is not None:  # first stop serving: a request in flight still finds its view
            await runner.cleanup()
        self.members.pop(node, None)
        return web.Response(status=204)

    async def serve(self, host: str, port: int) -> None:
        control = web.Application()
        control.router.add_put("/members", self.put_member)
        control.router.add_delete("/members/{node}", self.delete_member)
        runner = web.AppRunner(control, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        print("ready", flush=True)
        await asyncio.Event().wait()


class SimulatedMembers:
    """Test-side handle on the simulated members of one pod network."""

    def __init__(self, network: PodNetwork) -> None:
        self.network = network
        self.control = (network.namespace_address, free_port())
        self.nodes: dict[str, list[str]] = {}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> SimulatedMembers:
        host, port = self.control
        command = [sys.executable, "-m", "conclave_harness.sim", "--control", f"{host}:{port}"]
        self._process = subprocess.Popen(self.network.command(command), stdout=subprocess.PIPE)
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the simulated members' process did not start")
        return self

    @property
    def pid(self) -> int | None:
        """The serving process, once started (the demo records it for `local-cluster down`)."""
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            if self._process.stdout is not None:
                self._process.stdout.close()

    def __enter__(self) -> SimulatedMembers:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        host, port = self.control
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{host}:{port}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=5):
            pass

    def add(
        self, node: str, ip: str, port: int = 4000, connected: Iterable[str] = (), path: str = "/cluster"
    ) -> None:
        """Serve ``node``'s view on ip:port; it must be a pod IP the fake kubelet handed out."""
        self.network.check_route(ip)
        self.nodes[node] = sorted(connected)
        self._call("PUT", "/members", {"node": node, "ip": ip, "port": port, "path": path,
                                       "connected": self.nodes[node], "mode": "normal"})  # fmt: skip

    def remove(self, node: str) -> None:
        self.nodes.pop(node, None)
        self._call("DELETE", f"/members/{node}")

    def set_view(self, node: str, connected: Iterable[str]) -> None:
        self.nodes[node] = sorted(connected)
        self._call("PUT", "/members", {"node": node, "connected": self.nodes[node], "mode": "normal"})

    def set_mode(self, node: str, mode: Mode, claims: str | None = None) -> None:
        """Make ``node`` hang, answer garbage or a 500, or claim to be ``claims``."""
        self._call("PUT", "/members", {"node": node, "mode": mode, "claims": claims})

    def connect_all(self) -> None:
        self.partition([list(self.nodes)])

    def partition(self, sides: Iterable[Iterable[str]]) -> None:
        """Each member sees exactly the others on its side, as after a real netsplit."""
        for side in map(list, sides):
            for node in side:
                self.set_view(node, [other for other in side if other != node])

    def cut(self, a: str, b: str) -> None:
        """Lose only the link between ``a`` and ``b`` (a partial partition)."""
        self.set_view(a, [n for n in self.nodes[a] if n != b])
        self.set_view(b, [n for n in self.nodes[b] if n != a])


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve simulated members' views (inside the pod network).")
    parser.add_argument("--control", required=True, help="ADDRESS:PORT of the control API")
    host, _, port = parser.parse_args().control.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_Server().serve(host, int(port)))


if __name__ == "__main__":
    main()

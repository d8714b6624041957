"""The demo's members: real Erlang nodes (Debian's ``erl``), one per pod, each inside the
pod network at its pod's IP, named as conclave names it (``chat@<pod IP>``).

Each node starts **alone** and never connects on its own: ``dist_auto_connect never``
(no connection is made just because a message is sent) and ``connect_all false`` (global
does not connect the nodes it hears of), so every link between them is one that conclave's
mesh asked for. There is no EPMD (one per network namespace would refuse a second
``chat@``): every node listens on one fixed distribution port at its own IP, and connects
from that IP too, as a pod would. The cookie is in a file under the work directory (a
``HOME`` of the nodes' own), never on a command line. A tiny module, compiled by erlc
into the work directory, starts each node's pg scopes and its processes in the groups.

The demo asks the nodes directly, as a hidden node (never in their ``nodes()``), with the
operator's own distribution client: to see their views, to make each side of a network
cut drop its links across it, and to kill a group's processes. Must never: connect two
members (that is the operator's job, and the demo's point).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from conclave.adapters import erlang
from conclave.adapters.distribution import to_erlang
from conclave.api import terms
from conclave_harness.errors import StartupError
from conclave_harness.localcluster import PodNetwork

TOOLS = ("erl", "erlc")
DISTRIBUTION_PORT = 4370
START_TIMEOUT = 20.0
CALL_TIMEOUT = 0.5
MODULE = "conclave_demo"
SOURCE = """\
-module(conclave_demo).
-export([start/1, kill/2]).

%% Starts each pg scope and, in it, N processes in the group; they wait to be killed.
start(Groups) ->
    [begin
         case pg:start(Scope) of
             {ok, _} -> ok;
             {error, {already_started, _}} -> ok
         end,
         [ok = pg:join(Scope, Group, spawn(fun() -> receive stop -> ok end end))
          || _ <- lists:seq(1, N)]
     end || {Scope, Group, N} <- Groups],
    ok.

%% Kills this node's processes in the group; returns how many there were.
kill(Scope, Group) ->
    Pids = pg:get_local_members(Scope, Group),
    [exit(Pid, kill) || Pid <- Pids],
    length(Pids).
"""

Groups = Mapping[tuple[str, str], int]
"""(pg scope, group), both as Erlang literals → how many processes a node starts in it."""


@dataclasses.dataclass
class _Node:
    ip: str
    process: subprocess.Popen[bytes]
    frozen: bool = False


def _erlang_ip(ip: str) -> str:
    return "{" + ip.replace(".", ",") + "}"


class ErlangNodes:
    """Starts, asks, freezes and stops the demo's Erlang nodes. ``adopt(name, pid)`` is told
    of each node once it answers (the demo records it for `conclave local-cluster down`).

    Use ``with``, or ``prepare`` first and ``stop`` at the end; ``hang_up`` (async) closes
    the demo's own connections and leaves the nodes running."""

    def __init__(
        self,
        network: PodNetwork,
        workdir: Path,
        adopt: Callable[[str, int], None] | None = None,
    ) -> None:
        self.network = network
        self.workdir = workdir
        self.adopt = adopt
        self.cookie = secrets.token_urlsafe(24)
        self._nodes: dict[str, _Node] = {}
        self._client: erlang.Client | None = None

    def __enter__(self) -> ErlangNodes:
        self.prepare()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def prepare(self) -> None:
        """Compile the module and write the cookie file. Raises StartupError without erl."""
        missing = [tool for tool in TOOLS if shutil.which(tool) is None]
        if missing:
            raise StartupError(
                f"The demo's members are real Erlang nodes: {' and '.join(missing)} not found "
                "(Debian's erlang-base; `make demo` installs it)"
            )
        home = self.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie_file = home / ".erlang.cookie"
        cookie_file.unlink(missing_ok=True)
        # Readable by its owner only: erl refuses a cookie file that others can read.
        with os.fdopen(os.open(cookie_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400), "w") as file:
            file.write(self.cookie)
        source = self.workdir / f"{MODULE}.erl"
        source.write_text(SOURCE)
        compiled = subprocess.run(
            ["erlc", "-o", str(self.workdir), str(source)], capture_output=True, text=True, check=False
        )
        if compiled.returncode != 0:
            raise StartupError(
                f"erlc could not compile the demo's module: {compiled.stdout}{compiled.stderr}"
            )

    def ip(self, name: str) -> str:
        return self._nodes[name].ip

    async def start(self, nodes: Mapping[str, tuple[str, Groups]]) -> None:
        """Start a node per ``name: (ip, groups)``, all at once, each alone; return once every
        one answers over distribution. Raises StartupError."""
        for name, (ip, groups) in nodes.items():
            self._nodes[name] = _Node(ip, self._spawn(name, ip, groups))
        await asyncio.gather(*(self._answering(name) for name in nodes))

    def _spawn(self, name: str, ip: str, groups: Groups) -> subprocess.Popen[bytes]:
        address = _erlang_ip(ip)
        joins = ", ".join(
            f"{{{scope}, {group}, {count}}}" for (scope, group), count in groups.items() if count
        )
        command = [
            "erl", "-noinput", "-name", name, "-pa", str(self.workdir),
            "-start_epmd", "false", "-erl_epmd_port", str(DISTRIBUTION_PORT),
            "-kernel", "inet_dist_use_interface", address,
            "inet_dist_connect_options", f"[{{ip,{address}}}]",
            "dist_auto_connect", "never", "connect_all", "false",
            "-eval", f"{MODULE}:start([{joins}])",
        ]  # fmt: skip
        with (self.workdir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                self.network.command(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "HOME": str(self.workdir / "home")},
                start_new_session=True,  # a Ctrl-C meant for the demo does not reach it
            )

    async def _answering(self, name: str) -> None:
        node = self._nodes[name]
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if node.process.poll() is not None:
                log = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise StartupError(f"Erlang node {name} exited with {node.process.returncode}: {log}")
            try:
                await erlang.nodes(self._caller(), name, node.ip, CALL_TIMEOUT, port=DISTRIBUTION_PORT)
                break
            except erlang.DistributionError as error:
                if time.monotonic() > deadline:
                    raise StartupError(
                        f"Erlang node {name} did not answer within {START_TIMEOUT:.0f}s: {error}"
                    ) from error
                await asyncio.sleep(0.05)
        if self.adopt is not None:
            self.adopt(f"erlang-{name}", node.process.pid)

    def _caller(self) -> erlang.Client:
        if self._client is None:
            self._client = erlang.Client(f"conclave-demo-observer@{self.network.host_address}", self.cookie)
        return self._client

    async def _call(self, name: str, module: str, function: str, args: list[Any]) -> Any:
        node = self._nodes[name]
        return await self._caller().call(
            name, node.ip, module, function, args, timeout=CALL_TIMEOUT, port=DISTRIBUTION_PORT
        )

    async def views(self) -> dict[str, frozenset[str] | None]:
        """Each running node's own ``erlang:nodes()``, None when it did not answer; frozen
        nodes are left out (they cannot answer)."""
        names = [name for name, node in self._nodes.items() if not node.frozen]

        async def view(name: str) -> frozenset[str] | None:
            node = self._nodes[name]
            try:
                return await erlang.nodes(self._caller(), name, node.ip, CALL_TIMEOUT, port=DISTRIBUTION_PORT)
            except erlang.DistributionError:
                return None

        return dict(zip(names, await asyncio.gather(*(view(name) for name in names)), strict=True))

    async def disconnect(self, links: Iterable[tuple[str, str]]) -> None:
        """Make each ``(node, peer)``'s node drop its link to the peer (``disconnect_node``),
        all at once. Raises DistributionError."""
        await asyncio.gather(
            *(self._call(node, "erlang", "disconnect_node", [erlang.atom(peer)]) for node, peer in links)
        )

    async def kill_processes(self, scope: str, group: str) -> dict[str, int]:
        """Kill every node's processes in the pg group (Erlang literals); return how many
        each node had. Raises DistributionError."""
        args = [to_erlang(terms.parse(scope)), to_erlang(terms.parse(group))]
        names = [name for name, node in self._nodes.items() if not node.frozen]
        killed = await asyncio.gather(*(self._call(name, MODULE, "kill", args) for name in names))
        return {name: count for name, count in zip(names, killed, strict=True) if count}

    def freeze(self, name: str) -> None:
        """SIGSTOP: the node neither answers nor closes a socket, as when its host vanishes."""
        os.kill(self._nodes[name].process.pid, signal.SIGSTOP)
        self._nodes[name].frozen = True

    def kill(self, name: str) -> None:
        """SIGKILL the node (frozen or not) and reap it."""
        node = self._nodes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            node.process.kill()
        node.process.wait()

    async def hang_up(self) -> None:
        """Close the demo's own connections; the nodes keep running."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    def stop(self) -> None:
        """Kill every node and reap it (they keep no state worth a graceful stop)."""
        for name in list(self._nodes):
            self.kill(name)

"""The Erlang distribution client against real BEAM nodes (Debian's OTP 25 and Elixir) in the
pod network: views equal the nodes' own answers, the operator stays hidden, and every way
to fail has its reason, within its timeout.

Each node runs a tiny evaluator on its stdin (``Beam.ask``): the test asks the node itself,
not through the client, and compares. One EPMD serves the pod network, so node names before
``@`` differ, except on the fixed-port nodes, which use no EPMD (PITFALLS §6). Members that
garble the protocol are scripted in tests/unit/test_erlang_broken_members.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from conclave.adapters import erlang
from conclave.adapters.erlang import epmd, handshake, terms
from conclave_harness.localcluster import PodNetwork

pytestmark = pytest.mark.skipif(shutil.which("erl") is None, reason="needs Erlang (make test installs it)")

COOKIE = "conclave-erl-test"
FIXED_PORT = 4470
NO_EPMD_PORT = 4471
"""Where fixed-port nodes look for EPMD: nothing listens there, so they never register."""
ANSWER = "@@ "
ERLANG_EVALUATOR = """
Reply = fun(V) -> io:format("@@ ~s~n", [binary:encode_hex(term_to_binary(V, [{minor_version, 2}]))]) end,
Eval = fun(Line) ->
    try {ok, T, _} = erl_scan:string(Line), {ok, E} = erl_parse:parse_exprs(T),
        {value, V, _} = erl_eval:exprs(E, []), V
    catch C:R -> {evaluator_error, C, R} end end,
Loop = fun L() -> case io:get_line("") of eof -> halt(); Line -> Reply(Eval(Line)), L() end end,
Reply(node()), Loop().
"""
ELIXIR_EVALUATOR = """
reply = fn v -> IO.puts("@@ " <> Base.encode16(:erlang.term_to_binary(v, minor_version: 2))) end
loop = fn loop ->
  case IO.gets("") do
    :eof -> System.halt()
    line -> reply.(try do elem(Code.eval_string(line), 0) catch k, r -> {:evaluator_error, k, r} end)
            loop.(loop)
  end
end
reply.(node())
loop.(loop)
"""
names = (f"n{index}x{uuid.uuid4().hex[:4]}" for index in itertools.count())


@dataclasses.dataclass
class Beam:
    """A real node in the pod network, asked through its own evaluator on stdin."""

    name: str
    address: str
    port: int | None
    process: asyncio.subprocess.Process
    output: list[str] = dataclasses.field(default_factory=list)

    async def ask(self, expression: str, timeout: float = 30.0) -> Any:
        """The node's own answer to one Erlang (or, on Elixir, Elixir) expression."""
        assert self.process.stdin is not None
        self.process.stdin.write(expression.encode() + b"\n")
        await self.process.stdin.drain()
        return await self.answer(timeout)

    async def answer(self, timeout: float = 30.0) -> Any:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.process.stdout.readline()).decode(errors="replace")
                if not line:
                    raise AssertionError(f"{self.name} exited; its output:\n{''.join(self.output)}")
                if not line.startswith(ANSWER):
                    self.output.append(line)
                    continue
                value = terms.decode(bytes.fromhex(line[len(ANSWER) :]))
                assert not (isinstance(value, tuple) and terms.atom_text(value[0]) == "evaluator_error"), (
                    value
                )
                return value

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


def node_set(value: Any) -> frozenset[str]:
    return frozenset(terms.atom_text(item) or "?" for item in value)


@pytest.fixture(scope="session")
def epmd_daemon(pod_network: PodNetwork) -> Iterator[None]:
    """One EPMD in the pod network, on every pod IP's port 4369; ours to stop."""
    process = subprocess.Popen(
        pod_network.command(["epmd", "-d"]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    line = process.stderr.readline()  # printed once it listens, or why it could not
    assert "epmd running" in line, f"epmd did not start: {line}{process.stderr.read()}"
    yield
    process.kill()
    process.wait()
    process.stderr.close()


@pytest.fixture
async def beams(pod_network: PodNetwork, epmd_daemon: None) -> AsyncIterator[Callable[..., Awaitable[Beam]]]:
    """Start real nodes, each on a fresh pod IP; all are stopped and their IPs released."""
    started: list[Beam] = []

    async def start(
        *, name: str | None = None, address: str | None = None, port: int | None = None,
        ticktime: int | None = None, elixir: bool = False,
    ) -> Beam:  # fmt: skip
        address = address or pod_network.allocate()
        name = name or f"{next(names)}@{address}"
        erl_flags = ["-kernel", "inet_dist_use_interface", "{" + address.replace(".", ",") + "}"]
        erl_flags += ["-start_epmd", "false"] + (["-erl_epmd_port", str(port)] if port else [])
        erl_flags += ["-kernel", "net_ticktime", str(ticktime)] if ticktime else []
        environment = ["env", f"ERL_EPMD_PORT={NO_EPMD_PORT}"] if port else []
        if elixir:
            argv = ["elixir", "--name", name, "--cookie", COOKIE, "--erl", " ".join(erl_flags)]
            argv += ["-e", ELIXIR_EVALUATOR]
        else:
            argv = ["erl", "-noshell", "-name", name, "-setcookie", COOKIE, *erl_flags]
            argv += ["-eval", ERLANG_EVALUATOR]
        process = await asyncio.create_subprocess_exec(
            *pod_network.command([*environment, *argv]), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, limit=2**20,
        )  # fmt: skip
        beam = Beam(name, address, port, process)
        started.append(beam)
        assert terms.atom_text(await beam.answer()) == name  # distribution is up: it registered
        return beam

    yield start
    for beam in started:
        await beam.stop()
    for address in {beam.address for beam in started}:
        pod_network.release(address)


@pytest.fixture
async def client(pod_network: PodNetwork) -> AsyncIterator[erlang.Client]:
    async with erlang.Client(f"conclave-{uuid.uuid4().hex[:6]}@{pod_network.host_address}", COOKIE) as made:
        yield made


async def view(client: erlang.Client, beam: Beam, timeout: float = 2.0) -> frozenset[str]:
    return await erlang.nodes(client, beam.name, beam.address, timeout, port=beam.port)


async def connect(beam: Beam, other: Beam) -> None:
    assert await beam.ask(f"net_kernel:connect_node('{other.name}').") is True


async def test_a_nodes_view_is_its_own_nodes_through_a_join(
    beams: Callable[..., Awaitable[Beam]], client: erlang.Client
) -> None:
    a, b, c = [await beams() for _ in range(3)]
    assert await view(client, a) == frozenset() == node_set(await a.ask("nodes()."))
    assert await b.ask("net_kernel:monitor_nodes(true).") == erlang.atom("ok")
    await connect(a, b)
    await connect(a, c)
    assert await view(client, a) == node_set(await a.ask("nodes().")) == {b.name, c.name}
    # global then connects b and c as well (connect_all): wait for b to see c come up
    assert await b.ask(f"receive {{nodeup, '{c.name}'}} -> up after 10000 -> no end.") == erlang.atom("up")
    for beam in (b, c):
        assert (
            await view(client, beam)
            == node_set(await beam.ask("nodes()."))
            == {a.name, b.name, c.name} - {beam.name}
        )


async def test_the_operator_is_only_ever_a_hidden_node(
    beams: Callable[..., Awaitable[Beam]], client: erlang.Client
) -> None:
    a, b = await beams(), await beams()
    await connect(a, b)
    await view(client, a)
    visible, hidden = await a.ask("{nodes(), nodes(hidden)}.")
    assert (node_set(visible), node_set(hidden)) == (frozenset({b.name}), frozenset({client.own_name}))
    b_visible, b_hidden = await b.ask("{nodes(), nodes(hidden)}.")
    assert (node_set(b_visible), node_set(b_hidden)) == (frozenset({a.name}), frozenset())  # not passed on


async def test_a_wrong_cookie_is_rejected_and_breaks_nothing(
    beams: Callable[..., Awaitable[Beam]], client: erlang.Client, pod_network: PodNetwork
) -> None:
    a = await beams()
    async with erlang.Client(f"intruder@{pod_network.host_address}", "not-the-cookie") as intruder:
        with pytest.raises(erlang.CookieRejected) as raised:
            await view(intruder, a)
        assert "not-the-cookie" not in str(raised.value) + repr(raised.value) + repr(intruder)
    assert node_set(await a.ask("nodes(connected).")) == frozenset()
    assert await view(client, a) == frozenset()


async def test_a_node_missing_from_epmd_is_not_registered(
    beams: Callable[..., Awaitable[Beam]], client: erlang.Client
) -> None:
    a = await beams()
    with pytest.raises(erlang.NotRegistered):
        await erlang.nodes(client, f"ghost@{a.address}", a.address, 2.0)
    with pytest.raises(erlang.WrongNode):  # EPMD knows the name; the node is someone else
        await erlang.nodes(client, a.name.replace(a.address, "10.247.255.254"), a.address, 2.0)


async def test_a_member_that_never_answers_times_out_without_delaying_a_healthy_one(
    beams: Callable[..., Awaitable[Beam]], client: erlang.Client, pod_network: PodNetwork
) -> None:
    a = await beams()
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(accept_and_say_nothing, pod_network.host_address, 0)
    silent_port = silent.sockets[0].getsockname()[1]
    started = time.monotonic()
    finished: dict[str, float] = {}

    async def timed(name: str, call: Awaitable[Any]) -> Any:
        try:
            return await call
        finally:
            finished[name] = time.monotonic() - started

    async with silent:
        results: tuple[Any, Any] = await asyncio.gather(
            timed("hung", erlang.nodes(client, f"mute@{pod_network.host_address}", pod_network.host_address,
                                       1.0, port=silent_port)),
            timed("healthy", view(client, a, timeout=1.0)),
            return_exceptions=True,
        )  # fmt: skip
        for writer in held:
            writer.close()
    hung, healthy = results
    assert isinstance(hung, erlang.Timeout)
    assert "while connecting" in hung.message
    assert healthy == frozenset()
    assert finished["healthy"] < 0.5, finished
    assert 1.0 <= finished["hung"] < 1.5, finished


async def test_nodes_on_a_fixed_port_without_epmd_answer(
    beams: Callable[..., Awaitable[Beam]], client: erlang.Client, pod_network: PodNetwork
) -> None:
    # PITFALLS §6: several chat@<ip> nodes in one network namespace, each on port N, no EPMD
    first, second = pod_network.allocate(), pod_network.allocate()
    a = await beams(name=f"chat@{first}", address=first, port=FIXED_PORT)
    b = await beams(name=f"chat@{second}", address=second, port=FIXED_PORT)
    await connect(a, b)
    assert await view(client, a) == frozenset({b.name})
    assert await view(client, b) == frozenset({a.name})
    with pytest.raises(erlang.NotRegistered):  # EPMD knows neither; only the port leads to them
        await erlang.nodes(client, a.name, a.address, 2.0)
    empty = pod_network.allocate()
    try:
        with pytest.raises(erlang.ConnectionRefused):
            await erlang.nodes(client, f"chat@{empty}", empty, 2.0, port=FIXED_PORT)
    finally:
        pod_network.release(empty)
    async with erlang.Client(f"c@{pod_network.host_address}", COOKIE, epmd_port=NO_EPMD_PORT) as other:
        with pytest.raises(erlang.EpmdUnreachable):
            await erlang.nodes(other, a.name, a.address, 2.0)


async def our_connection_id(client: erlang.Client, beam: Beam) -> int:
    args = [erlang.atom("hidden"), {erlang.atom("connection_id"): True}]
    hidden = await client.call(beam.name, beam.address, "erlang", "nodes", args, timeout=2.0, port=beam.port)
    (info,) = [info for name, info in hidden if erlang.atom_text(name) == client.own_name]
    connection_id: int = info[erlang.atom("connection_id")]
    return connection_id


async def test_a_connection_is_reused_and_opened_again_after_the_node_restarts(
    beams: Callable[..., Awaitable[Beam]], client: erlang.Client
) -> None:
    a = await beams()
    first = await our_connection_id(client, a)
    with pytest.raises(erlang.BadRpc) as raised:
        await client.call(a.name, a.address, "no_such_module", "f", [1], timeout=2.0)
    assert erlang.atom_text(raised.value.detail[0]) == "EXIT"
    assert await our_connection_id(client, a) == first  # the same connection, even after a badrpc
    await a.stop()
    again = await beams(name=a.name, address=a.address)
    assert await view(client, again) == frozenset()
    assert node_set(await again.ask("nodes(hidden).")) == {client.own_name}


async def test_ticks_keep_an_idle_connection_past_the_nodes_net_ticktime(
    beams: Callable[..., Awaitable[Beam]], client: erlang.Client, pod_network: PodNetwork
) -> None:
    a = await beams(ticktime=4)
    assert await a.ask("net_kernel:monitor_nodes(true, [{node_type, hidden}]).") == erlang.atom("ok")
    first = await our_connection_id(client, a)
    # A connection that never answers ticks, beside ours: the node must drop it, and only it.
    registration = await epmd.lookup(a.name, a.name.split("@")[0], a.address)
    reader, writer = await asyncio.open_connection(a.address, registration.port)
    mute = f"mute@{pod_network.host_address}"
    await handshake.perform(
        a.name, reader, writer, own_name=mute, cookie=handshake.Cookie(COOKIE), creation=5
    )
    try:
        down = await a.ask(f"receive {{nodedown, '{mute}', _}} -> down after 30000 -> still_up end.")
    finally:
        writer.close()
    assert down == erlang.atom("down")  # after net_ticktime (4s) without a word from it
    assert node_set(await a.ask("nodes(hidden).")) == {client.own_name}
    assert await our_connection_id(client, a) == first


async def test_an_elixir_node_answers_like_an_erlang_one(
    beams: Callable[..., Awaitable[Beam]], client: erlang.Client
) -> None:
    if shutil.which("elixir") is None:
        pytest.skip("needs Elixir (Debian's elixir)")
    a, ex = await beams(), await beams(elixir=True)
    assert await ex.ask(f':net_kernel.connect_node(:"{a.name}")') is True
    assert await view(client, ex) == node_set(await ex.ask("Node.list()")) == {a.name}
    assert node_set(await ex.ask("Node.list(:hidden)")) == {client.own_name}
    version = await client.call(ex.name, ex.address, "Elixir.System", "version", [], timeout=2.0)
    assert isinstance(version, terms.Binary)
    assert version.value.startswith(b"1.")


async def test_pg_local_members_are_the_real_processes(
    beams: Callable[..., Awaitable[Beam]], client: erlang.Client
) -> None:
    a = await beams()
    group = '{subscribers, <<"orders">>}'
    pids = await a.ask(
        "begin {ok, _} = pg:start(conclave_scope), Ps = [spawn(fun() -> receive stop -> ok end end) "
        f"|| _ <- [1, 2, 3]], ok = pg:join(conclave_scope, {group}, Ps), Ps end."
    )

    async def members() -> Any:
        args = [erlang.atom("conclave_scope"), (erlang.atom("subscribers"), terms.Binary(b"orders"))]
        return await client.call(a.name, a.address, "pg", "get_local_members", args, timeout=2.0)

    assert sorted(map(pid_key, await members())) == sorted(map(pid_key, pids))
    left = await a.ask(
        f"begin {{Ref, _}} = pg:monitor(conclave_scope, {group}), "
        f"Ps = pg:get_local_members(conclave_scope, {group}), [P ! stop || P <- Ps], "
        "Wait = fun W(0) -> left; W(N) -> receive {Ref, leave, _, L} -> "
        "W(N - length(L)) after 10000 -> timeout end end, Wait(length(Ps)) end."
    )
    assert left == erlang.atom("left")
    assert await members() == []


def pid_key(pid: Any) -> tuple[str | None, bytes, bytes, bytes]:
    return (erlang.atom_text(pid.node), pid.id, pid.serial, pid.creation)

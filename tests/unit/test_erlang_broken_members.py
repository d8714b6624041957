"""The Erlang client against scripted members on loopback: a member that stalls, garbles or
drops the conversation at any stage is an error with its reason, within the call's
timeout, and the next call opens a fresh connection.

The scripted member plays the accepting side of the handshake with this module's own
bytes (``accept_handshake``); real nodes are in tests/integration/test_erlang_client.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from conclave.adapters import erlang
from conclave.adapters.erlang import framing, handshake, terms

COOKIE = "unit-cookie"
HOST = "127.0.0.1"
NAME = f"member@{HOST}"
TIMEOUT = 0.3
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def member(script: Script) -> AsyncIterator[int]:
    """A loopback server that plays ``script`` on every connection; yields its port."""
    tasks: list[asyncio.Task[Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    async with server:
        yield server.sockets[0].getsockname()[1]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def read_handshake_message(reader: asyncio.StreamReader) -> bytes:
    return await reader.readexactly(struct.unpack(">H", await reader.readexactly(2))[0])


async def accept_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The accepting side of a correct handshake, as ``NAME`` with ``COOKIE``."""
    await read_handshake_message(reader)  # send_name
    challenge = b"N" + struct.pack(">QIIH", handshake.OUR_FLAGS | 1, 77, 3, len(NAME)) + NAME.encode()
    writer.write(handshake.frame(b"sok") + handshake.frame(challenge))
    reply = await read_handshake_message(reader)
    (theirs,) = struct.unpack(">I", reply[1:5])
    writer.write(handshake.frame(b"a" + handshake.Cookie(COOKIE).digest(theirs)))


async def read_call(reader: asyncio.StreamReader) -> framing.Delivery:
    """The next non-tick packet, parsed."""
    while not (body := await framing.read_packet(NAME, reader)):
        pass
    return framing.parse(NAME, body)


async def answer_calls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every rex call with ``[NAME]``, as ``rex`` does: ``Pid ! {Ref, Result}``."""
    while True:
        delivery = await read_call(reader)
        _, (pid, reference), _ = delivery.message
        writer.write(framing.packet((framing.SEND, terms.atom(""), pid), (reference, [terms.atom(NAME)])))


@pytest.fixture
async def client() -> AsyncIterator[erlang.Client]:
    async with erlang.Client(f"conclave@{HOST}", COOKIE) as made:
        yield made


async def timed_nodes(client: erlang.Client, port: int) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        return await erlang.nodes(client, NAME, HOST, TIMEOUT, port=port), time.monotonic() - started
    except erlang.DistributionError as error:
        return error, time.monotonic() - started


async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()


async def status_then_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(handshake.frame(b"sok"))
    await reader.read()


async def half_a_challenge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(handshake.frame(b"sok") + b"\x00\x40N\x00\x00")
    await reader.read()


async def not_allowed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_handshake_message(reader)
    writer.write(handshake.frame(b"snot_allowed"))


def then(reply: bytes) -> Script:
    """Complete the handshake, take the call, answer ``reply``."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_handshake(reader, writer)
        await read_call(reader)
        writer.write(reply)
        await reader.read()

    return script


async def hang_up_after_the_call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await accept_handshake(reader, writer)
    await read_call(reader)


async def answer_badrpc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await accept_handshake(reader, writer)
    _, (pid, reference), _ = (await read_call(reader)).message
    badrpc = (terms.atom("badrpc"), (terms.atom("EXIT"), COOKIE))  # a reason that quotes the cookie
    writer.write(framing.packet((framing.SEND, terms.atom(""), pid), (reference, badrpc)))
    await reader.read()


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        (say_nothing, "Timeout"),
        (status_then_nothing, "Timeout"),
        (half_a_challenge, "Timeout"),
        (not_allowed, "HandshakeFailed"),
        (then(b"\xff\xff\xff\xf0"), "ProtocolError"),
        (then(struct.pack(">I", 5) + b"p\x83\x68\x09\x01"), "ProtocolError"),
        (then(struct.pack(">I", 3) + b"\x83D\x00"), "ProtocolError"),
        (hang_up_after_the_call, "ConnectionLost"),
        (answer_badrpc, "BadRpc"),
    ],
    ids=[
        "a member that accepts and says nothing times out",
        "a member that stalls after its status times out",
        "a member that stalls in the middle of its challenge times out",
        "a member that does not allow us says so",
        "an oversized length prefix is a protocol error at once",
        "a packet that holds no term is a protocol error",
        "a packet with a distribution header we never asked for is a protocol error",
        "a member that hangs up before replying lost the connection",
        "a badrpc answer is an error that never quotes the cookie",
    ],
)
async def test_a_broken_member_is_an_error_with_its_reason_within_the_timeout(
    client: erlang.Client, script: Script, reason: str
) -> None:
    async with member(script) as port:
        error, elapsed = await timed_nodes(client, port)
    assert isinstance(error, erlang.DistributionError)
    assert (error.reason, elapsed < TIMEOUT + 0.2) == (reason, True)
    assert COOKIE not in str(error)


async def test_garbage_from_epmd_means_epmd_is_unreachable() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(b"HTTP/1.1 404 Not Found\r\n\r\n")

    async with member(http) as port, erlang.Client(f"conclave@{HOST}", COOKIE, epmd_port=port) as client:
        with pytest.raises(erlang.EpmdUnreachable, match="not a PORT2_RESP"):
            await erlang.nodes(client, NAME, HOST, TIMEOUT)


async def test_after_a_protocol_error_the_next_call_opens_a_new_connection(client: erlang.Client) -> None:
    connections = 0

    async def garbles_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await accept_handshake(reader, writer)
        if connections == 1:
            await read_call(reader)
            writer.write(b"\xff\xff\xff\xf0")
            await reader.read()
        else:
            await answer_calls(reader, writer)

    async with member(garbles_first) as port:
        first, _ = await timed_nodes(client, port)
        second, _ = await timed_nodes(client, port)
        third, _ = await timed_nodes(client, port)
    assert isinstance(first, erlang.ProtocolError)
    assert (second, third, connections) == (frozenset({NAME}), frozenset({NAME}), 2)

"""One authenticated distribution connection to one node, and calls to its ``rex`` server.

Owns opening a connection (EPMD or a fixed port, TCP, the handshake), the task that reads
it (ticks answered, replies matched to their calls by reference), and one call as
``rpc:call`` makes it to a node without ``erpc``: a REG_SEND to ``rex`` of
``{'$gen_call', {Pid, Ref}, {call, Mod, Fun, Args, user}}``, answered by
``Pid ! {Ref, Result}`` (kernel rpc.erl, rex's ``handle_call({call, ...})``; the group
leader ``user`` sends the call's output to the node's own console).

Must never: apply a timeout of its own (the caller's deadline bounds every await here),
let a member's bytes escape as anything but DistributionError, or keep a socket open after
a failed open, a protocol error or ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
from typing import Any

from conclave.adapters.erlang import epmd, errors, framing, handshake, terms

logger = logging.getLogger(__name__)

REX = "rex"


def split_node(node: str) -> tuple[str, str]:
    """``name@host`` as (name, host); raises InvalidNodeName."""
    name, at, host = node.partition("@")
    if not at or not name or not host or len(node.encode("utf-8")) > 255:
        raise errors.InvalidNodeName(node or "''", "a node name is name@host, at most 255 bytes")
    return name, host


class Connection:
    """An open connection to ``node``; ``open`` makes one, ``call`` uses it, ``close`` ends it."""

    def __init__(
        self,
        node: str,
        target: tuple[str, int | None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        peer: handshake.Peer,
        own_name: str,
        creation: int,
        cookie: handshake.Cookie,
        max_packet: int,
    ) -> None:
        self.node = node
        self.target = target
        """(address, fixed port or None for EPMD): what this connection was opened for."""
        self.peer = peer
        self._reader = reader
        self._writer = writer
        self._cookie = cookie
        self._max_packet = max_packet
        self._own = terms.atom(own_name)
        self._creation = struct.pack(">I", creation)
        self._pid = terms.Pid(self._own, struct.pack(">I", 1), struct.pack(">I", 0), self._creation)
        self._references = itertools.count(1)
        self._pending: dict[bytes, asyncio.Future[Any]] = {}
        self._drain = asyncio.Lock()
        self._lost: errors.DistributionError | None = None
        self._task = asyncio.create_task(self._read_loop(), name=f"erlang-distribution-{node}")

    def __repr__(self) -> str:
        state = "open" if self.alive else f"lost ({self._lost.reason if self._lost else 'closed'})"
        return f"<Connection to {self.node} at {self.target[0]}:{self.target[1] or 'epmd'}, {state}>"

    @classmethod
    async def open(
        cls,
        node: str,
        address: str,
        *,
        own_name: str,
        cookie: handshake.Cookie,
        creation: int,
        port: int | None = None,
        epmd_port: int = epmd.DEFAULT_PORT,
        max_packet: int = framing.MAX_PACKET,
    ) -> Connection:
        """Connect to ``node`` at ``address`` (its fixed ``port``, else the one EPMD gives).

        Unbounded in time: the caller applies its deadline, and a cancelled open closes its
        socket. Raises every DistributionError but Timeout, ConnectionLost and BadRpc.
        """
        name, _ = split_node(node)
        if port is None:
            port = (await epmd.lookup(node, name, address, epmd_port)).port
            target: tuple[str, int | None] = (address, None)
        else:
            target = (address, port)
        try:
            reader, writer = await asyncio.open_connection(address, port)
        except OSError as error:
            raise errors.ConnectionRefused(
                node, f"no connection to {address}:{port}: {error.strerror or type(error).__name__}"
            ) from None
        try:
            peer = await handshake.perform(
                node, reader, writer, own_name=own_name, cookie=cookie, creation=creation
            )
        except BaseException:
            writer.close()
            raise
        logger.debug("Connected to node %s at %s:%s as a hidden node", node, address, port)
        return cls(
            node,
            target,
            reader,
            writer,
            peer=peer,
            own_name=own_name,
            creation=creation,
            cookie=cookie,
            max_packet=max_packet,
        )

    @property
    def alive(self) -> bool:
        """Whether the connection is still open and read."""
        return self._lost is None and not self._task.done()

    async def call(self, module: str, function: str, args: list[Any]) -> Any:
        """``module:function(*args)`` on the node through ``rex``; the decoded result.

        Waits for the reply without a bound: the caller's timeout cancels the wait (a late
        reply is then dropped). Raises BadRpc for ``{badrpc, Reason}``, ConnectionLost or
        ProtocolError when the connection fails first, TypeError for unencodable args.
        """
        if self._lost is not None:
            raise self._copy(self._lost)
        number = next(self._references)
        reference = terms.Reference(
            self._own, struct.pack(">III", number & 0x3FFFF, (number >> 18) & 0xFFFFFFFF, 0), self._creation
        )
        request = (
            terms.atom("$gen_call"),
            (self._pid, reference),
            (terms.atom("call"), terms.atom(module), terms.atom(function), list(args), terms.atom("user")),
        )
        data = framing.reg_send(self._pid, REX, request)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[bytes(reference.id)] = future
        try:
            await self._send(data)
            result = await future
        finally:
            self._pending.pop(bytes(reference.id), None)
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a failure raced with a cancellation is not logged
        if isinstance(result, tuple) and len(result) == 2 and terms.atom_text(result[0]) == "badrpc":
            detail = self._cookie.redact(repr(result[1]))
            raise errors.BadRpc(
                self.node, f"{module}:{function}/{len(args)} failed: {detail[:300]}", detail=result[1]
            )
        return result

    async def close(self) -> None:
        """Stop reading, fail the calls still waiting, close the socket."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def _send(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            async with self._drain:
                await self._writer.drain()
        except OSError as error:
            self._fail(errors.ConnectionLost(self.node, f"sending failed: {error.strerror or error}"))
            raise self._copy(self._lost or errors.ConnectionLost(self.node, "sending failed")) from None

    async def _read_loop(self) -> None:
        try:
            while True:
                body = await framing.read_packet(self.node, self._reader, self._max_packet)
                if not body:
                    self._writer.write(framing.TICK)
                    continue
                self._deliver(framing.parse(self.node, body))
        except errors.DistributionError as error:
            logger.debug("Lost the connection to node %s: %s", self.node, error.message)
            self._fail(error)
        except asyncio.CancelledError:
            self._fail(errors.ConnectionLost(self.node, "the client closed the connection"))
            raise
        finally:
            self._writer.close()

    def _deliver(self, delivery: framing.Delivery) -> None:
        message = delivery.message
        if (
            delivery.operation in framing.SENDS
            and isinstance(message, tuple)
            and len(message) == 2
            and isinstance(message[0], terms.Reference)
            and isinstance(message[0].id, bytes)
        ):
            future = self._pending.get(message[0].id)
            if future is not None and not future.done():
                future.set_result(message[1])
        # Anything else (a link, a monitor, a message to no call of ours) is not for us.

    def _fail(self, error: errors.DistributionError) -> None:
        if self._lost is None:
            self._lost = error
        for future in self._pending.values():
            if not future.done():
                future.set_exception(self._copy(error))

    @staticmethod
    def _copy(error: errors.DistributionError) -> errors.DistributionError:
        """A fresh exception of the same reason, so concurrent callers never share a traceback."""
        return type(error)(error.node, error.message)

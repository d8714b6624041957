"""The operator's Erlang distribution client: one hidden connection per member node, kept
open and reused, opened again when lost, and calls to each node under their own timeout.

Owns the connections (keyed by node name), the order in which concurrent callers open one
(one attempt at a time per node; callers to other nodes never wait for it), and turning an
expired deadline into Timeout. Must never: let one node's slowness delay a call to
another, retry a call that was sent (rpc is not idempotent), or show the cookie in a repr,
log or message.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from typing import Any

from conclave.adapters.erlang import epmd, errors, framing, handshake, terms
from conclave.adapters.erlang.connection import Connection, split_node


class Client:
    """Calls Erlang nodes as the hidden node ``own_name`` (``name@host``), with one cookie.

    ``cookie`` is the cookie, or a function returning it, asked on each new connection (so
    a rotated Secret takes effect without a restart; open connections stay as they are).
    Nodes with different cookies need different clients. Use ``async with`` or ``close``.
    """

    def __init__(
        self,
        own_name: str,
        cookie: str | Callable[[], str],
        *,
        epmd_port: int = epmd.DEFAULT_PORT,
        max_packet: int = framing.MAX_PACKET,
    ) -> None:
        split_node(own_name)
        self.own_name = own_name
        self._cookie: handshake.Cookie | Callable[[], str] = (
            handshake.Cookie(cookie) if isinstance(cookie, str) else cookie
        )
        self._epmd_port = epmd_port
        self._max_packet = max_packet
        # Our incarnation: pids and references of ours carry it, and the peer drops any
        # whose creation is not the one in our handshake. Never 0 (that means "unknown").
        self._creation = secrets.randbits(32) or 1
        self._connections: dict[str, Connection] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._closed = False

    def __repr__(self) -> str:
        open_count = sum(connection.alive for connection in self._connections.values())
        return f"<Client {self.own_name} ({open_count} open connections)>"

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def call(
        self,
        node: str,
        address: str,
        module: str,
        function: str,
        args: list[Any],
        *,
        timeout: float,
        port: int | None = None,
    ) -> Any:
        """``module:function(*args)`` on ``node`` (reached at ``address``), decoded as
        ``conclave.adapters.erlang.terms`` describes; atoms in ``args`` via ``terms.atom``.

        ``port`` is the node's fixed distribution port (``-erl_epmd_port``); without it,
        EPMD at ``address`` says. Everything (EPMD, connecting, the handshake, the reply)
        happens within ``timeout`` seconds. Raises a DistributionError whose ``reason`` says
        why: Timeout, EpmdUnreachable, NotRegistered, ConnectionRefused, HandshakeFailed,
        ProtocolTooOld, CookieRejected, WrongNode, ConnectionLost, ProtocolError, BadRpc,
        InvalidNodeName.
        """
        if self._closed:
            raise RuntimeError("the Erlang distribution client is closed")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        split_node(node)
        stage = "connecting"
        try:
            async with asyncio.timeout(timeout):
                connection = await self._connection(node, address, port)
                stage = f"waiting for {module}:{function}/{len(args)}"
                return await connection.call(module, function, args)
        except errors.DistributionError:
            raise
        except TimeoutError:
            raise errors.Timeout(node, f"no answer within {timeout:g}s while {stage}") from None

    async def close(self) -> None:
        """Close every connection; calls still waiting fail with ConnectionLost."""
        self._closed = True
        connections, self._connections = list(self._connections.values()), {}
        await asyncio.gather(*(connection.close() for connection in connections))

    async def _connection(self, node: str, address: str, port: int | None) -> Connection:
        """The open connection to ``node`` for this address and port, opened if need be."""
        target = (address, port)
        current = self._connections.get(node)
        if current is not None and current.alive and current.target == target:
            return current
        async with self._opening.setdefault(node, asyncio.Lock()):
            current = self._connections.get(node)
            if current is not None and current.alive and current.target == target:
                return current  # opened by a concurrent caller while this one waited
            if current is not None:
                del self._connections[node]
                with contextlib.suppress(errors.DistributionError):
                    await current.close()
            cookie = (
                self._cookie
                if isinstance(self._cookie, handshake.Cookie)
                else handshake.Cookie(self._cookie())
            )
            connection = await Connection.open(
                node,
                address,
                own_name=self.own_name,
                cookie=cookie,
                creation=self._creation,
                port=port,
                epmd_port=self._epmd_port,
                max_packet=self._max_packet,
            )
            if self._closed:
                await connection.close()
                raise RuntimeError("the Erlang distribution client is closed")
            self._connections[node] = connection
            return connection


async def nodes(
    client: Client, node: str, address: str, timeout: float, port: int | None = None
) -> frozenset[str]:
    """The names of the nodes ``node`` is visibly connected to: its ``erlang:nodes()``.

    Hidden nodes (this client, too) are not in it. Raises what ``Client.call`` raises, and
    ProtocolError when the answer is not a list of atoms.
    """
    result = await client.call(node, address, "erlang", "nodes", [], timeout=timeout, port=port)
    names = [terms.atom_text(item) for item in result] if isinstance(result, list) else [None]
    if any(name is None for name in names):
        raise errors.ProtocolError(node, f"erlang:nodes() answered {repr(result)[:200]}, not a list of atoms")
    return frozenset(name for name in names if name is not None)

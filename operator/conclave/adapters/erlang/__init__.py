"""An asyncio Erlang distribution client: the operator asks member nodes directly, as a
hidden node, with the cluster's cookie.

    async with erlang.Client("conclave@10.0.0.1", cookie) as client:
        connected = await erlang.nodes(client, "chat@10.0.0.5", "10.0.0.5", timeout=1.0)
        members = await client.call("chat@10.0.0.5", "10.0.0.5", "pg", "get_local_members",
                                    [erlang.atom("scope"), erlang.atom("group")], timeout=1.0)

Layers inside: ``screening`` (a linear-time check of term bytes) < ``terms`` (erlang-py,
the External Term Format) < ``epmd`` | ``handshake`` |
``framing`` (the wire, parsers that raise only DistributionError) < ``connection`` (one
socket, its reader, rex calls) < ``client`` (connections per node, timeouts). The errors'
tree is in ``errors``. Must never: import kubernetes, decide anything, or log the cookie.
"""

from conclave.adapters.erlang.client import Client, nodes
from conclave.adapters.erlang.errors import (
    BadRpc,
    ConnectionLost,
    ConnectionRefused,
    CookieRejected,
    DistributionError,
    EpmdUnreachable,
    HandshakeFailed,
    InvalidNodeName,
    NotRegistered,
    ProtocolError,
    ProtocolTooOld,
    Timeout,
    WrongNode,
)
from conclave.adapters.erlang.terms import Atom, atom, atom_text

__all__ = [
    "Atom",
    "BadRpc",
    "Client",
    "ConnectionLost",
    "ConnectionRefused",
    "CookieRejected",
    "DistributionError",
    "EpmdUnreachable",
    "HandshakeFailed",
    "InvalidNodeName",
    "NotRegistered",
    "ProtocolError",
    "ProtocolTooOld",
    "Timeout",
    "WrongNode",
    "atom",
    "atom_text",
    "nodes",
]

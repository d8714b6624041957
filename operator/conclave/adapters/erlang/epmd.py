"""EPMD: which port a node's distribution listens on (PORT_PLEASE2_REQ, erts erl_dist_protocol).

Owns the request bytes, the parser of EPMD's PORT2_RESP and one asyncio lookup. Must never
trust a length in the reply (each is checked against what arrived), read more than a small
reply, or wait without a bound: the caller's deadline applies, and EPMD closes the socket
after its answer, so a complete reply is everything up to end-of-file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct

from conclave.adapters.erlang import errors

DEFAULT_PORT = 4369
PORT_PLEASE2_REQ = 122
PORT2_RESP = 119
DISTRIBUTION_VERSION = 6
"""The handshake this client speaks: version 6, OTP 23 and later."""
MAX_REPLY = 4096
"""Far above any real reply (a 255-byte name and a small extra field)."""


@dataclasses.dataclass(frozen=True)
class Registration:
    """What EPMD knows of a node: its distribution port and the versions it speaks."""

    port: int
    node_type: int
    """77 for a normal node, 72 for a hidden one."""
    protocol: int
    highest_version: int
    lowest_version: int
    name: str


def port_please2_request(name: str) -> bytes:
    """The PORT_PLEASE2_REQ packet (with its 2-byte length) for the name before ``@``."""
    body = bytes([PORT_PLEASE2_REQ]) + name.encode("utf-8")
    return struct.pack(">H", len(body)) + body


def parse_port2_reply(node: str, name: str, reply: bytes) -> Registration:
    """The registration in EPMD's reply to a PORT_PLEASE2_REQ for ``name``.

    Raises NotRegistered when EPMD says there is no such node, ProtocolTooOld when the node
    cannot speak version 6, and EpmdUnreachable for anything that is not a well-formed
    reply about ``name``.
    """
    if len(reply) < 2 or reply[0] != PORT2_RESP:
        raise errors.EpmdUnreachable(node, f"EPMD answered with {_sample(reply)}, not a PORT2_RESP")
    if reply[1] != 0:
        raise errors.NotRegistered(node, f"EPMD has no node named {name!r} registered (result {reply[1]})")
    if len(reply) < 12:
        raise errors.EpmdUnreachable(node, f"EPMD's reply is truncated ({len(reply)} bytes)")
    port, node_type, protocol, highest, lowest, name_length = struct.unpack(">HBBHHH", reply[2:12])
    end_of_name = 12 + name_length
    if len(reply) < end_of_name + 2:
        raise errors.EpmdUnreachable(node, f"EPMD's reply is truncated ({len(reply)} bytes)")
    (extra_length,) = struct.unpack(">H", reply[end_of_name : end_of_name + 2])
    if len(reply) != end_of_name + 2 + extra_length:
        raise errors.EpmdUnreachable(node, f"EPMD's reply has {len(reply)} bytes, not the lengths it gives")
    registered = reply[12:end_of_name].decode("utf-8", errors="replace")
    if registered != name:
        raise errors.EpmdUnreachable(node, f"EPMD answered for {registered[:64]!r}, not {name!r}")
    if port == 0:
        raise errors.EpmdUnreachable(node, "EPMD answered with port 0")
    if highest < DISTRIBUTION_VERSION:
        raise errors.ProtocolTooOld(
            node, f"the node speaks distribution versions {lowest}..{highest}; version 6 (OTP 23+) is needed"
        )
    if lowest > DISTRIBUTION_VERSION:
        raise errors.HandshakeFailed(
            node, f"the node speaks distribution versions {lowest}..{highest}, none of which is 6"
        )
    return Registration(port, node_type, protocol, highest, lowest, registered)


async def lookup(node: str, name: str, address: str, port: int = DEFAULT_PORT) -> Registration:
    """Ask the EPMD at ``address:port`` for ``name``'s registration.

    Unbounded in time: the caller applies its deadline. Raises EpmdUnreachable when EPMD
    cannot be reached or answers nonsense, and what ``parse_port2_reply`` raises.
    """
    try:
        reader, writer = await asyncio.open_connection(address, port)
    except OSError as error:
        raise errors.EpmdUnreachable(
            node, f"cannot reach EPMD at {address}:{port}: {_os_reason(error)}"
        ) from None
    try:
        writer.write(port_please2_request(name))
        await writer.drain()
        reply = await reader.read(MAX_REPLY + 1)
        while reply and len(reply) <= MAX_REPLY:
            more = await reader.read(MAX_REPLY + 1 - len(reply))
            if not more:
                break
            reply += more
    except OSError as error:
        raise errors.EpmdUnreachable(node, f"EPMD at {address}:{port} failed: {_os_reason(error)}") from None
    finally:
        writer.close()
    if len(reply) > MAX_REPLY:
        raise errors.EpmdUnreachable(node, f"EPMD at {address}:{port} sent more than {MAX_REPLY} bytes")
    return parse_port2_reply(node, name, reply)


def _sample(data: bytes) -> str:
    return f"{len(data)} bytes starting {data[:8].hex() or '(nothing)'}"


def _os_reason(error: OSError) -> str:
    return error.strerror or type(error).__name__

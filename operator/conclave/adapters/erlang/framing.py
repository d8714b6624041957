"""Packets after the handshake: a 4-byte length, then 'p' (pass-through), a control tuple and,
for a send, the message (erts erl_dist_protocol, "Protocol between Connected Nodes").

Owns building the packets this client sends (a REG_SEND to a registered name, the tick),
reading one packet off a stream under a size bound, and parsing one into a ``Delivery``.
An empty packet is a tick, answered with a tick so the peer's net_ticktime never fires.
No atom cache and no fragments are negotiated (handshake.OUR_FLAGS), so a packet that
starts otherwise is malformed. Must never: allocate what a length prefix claims before
checking it against ``max_size``, or raise anything but DistributionError on a member's
bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from typing import Any

from conclave.adapters.erlang import errors, terms

PASS_THROUGH = 112
TICK = b"\x00\x00\x00\x00"
MAX_PACKET = 4 * 1024 * 1024
"""The largest packet accepted: far above any reply conclave asks for (a nodes() list; a
process group of 100,000 members is 3 MB). A larger length prefix is a broken or hostile
peer. Decoding is linear (terms.py): 4 MB of the densest term takes under a second here."""

# Control message operations (erl_dist_protocol "control_message").
REG_SEND = 6
SEND = 2
SEND_TT = 12
REG_SEND_TT = 16
SEND_SENDER = 22
SEND_SENDER_TT = 23
ALIAS_SEND = 33
ALIAS_SEND_TT = 34
SENDS = frozenset(
    {SEND, SEND_TT, REG_SEND, REG_SEND_TT, SEND_SENDER, SEND_SENDER_TT, ALIAS_SEND, ALIAS_SEND_TT}
)
"""The operations followed by a message."""


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One parsed packet: the control tuple's operation, the tuple, and the message if any."""

    operation: int
    control: tuple[Any, ...]
    message: Any = None


def packet(control: tuple[Any, ...], message: Any) -> bytes:
    """A whole packet: length, 'p', the control tuple, the message."""
    body = bytes([PASS_THROUGH]) + terms.encode(control) + terms.encode(message)
    return struct.pack(">I", len(body)) + body


def reg_send(from_pid: Any, to_name: str, message: Any) -> bytes:
    """A REG_SEND packet: ``{6, FromPid, '', ToName}`` then ``message``."""
    return packet((REG_SEND, from_pid, terms.atom(""), terms.atom(to_name)), message)


async def read_packet(node: str, reader: asyncio.StreamReader, max_size: int = MAX_PACKET) -> bytes:
    """The next packet's body; ``b""`` is a tick.

    Raises ConnectionLost when the stream ends (in the middle of a packet, too) or fails,
    and ProtocolError when the length prefix exceeds ``max_size``.
    """
    try:
        (length,) = struct.unpack(">I", await reader.readexactly(4))
        if length > max_size:
            raise errors.ProtocolError(
                node, f"the node announced a {length}-byte packet (at most {max_size})"
            )
        return await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError:
        raise errors.ConnectionLost(node, "the node closed the connection") from None
    except OSError as error:
        raise errors.ConnectionLost(node, f"the connection failed: {error.strerror or error}") from None


def parse(node: str, body: bytes) -> Delivery:
    """The control tuple (and message) of a non-empty packet body; raises ProtocolError."""
    if body[:1] != bytes([PASS_THROUGH]):
        raise errors.ProtocolError(node, f"a packet starts with {body[:1].hex() or 'nothing'}, not 'p' (112)")
    try:
        decoded = terms.decode_terms(body[1:], at_most=2)
    except terms.TermError as error:
        raise errors.ProtocolError(node, f"a packet does not hold terms: {error}") from None
    control = decoded[0]
    if (
        not isinstance(control, tuple)
        or not control
        or not isinstance(control[0], int)
        or isinstance(control[0], bool)
    ):
        raise errors.ProtocolError(
            node, "a packet's control message is not a tuple starting with an operation"
        )
    operation = control[0]
    if operation in SENDS and len(decoded) != 2:
        raise errors.ProtocolError(node, f"a send (control message {operation}) came without its message")
    return Delivery(operation, control, decoded[1] if len(decoded) == 2 else None)

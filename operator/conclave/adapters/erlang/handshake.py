"""The distribution handshake, version 6 (OTP 23 and later), as the connecting side.

Owns the capability flags, the cookie's MD5 digest, the builders and parsers of the
handshake messages (erts erl_dist_protocol, "Distribution Handshake"; kernel's dist_util.erl
``handshake_we_started``), and one asyncio run of it over an open stream:

    send_name 'N' -> recv_status 's' (answer 'alive' with 'true') -> recv_challenge 'N'
    -> send_challenge_reply 'r' -> recv_challenge_ack 'a'

Every message has a 2-byte length. The flags leave out DFLAG_PUBLISHED, which makes the
connection hidden on the peer (dist_util's adjust_flags): never in its ``nodes()``, never
part of ``global``. Must never: reveal the cookie (``Cookie`` keeps it out of every repr and
message), accept a peer whose name is not the one asked for, or accept an acknowledgement
that does not prove the same cookie. Parsers raise only DistributionError.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import secrets
import struct

from conclave.adapters.erlang import errors

# Capability flags (kernel/include/dist.hrl).
DFLAG_PUBLISHED = 0x01
DFLAG_EXTENDED_REFERENCES = 0x04
DFLAG_DIST_MONITOR = 0x08
DFLAG_FUN_TAGS = 0x10
DFLAG_NEW_FUN_TAGS = 0x80
DFLAG_EXTENDED_PIDS_PORTS = 0x100
DFLAG_EXPORT_PTR_TAG = 0x200
DFLAG_BIT_BINARIES = 0x400
DFLAG_NEW_FLOATS = 0x800
DFLAG_SMALL_ATOM_TAGS = 0x4000
DFLAG_UTF8_ATOMS = 0x10000
DFLAG_MAP_TAG = 0x20000
DFLAG_BIG_CREATION = 0x40000
DFLAG_HANDSHAKE_23 = 0x1000000
DFLAG_UNLINK_ID = 0x2000000
DFLAG_MANDATORY_25_DIGEST = 0x4000000
DFLAG_V4_NC = 0x04 << 32

MANDATORY_OTP25 = (
    DFLAG_EXTENDED_REFERENCES
    | DFLAG_FUN_TAGS
    | DFLAG_EXTENDED_PIDS_PORTS
    | DFLAG_NEW_FUN_TAGS
    | DFLAG_EXPORT_PTR_TAG
    | DFLAG_BIT_BINARIES
    | DFLAG_NEW_FLOATS
    | DFLAG_UTF8_ATOMS
    | DFLAG_MAP_TAG
    | DFLAG_BIG_CREATION
    | DFLAG_HANDSHAKE_23
)
"""What an OTP 25 node refuses to connect without (dist.hrl MANDATORY_DFLAGS_25)."""

OUR_FLAGS = (
    MANDATORY_OTP25 | DFLAG_MANDATORY_25_DIGEST | DFLAG_SMALL_ATOM_TAGS | DFLAG_UNLINK_ID | DFLAG_V4_NC
)
"""Mandatory for OTP 25 (and MANDATORY_25_DIGEST, which says so in one bit and which later
releases require), plus UNLINK_ID and V4_NC, mandatory from OTP 26. Not PUBLISHED (so
hidden), no atom cache and no fragments (so every packet is 'p' + two plain terms)."""

REQUIRED_PEER_FLAGS = DFLAG_HANDSHAKE_23 | DFLAG_BIG_CREATION | DFLAG_UTF8_ATOMS | DFLAG_EXTENDED_REFERENCES

TAG_NAME_V6 = ord("N")
TAG_NAME_V5 = ord("n")
TAG_STATUS = ord("s")
TAG_REPLY = ord("r")
TAG_ACK = ord("a")
DIGEST_SIZE = 16


class Cookie:
    """The distribution cookie, kept out of every repr, str and message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value or any(ord(character) > 255 for character in value):
            # Erlang digests atom_to_list(Cookie) as bytes; never echo the value itself.
            raise ValueError("the Erlang cookie must be a non-empty Latin-1 string")
        self._value = value.encode("latin-1")

    def digest(self, challenge: int) -> bytes:
        """``md5(Cookie ++ integer_to_list(Challenge))``, dist_util's gen_digest."""
        return hashlib.md5(self._value + str(challenge).encode("ascii"), usedforsecurity=False).digest()

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the cookie replaced by ``<cookie>``."""
        return text.replace(self._value.decode("latin-1"), "<cookie>")

    def __repr__(self) -> str:
        return "Cookie(<hidden>)"

    __str__ = __repr__


@dataclasses.dataclass(frozen=True)
class Challenge:
    """The peer's challenge message: who it is, what it speaks, what we must digest."""

    flags: int
    challenge: int
    creation: int
    name: str


@dataclasses.dataclass(frozen=True)
class Peer:
    """A peer that completed the handshake."""

    name: str
    flags: int
    creation: int


def frame(payload: bytes) -> bytes:
    """A handshake message: a 2-byte length, then the payload."""
    return struct.pack(">H", len(payload)) + payload


def send_name(name: str, creation: int, flags: int = OUR_FLAGS) -> bytes:
    """The version-6 send_name payload: 'N', Flags(8), Creation(4), Nlen(2), Name."""
    encoded = name.encode("utf-8")
    return struct.pack(">BQIH", TAG_NAME_V6, flags, creation, len(encoded)) + encoded


def challenge_reply(challenge: int, digest: bytes) -> bytes:
    """The challenge_reply payload: 'r', our Challenge(4), the Digest(16) of theirs."""
    return struct.pack(">BI", TAG_REPLY, challenge) + digest


def parse_status(node: str, payload: bytes) -> str:
    """The status word of a status message ('s' + text); raises HandshakeFailed."""
    if not payload or payload[0] != TAG_STATUS:
        raise errors.HandshakeFailed(node, f"expected a status message, got {_sample(payload)}")
    return payload[1:].decode("latin-1")


def parse_challenge(node: str, payload: bytes) -> Challenge:
    """The peer's version-6 challenge ('N', Flags(8), Challenge(4), Creation(4), Nlen(2), Name).

    Raises ProtocolTooOld for the version-5 form or a peer without the version-6 flags,
    HandshakeFailed for anything malformed.
    """
    if payload[:1] == bytes([TAG_NAME_V5]):
        raise errors.ProtocolTooOld(node, "the node sent a version-5 challenge; OTP 23 or later is needed")
    if payload[:1] != bytes([TAG_NAME_V6]) or len(payload) < 19:
        raise errors.HandshakeFailed(node, f"expected a challenge message, got {_sample(payload)}")
    flags, challenge, creation, name_length = struct.unpack(">QIIH", payload[1:19])
    if len(payload) < 19 + name_length:
        raise errors.HandshakeFailed(node, "the challenge message is shorter than the name it announces")
    try:
        name = payload[19 : 19 + name_length].decode("utf-8")
    except UnicodeDecodeError:
        raise errors.HandshakeFailed(node, "the challenge message's node name is not UTF-8") from None
    missing = REQUIRED_PEER_FLAGS & ~flags
    if missing:
        raise errors.ProtocolTooOld(node, f"the node lacks capability flags {missing:#x} that OTP 23+ has")
    return Challenge(flags, challenge, creation, name)


def parse_challenge_ack(node: str, payload: bytes) -> bytes:
    """The digest in a challenge_ack ('a' + 16 bytes); raises HandshakeFailed."""
    if len(payload) != 1 + DIGEST_SIZE or payload[0] != TAG_ACK:
        raise errors.HandshakeFailed(node, f"expected a challenge acknowledgement, got {_sample(payload)}")
    return payload[1:]


async def read_message(node: str, reader: asyncio.StreamReader, closed: errors.DistributionError) -> bytes:
    """One handshake message; raises ``closed`` if the stream ends first (in the middle, too)."""
    try:
        header = await reader.readexactly(2)
        (length,) = struct.unpack(">H", header)
        return await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionResetError):
        raise closed from None
    except OSError as error:
        raise errors.HandshakeFailed(node, f"the connection failed during the handshake: {error}") from None


async def perform(
    node: str,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    own_name: str,
    cookie: Cookie,
    creation: int,
    our_challenge: int | None = None,
) -> Peer:
    """Run the handshake as the connecting side and return the authenticated peer.

    Unbounded in time: the caller applies its deadline. Raises HandshakeFailed,
    ProtocolTooOld, WrongNode or CookieRejected.
    """
    refused = errors.HandshakeFailed(
        node, "the node closed the connection before answering our name (refused, or older than OTP 23)"
    )
    no_challenge = errors.HandshakeFailed(node, "the node closed the connection before its challenge")
    rejected = errors.CookieRejected(node, "the node closed the connection after our challenge reply")

    await _send(node, writer, send_name(own_name, creation))
    status = parse_status(node, await read_message(node, reader, refused))
    if status == "alive":
        # The node still sees an earlier connection of ours; ours is gone, so replace it.
        await _send(node, writer, b"strue")
    elif status not in ("ok", "ok_simultaneous"):
        raise errors.HandshakeFailed(node, f"the node refused the connection with status {status[:32]!r}")
    challenge = parse_challenge(node, await read_message(node, reader, no_challenge))
    if challenge.name != node:
        raise errors.WrongNode(node, f"the node at this address is {challenge.name[:255]!r}")
    mine = secrets.randbits(32) if our_challenge is None else our_challenge
    await _send(node, writer, challenge_reply(mine, cookie.digest(challenge.challenge)))
    ack = parse_challenge_ack(node, await read_message(node, reader, rejected))
    if not hmac.compare_digest(ack, cookie.digest(mine)):
        raise errors.CookieRejected(node, "the node's acknowledgement does not prove the same cookie")
    return Peer(challenge.name, challenge.flags, challenge.creation)


async def _send(node: str, writer: asyncio.StreamWriter, payload: bytes) -> None:
    try:
        writer.write(frame(payload))
        await writer.drain()
    except OSError as error:
        raise errors.HandshakeFailed(node, f"the connection failed during the handshake: {error}") from None


def _sample(data: bytes) -> str:
    return f"{len(data)} bytes starting {data[:8].hex() or '(nothing)'}"

"""Whatever bytes a member sends, the Erlang client's parsers end in a DistributionError
with a reason (or a result that is right), never another exception and never a hang.

The handshake runs for real over an in-process socket pair: the "member" end writes the
drawn bytes and closes. Drawn inputs mix plain garbage with well-formed messages that
are mangled (cut short, wrong lengths, wrong names, wrong digests), so every stage is reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conclave.adapters.erlang import epmd, errors, framing, handshake, screening, terms

NODE = "peer@10.0.0.5"
COOKIE = handshake.Cookie("fuzz-cookie")
OUR_CHALLENGE = 123456789
REASONS = {
    "EpmdUnreachable",
    "NotRegistered",
    "HandshakeFailed",
    "ProtocolTooOld",
    "CookieRejected",
    "WrongNode",
    "ConnectionLost",
    "ProtocolError",
}
BOUND = 5.0
"""Seconds any one example may take; the member end closes, so all of them end far sooner."""


@st.composite
def mangled(draw: st.DrawFn, payload: bytes) -> bytes:
    """``payload`` framed as a handshake message: mostly intact (so that later stages are
    reached), else with a wrong length, cut short, or replaced by garbage."""
    framed = handshake.frame(payload)
    how = draw(st.sampled_from(["intact"] * 6 + ["length", "cut", "garbage"]))
    if how == "length":
        return struct.pack(">H", draw(st.integers(0, 0xFFFF))) + payload
    if how == "cut":
        return framed[: draw(st.integers(0, len(framed) - 1))]
    if how == "garbage":
        return draw(st.binary(max_size=24))
    return framed


statuses = st.sampled_from(
    [b"sok"] * 4 + [b"sok_simultaneous", b"salive", b"snok", b"snot_allowed", b"snamed:", b"s"]
)
names = st.sampled_from([NODE.encode()] * 4 + [b"other@10.0.0.6", b"\xff\xfe"]) | st.binary(max_size=12)
challenges = st.builds(
    lambda tag, flags, challenge, creation, name, extra: (
        tag + struct.pack(">QIIH", flags, challenge, creation, len(name)) + name + extra
    ),
    st.sampled_from([b"N"] * 6 + [b"n", b"a"]),
    st.sampled_from([handshake.OUR_FLAGS | handshake.DFLAG_PUBLISHED] * 4 + [0]) | st.integers(0, 2**64 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    names,
    st.binary(max_size=4),
)
acks = st.sampled_from([b"a" + COOKIE.digest(OUR_CHALLENGE)] * 3 + [b"a" + bytes(16)]) | st.binary(
    max_size=20
)


@st.composite
def member_handshakes(draw: st.DrawFn) -> bytes:
    return b"".join(draw(mangled(message)) for message in (draw(statuses), draw(challenges), draw(acks)))


async def handshake_against(data: bytes) -> handshake.Peer:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    member_reader, member_writer = await asyncio.open_connection(sock=theirs)
    member_writer.write(data)
    member_writer.write_eof()
    try:
        async with asyncio.timeout(BOUND):
            return await handshake.perform(
                NODE, reader, writer, own_name="conclave@10.0.0.1", cookie=COOKIE, creation=1,
                our_challenge=OUR_CHALLENGE,
            )  # fmt: skip
    finally:
        for stream in (writer, member_writer):
            stream.close()
            await stream.wait_closed()
        del member_reader


def outcome(data: bytes) -> handshake.Peer | errors.DistributionError:
    try:
        return asyncio.run(handshake_against(data))
    except errors.DistributionError as error:
        return error


def attempt(function: Callable[..., Any], *args: Any) -> Any:
    """What ``function`` returns, or the DistributionError it raises (anything else fails)."""
    try:
        return function(*args)
    except errors.DistributionError as error:
        return error


def proves_the_cookie(data: bytes) -> bool:
    return (b"a" + COOKIE.digest(OUR_CHALLENGE)) in data


@settings(max_examples=400, deadline=None)
@given(st.one_of(member_handshakes(), st.binary(max_size=200)))
def test_a_handshake_ends_in_a_peer_only_when_name_and_cookie_check_out(data: bytes) -> None:
    result = outcome(data)
    if isinstance(result, handshake.Peer):
        assert result.name == NODE
        assert proves_the_cookie(data)
    else:
        assert result.reason in REASONS
        assert "fuzz-cookie" not in str(result)


def test_a_well_formed_handshake_with_the_right_digest_succeeds() -> None:
    challenge = b"N" + struct.pack(">QIIH", handshake.OUR_FLAGS | 1, 7, 9, len(NODE)) + NODE.encode()
    data = b"".join(handshake.frame(m) for m in (b"sok", challenge, b"a" + COOKIE.digest(OUR_CHALLENGE)))
    assert outcome(data) == handshake.Peer(NODE, handshake.OUR_FLAGS | 1, 9)


def test_a_member_that_closes_after_our_reply_rejected_the_cookie() -> None:
    challenge = b"N" + struct.pack(">QIIH", handshake.OUR_FLAGS, 7, 9, len(NODE)) + NODE.encode()
    result = outcome(handshake.frame(b"sok") + handshake.frame(challenge))
    assert isinstance(result, errors.CookieRejected)


@given(st.binary(max_size=300))
def test_any_epmd_reply_is_a_registration_or_a_reason(reply: bytes) -> None:
    result = attempt(epmd.parse_port2_reply, "chat@h", "chat", reply)
    if isinstance(result, errors.DistributionError):
        assert result.reason in REASONS
    else:
        assert (result.name, result.highest_version >= 6) == ("chat", True)


@given(st.binary(max_size=100))
def test_any_handshake_message_parses_or_says_why(payload: bytes) -> None:
    for parse in (handshake.parse_status, handshake.parse_challenge, handshake.parse_challenge_ack):
        result = attempt(parse, NODE, payload)
        assert not isinstance(result, errors.DistributionError) or result.reason in REASONS


erlang_values = st.recursive(
    st.one_of(
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),
        st.text(max_size=5).map(terms.atom),
        st.binary(max_size=8).map(terms.Binary),
        st.booleans(),
    ),
    lambda children: st.lists(children, max_size=4) | st.tuples(children, children),
    max_leaves=12,
)


@st.composite
def packet_bodies(draw: st.DrawFn) -> bytes:
    """A reply packet as a member sends it, maybe mangled: a byte changed, cut, or grown."""
    control = draw(st.sampled_from([(2, terms.atom(""), 1), (22, 1, 2), (1, 2, 3), (19,)]))
    body = b"p" + terms.encode(control) + terms.encode(draw(erlang_values))
    edit = draw(st.sampled_from(["none", "change", "cut", "grow"]))
    at = draw(st.integers(0, len(body) - 1))
    if edit == "change":
        body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    elif edit == "cut":
        body = body[:at]
    elif edit == "grow":
        body = body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]
    return body


@settings(max_examples=400)
@given(st.one_of(packet_bodies(), st.binary(max_size=200)))
def test_any_packet_body_is_a_delivery_or_a_protocol_error(body: bytes) -> None:
    try:
        delivery = framing.parse(NODE, body)
    except errors.ProtocolError:
        return
    assert isinstance(delivery.control, tuple)
    assert (delivery.message is not None) or delivery.operation not in framing.SENDS


async def read_every_packet(data: bytes, max_size: int) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    async with asyncio.timeout(BOUND):
        while True:
            body = await framing.read_packet(NODE, reader, max_size)
            if body:
                with contextlib.suppress(errors.ProtocolError):
                    framing.parse(NODE, body)


@given(st.binary(max_size=400) | st.lists(st.binary(max_size=30)).map(
    lambda bodies: b"".join(struct.pack(">I", len(body)) + body for body in bodies)
))  # fmt: skip
def test_a_stream_of_any_bytes_ends_in_lost_or_protocol_error(data: bytes) -> None:
    with pytest.raises(errors.DistributionError) as raised:
        asyncio.run(read_every_packet(data, max_size=64))
    assert raised.value.reason in {"ConnectionLost", "ProtocolError"}


def test_an_oversized_length_prefix_fails_at_once_without_waiting_for_the_body() -> None:
    async def read() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(b"\xff\xff\xff\xff")  # no body and no end of stream: a wait would hang
        return await framing.read_packet(NODE, reader)

    with pytest.raises(errors.ProtocolError, match="4294967295-byte packet"):
        asyncio.run(read())


@given(erlang_values)
def test_every_term_erlang_py_encodes_passes_the_screen_and_round_trips(value: Any) -> None:
    encoded = terms.encode(value)
    assert terms.encode(terms.decode(encoded)) == encoded


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x83o" + struct.pack(">I", 300_000) + b"\x00" + b"\x01" * 300_000, "integer of 300000 bytes"),
        (b"\x83n\x41\x00" + b"\x01" * 0x41, "integer of 65 bytes"),
        (b"\x83P" + struct.pack(">I", 5_000_005) + zlib.compress(b"m" + bytes(5_000_004)), "tag 80"),
        (b"\x83l" + struct.pack(">I", 2**32 - 1) + b"j", "past the end"),
        (b"\x83R\x01", "tag 82"),
    ],
    ids=[
        "a 300 kB integer (quadratic in erlang-py) is refused before decoding",
        "an integer just over the bound is refused",
        "a compressed term is refused before it is inflated",
        "a list longer than its bytes is refused",
        "an atom cache reference we never negotiated is refused",
    ],
)
def test_the_screen_refuses_what_erlang_py_would_choke_on(data: bytes, problem: str) -> None:
    started = time.monotonic()
    with pytest.raises(terms.TermError, match=problem):
        terms.decode(data)
    assert time.monotonic() - started < 0.1


def test_the_largest_accepted_integer_decodes() -> None:
    largest = 2 ** (8 * screening.MAX_BIG_BYTES) - 1
    assert terms.decode(terms.encode(largest)) == largest


def test_a_term_nested_past_pythons_recursion_limit_is_a_term_error() -> None:
    deep = b"\x83" + b"l\x00\x00\x00\x01" * 5000 + b"j" * 5001
    with pytest.raises(terms.TermError, match="RecursionError"):
        terms.decode(deep)

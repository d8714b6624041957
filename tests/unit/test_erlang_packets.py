"""The Erlang client's bytes, checked against what real OTP 25 computes and encodes: the
cookie digest, the handshake messages, EPMD's request and reply, and a rex call's packet.

The expected hex strings were printed by ``erl`` (OTP 25.2): ``erlang:md5/1`` for the
digests, ``term_to_binary(T, [{minor_version, 2}])`` for the terms (UTF-8 atoms, as the
distribution sends them with DFLAG_UTF8_ATOMS).
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from conclave.adapters.erlang import connection, epmd, errors, framing, handshake, terms

OWN = "conclave@host"
PID = terms.Pid(terms.atom(OWN), struct.pack(">I", 1), struct.pack(">I", 0), struct.pack(">I", 7))
REF = terms.Reference(terms.atom(OWN), struct.pack(">III", 1, 0, 0), struct.pack(">I", 7))


@pytest.mark.parametrize(
    ("cookie", "challenge", "digest"),
    [
        ("cookie", 3735928559, "c768bde34751923d84795569fcf612b5"),
        ("secretc", 0, "97cf8513e33ac1512822ad651641e395"),
        ("x", 4294967295, "462f4d604a78d3ccf061bd0ef17e289b"),
    ],
    ids=["a large challenge", "challenge zero", "the largest challenge"],
)
def test_the_digest_is_md5_of_the_cookie_and_the_challenge_in_decimal(
    cookie: str, challenge: int, digest: str
) -> None:
    assert handshake.Cookie(cookie).digest(challenge).hex() == digest


def test_the_cookie_never_shows_in_its_repr_or_str() -> None:
    cookie = handshake.Cookie("s3cr3t-cookie")
    assert "s3cr3t" not in repr(cookie)
    assert "s3cr3t" not in str(cookie)
    assert cookie.redact("the cookie is s3cr3t-cookie") == "the cookie is <cookie>"


@pytest.mark.parametrize(
    "cookie", ["", "caf\u20ac"], ids=["an empty cookie", "a cookie Erlang cannot digest as bytes"]
)
def test_a_cookie_erlang_could_not_use_is_refused_without_echoing_it(cookie: str) -> None:
    with pytest.raises(ValueError, match="non-empty Latin-1") as raised:
        handshake.Cookie(cookie)
    assert "caf" not in str(raised.value)


def test_send_name_is_the_version_6_layout_and_leaves_out_the_published_flag() -> None:
    payload = handshake.send_name(OWN, creation=7)
    assert payload == b"N" + struct.pack(">QIH", handshake.OUR_FLAGS, 7, len(OWN)) + OWN.encode()
    assert handshake.frame(payload)[:2] == struct.pack(">H", len(payload))
    assert handshake.OUR_FLAGS & handshake.DFLAG_PUBLISHED == 0
    assert handshake.OUR_FLAGS & handshake.MANDATORY_OTP25 == handshake.MANDATORY_OTP25


def test_the_challenge_reply_carries_our_challenge_and_the_digest_of_theirs() -> None:
    digest = handshake.Cookie("cookie").digest(3735928559)
    assert handshake.challenge_reply(42, digest) == b"r\x00\x00\x00\x2a" + digest


def test_a_challenge_is_parsed_into_flags_challenge_creation_and_name() -> None:
    payload = b"N" + struct.pack(">QIIH", handshake.OUR_FLAGS | 1, 99, 5, 6) + b"a@host" + b"extra"
    assert handshake.parse_challenge("a@host", payload) == handshake.Challenge(
        handshake.OUR_FLAGS | 1, 99, 5, "a@host"
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"n" + struct.pack(">HII", 5, 0x7FFFF, 99) + b"a@host", "ProtocolTooOld"),
        (b"N" + struct.pack(">QIIH", handshake.DFLAG_PUBLISHED, 99, 5, 6) + b"a@host", "ProtocolTooOld"),
        (b"N" + struct.pack(">QIIH", handshake.OUR_FLAGS, 99, 5, 60) + b"a@host", "HandshakeFailed"),
        (b"N\x00", "HandshakeFailed"),
        (b"", "HandshakeFailed"),
    ],
    ids=[
        "a version-5 challenge is too old",
        "a peer without the OTP 23 flags is too old",
        "a name longer than the message is malformed",
        "a truncated challenge is malformed",
        "an empty message is malformed",
    ],
)
def test_a_challenge_that_cannot_be_used_says_why(payload: bytes, reason: str) -> None:
    with pytest.raises(errors.DistributionError) as raised:
        handshake.parse_challenge("a@host", payload)
    assert raised.value.reason == reason


def test_the_port_please2_request_names_the_node_without_its_host() -> None:
    assert epmd.port_please2_request("chat") == b"\x00\x05zchat"


def port2_reply(port: int = 40001, highest: int = 6, lowest: int = 6, name: bytes = b"chat") -> bytes:
    return b"w\x00" + struct.pack(">HBBHHH", port, 77, 0, highest, lowest, len(name)) + name + b"\x00\x00"


def test_epmds_reply_gives_the_port_and_versions() -> None:
    assert epmd.parse_port2_reply("chat@h", "chat", port2_reply()) == epmd.Registration(
        40001, 77, 0, 6, 6, "chat"
    )


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (b"w\x01", "NotRegistered"),
        (port2_reply(highest=5, lowest=5), "ProtocolTooOld"),
        (port2_reply(name=b"other"), "EpmdUnreachable"),
        (port2_reply()[:-1], "EpmdUnreachable"),
        (port2_reply() + b"\x00", "EpmdUnreachable"),
        (b"HTTP/1.1 404 Not Found\r\n", "EpmdUnreachable"),
        (b"", "EpmdUnreachable"),
    ],
    ids=[
        "an unknown name is not registered",
        "a node of OTP 22 or older is too old",
        "a reply about another name is not EPMD's",
        "a truncated reply is not EPMD's",
        "a reply longer than its lengths is not EPMD's",
        "an HTTP answer is not EPMD's",
        "no answer at all is not EPMD's",
    ],
)
def test_an_epmd_reply_that_cannot_be_used_says_why(reply: bytes, reason: str) -> None:
    with pytest.raises(errors.DistributionError) as raised:
        epmd.parse_port2_reply("chat@h", "chat", reply)
    assert raised.value.reason == reason


def test_a_rex_call_is_a_reg_send_of_a_gen_call_as_otp_encodes_it() -> None:
    request: tuple[Any, ...] = (
        terms.atom("$gen_call"),
        (PID, REF),
        (terms.atom("call"), terms.atom("erlang"), terms.atom("nodes"), [], terms.atom("user")),
    )
    control = bytes.fromhex(
        "836804610658770D636F6E636C61766540686F737400000001000000000000000777007703726578"
    )
    message = bytes.fromhex(
        "83680377092467656E5F63616C6C680258770D636F6E636C61766540686F7374000000010000000000000007"
        "5A0003770D636F6E636C61766540686F737400000007000000010000000000000000"
        "6805770463616C6C770665726C616E6777056E6F6465736A770475736572"
    )
    body = b"p" + control + message
    assert framing.reg_send(PID, "rex", request) == struct.pack(">I", len(body)) + body


def test_a_reply_packet_is_parsed_into_its_send_and_message() -> None:
    body = b"p" + terms.encode((2, terms.atom(""), PID)) + terms.encode((REF, [terms.atom("a@h")]))
    delivery = framing.parse("peer@h", body)
    assert (delivery.operation, delivery.message) == (framing.SEND, (REF, [terms.atom("a@h")]))


def test_a_tick_is_an_empty_packet() -> None:
    assert struct.pack(">I", 0) == framing.TICK


def test_every_reason_is_its_class_name_and_the_message_names_the_node() -> None:
    error = errors.CookieRejected("chat@10.0.0.5", "the node closed the connection after our challenge reply")
    assert (error.reason, str(error)) == (
        "CookieRejected",
        "chat@10.0.0.5: the node closed the connection after our challenge reply",
    )
    assert isinstance(errors.Timeout("a@b", "late"), TimeoutError)


@pytest.mark.parametrize(
    "name", ["chat", "@host", "chat@", "", "a" * 251 + "@host"], ids=lambda name: f"{name[:12]!r} is refused"
)
def test_a_node_name_must_be_name_at_host(name: str) -> None:
    with pytest.raises(errors.InvalidNodeName):
        connection.split_node(name)

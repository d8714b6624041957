"""The DNS client against a real DNS server on loopback (dnslib's), over real UDP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dnslib
import pytest
from dnslib.server import BaseResolver, DNSHandler, DNSServer

from conclave.errors import DNSError
from conclave.observe import resolving
from conclave_harness.localcluster.clusters import free_port


class Scripted(BaseResolver):  # type: ignore[misc]
    def __init__(self) -> None:
        self.rcode = dnslib.RCODE.NOERROR
        self.silent = False

    def resolve(self, request: Any, handler: Any) -> Any:
        if self.silent:
            raise dnslib.DNSError("dropped on purpose")  # dnslib's handler then sends nothing
        reply = request.reply()
        reply.header.rcode = self.rcode
        if self.rcode == dnslib.RCODE.NOERROR and str(request.q.qname) in ANSWERS:
            for ip in ANSWERS[str(request.q.qname)]:
                reply.add_answer(dnslib.RR(request.q.qname, dnslib.QTYPE.A, rdata=dnslib.A(ip), ttl=0))
        return reply


ANSWERS = {
    "chat.internal.": ["10.0.0.2", "10.0.0.1", "10.0.0.2"],
    "large.internal.": [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(100)],  # 1.6 kB: past 512 bytes
}


class Truncating(DNSHandler):  # type: ignore[misc]
    udplen = 512


class Quiet:
    def __getattr__(self, _: str) -> Any:
        return lambda *args, **kwargs: None


@pytest.fixture
def server() -> Iterator[tuple[Scripted, tuple[str, int]]]:
    resolver = Scripted()
    address = ("127.0.0.1", free_port())
    servers = [
        DNSServer(resolver, *address, tcp=tcp, logger=Quiet(), handler=Truncating) for tcp in (False, True)
    ]
    for server in servers:
        server.start_thread()
    yield resolver, address
    for server in servers:
        server.stop()
        server.server.server_close()


def resolve(name: str, address: tuple[str, int], timeout: float = 1.0) -> list[str]:
    return asyncio.run(resolving.resolve_a(name, address, timeout))


def test_addresses_come_back_sorted_and_once(server: tuple[Scripted, tuple[str, int]]) -> None:
    assert resolve("chat.internal", server[1]) == ["10.0.0.1", "10.0.0.2"]


def test_a_truncated_answer_is_asked_again_over_tcp(server: tuple[Scripted, tuple[str, int]]) -> None:
    assert resolve("large.internal", server[1]) == sorted(ANSWERS["large.internal."])


def test_an_empty_answer_is_no_addresses(server: tuple[Scripted, tuple[str, int]]) -> None:
    assert resolve("other.internal", server[1]) == []


@pytest.mark.parametrize(
    ("rcode", "reason"),
    [
        (dnslib.RCODE.NXDOMAIN, "NXDOMAIN"),
        (dnslib.RCODE.SERVFAIL, "ServerFailure"),
        (dnslib.RCODE.REFUSED, "Refused"),
    ],
    ids=["no such name", "a server failure", "a refusal"],
)
def test_an_error_answer_is_an_error_with_its_reason(
    server: tuple[Scripted, tuple[str, int]], rcode: int, reason: str
) -> None:
    server[0].rcode = rcode
    with pytest.raises(DNSError) as failed:
        resolve("chat.internal", server[1])
    assert failed.value.reason == reason


def test_a_silent_server_times_out(server: tuple[Scripted, tuple[str, int]]) -> None:
    server[0].silent = True
    with pytest.raises(DNSError) as failed:
        resolve("chat.internal", server[1], timeout=0.2)
    assert failed.value.reason == "Timeout"


def test_the_system_nameserver_is_the_first_of_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search prod.svc.cluster.local\nnameserver 10.96.0.10\nnameserver 10.96.0.11\n")
    assert resolving.system_nameserver(conf) == ("10.96.0.10", 53)
    conf.write_text("search x\n")
    with pytest.raises(DNSError, match="names no nameserver"):
        resolving.system_nameserver(conf)


@pytest.mark.parametrize(
    ("text", "server"), [("10.96.0.10", ("10.96.0.10", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353))]
)
def test_a_server_is_host_and_optional_port(text: str, server: tuple[str, int]) -> None:
    assert resolving.parse_server(text) == server

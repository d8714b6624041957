"""A small asyncio DNS client for the DNS discovery strategies: one A query over UDP to a
chosen nameserver (again over TCP when the UDP answer is truncated), answered or failed
within a timeout, never blocking the event loop (the resolver behind getaddrinfo would,
and hides NXDOMAIN behind a generic error).

It resolves; what the addresses mean is ``core.discovery``'s business.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import dnslib

from conclave.adapters import metrics
from conclave.api import ClusterTopology, durations
from conclave.core import discovery
from conclave.core.facts import Resolution
from conclave.errors import DNSError

Server = tuple[str, int]
_RCODES = {
    dnslib.RCODE.NXDOMAIN: "NXDOMAIN",
    dnslib.RCODE.SERVFAIL: "ServerFailure",
    dnslib.RCODE.REFUSED: "Refused",
}


class _Reply(asyncio.DatagramProtocol):
    def __init__(self, answer: asyncio.Future[bytes]) -> None:
        self.answer = answer

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def resolve_a(name: str, server: Server, timeout: float) -> list[str]:
    """The IPv4 addresses of ``name``, sorted; [] for an empty answer.

    A truncated UDP answer is asked again over TCP: without EDNS a server fits only about
    29 A records into 512 bytes, and CoreDNS (with ``loadbalance``, shuffling first) would
    otherwise hand a large headless Service a different subset on every poll. ``timeout``
    bounds both attempts together.

    Raises DNSError with reason NXDOMAIN, ServerFailure, Refused, Timeout, Unreachable or
    MalformedReply.
    """
    query = dnslib.DNSRecord.question(name, "A")
    try:
        async with asyncio.timeout(timeout):
            reply = _parse(name, query, await _over_udp(query, server))
            if reply.header.tc:
                reply = _parse(name, query, await _over_tcp(query, server))
    except TimeoutError:
        raise DNSError("Timeout", f"no answer from {server[0]}:{server[1]} within {timeout}s") from None
    except OSError as error:
        raise DNSError("Unreachable", f"nameserver {server[0]}:{server[1]}: {error}") from None
    rcode = reply.header.rcode
    if rcode != dnslib.RCODE.NOERROR:
        reason = _RCODES.get(rcode, f"Rcode{rcode}")
        raise DNSError(reason, f"{name}: {reason}")
    return sorted({str(record.rdata) for record in reply.rr if record.rtype == dnslib.QTYPE.A})


async def _over_udp(query: dnslib.DNSRecord, server: Server) -> bytes:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bytes] = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Reply(answer), remote_addr=server)
    try:
        transport.sendto(query.pack())
        return await answer
    finally:
        transport.close()


async def _over_tcp(query: dnslib.DNSRecord, server: Server) -> bytes:
    """RFC 1035 4.2.2: each message is preceded by its length in two bytes."""
    reader, writer = await asyncio.open_connection(*server)
    try:
        packet = query.pack()
        writer.write(len(packet).to_bytes(2, "big") + packet)
        await writer.drain()
        length = int.from_bytes(await reader.readexactly(2), "big")
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise DNSError("MalformedReply", f"{server[0]}:{server[1]} closed mid-answer") from None
    finally:
        writer.close()


def _parse(name: str, query: dnslib.DNSRecord, data: bytes) -> dnslib.DNSRecord:
    try:
        reply = dnslib.DNSRecord.parse(data)
    except dnslib.DNSError as error:
        raise DNSError("MalformedReply", f"unreadable answer for {name}: {error}") from None
    if reply.header.id != query.header.id:
        raise DNSError("MalformedReply", f"the answer for {name} answers another query")
    return reply


def system_nameserver(resolv_conf: Path = Path("/etc/resolv.conf")) -> Server:
    """The first nameserver of resolv.conf (the pod's resolver when running in a cluster)."""
    for line in resolv_conf.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            return fields[1], 53
    raise DNSError("NoNameserver", f"{resolv_conf} names no nameserver; set --dns-server")


def parse_server(text: str) -> Server:
    """``10.96.0.10`` or ``127.0.0.1:5353`` → (host, port)."""
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "53")
    return host, int(port)


async def resolve_topology(
    topology: ClusterTopology | None, domain: str, server: Callable[[], Server]
) -> Resolution | None:
    """Look up the name a DNS strategy polls; None for the other strategies."""
    if topology is None or topology.spec.strategy not in ("KubernetesDNS", "DNSPoll"):
        return None
    spec = topology.spec
    name = discovery.dns_name(spec, topology.metadata.namespace, domain)
    timeout = min(2.0, durations.parse(spec.polling_interval).total_seconds())
    started = time.perf_counter()
    try:
        addresses = await resolve_a(name, server(), timeout)
    except DNSError as error:
        return Resolution(name, error=error.reason, message=str(error))
    finally:
        metrics.DISCOVERY_SECONDS.labels(strategy=spec.strategy).observe(time.perf_counter() - started)
    return Resolution(name, tuple(addresses))

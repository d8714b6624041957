"""A real DNS server for the local cluster, answering like CoreDNS's kubernetes plugin
(CoreDNS itself cannot be built here without adding its whole plugin tree to the cache).

Records, with the cluster domain (``cluster.local`` by default):

- ``<service>.<namespace>.svc.<domain>``: for a headless Service, one A record per ready
  address of its EndpointSlices (not-ready ones too with publishNotReadyAddresses);
  NXDOMAIN when the Service does not exist, or when it is headless with no such address
  (CoreDNS answers NXDOMAIN there too: a headless name without endpoints does not exist);
- ``<hostname>.<service>.<namespace>.svc.<domain>``: an endpoint that has a hostname
  (StatefulSet pods);
- ``<a-b-c-d>.<namespace>.pod.<domain>``: a.b.c.d (CoreDNS's ``pods insecure``);
- names a test registers (``set_records``), for DNSPoll.

Every answer reads the API at query time (no cache, TTL 0), so a lookup always reflects
the EndpointSlices as they are. It listens on 127.0.0.1 only, on UDP and TCP at the same
port, and like CoreDNS answering a client without EDNS it truncates UDP answers past 512
bytes (setting TC), so that clients must retry over TCP here as they must in a cluster
(dnslib drops every record of a truncated answer; CoreDNS keeps those that fit).
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Any, Literal

import dnslib
from dnslib.server import BaseResolver, DNSHandler, DNSServer
from kubernetes import client

from conclave_harness.localcluster.clusters import free_port

Failure = Literal["SERVFAIL", "timeout"]


class ClusterDNS(BaseResolver):  # type: ignore[misc]
    def __init__(self, api: client.ApiClient, domain: str = "cluster.local") -> None:
        self.core = client.CoreV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.domain = domain
        self.address = ("127.0.0.1", free_port())
        self._records: dict[str, list[str]] = {}
        self._failure: Failure | None = None
        self._lock = threading.Lock()
        self._servers = [
            DNSServer(self, *self.address, tcp=tcp, logger=_Quiet(), handler=_Truncating)
            for tcp in (False, True)
        ]

    def start(self) -> ClusterDNS:
        for server in self._servers:
            server.start_thread()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
            server.server.server_close()

    def __enter__(self) -> ClusterDNS:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def set_records(self, name: str, addresses: list[str]) -> None:
        with self._lock:
            self._records[name.rstrip(".")] = list(addresses)

    def clear_records(self, name: str) -> None:
        with self._lock:
            self._records.pop(name.rstrip("."), None)

    def fail_with(self, failure: Failure | None) -> None:
        """Answer every query with SERVFAIL, or not at all (timeout), or normally again."""
        self._failure = failure

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        if self._failure == "SERVFAIL":
            reply.header.rcode = dnslib.RCODE.SERVFAIL
            return reply
        if self._failure == "timeout":
            raise dnslib.DNSError("dropped on purpose")  # dnslib's handler then sends nothing
        name = str(request.q.qname).rstrip(".")
        addresses = self.lookup(name)
        if addresses is None:
            reply.header.rcode = dnslib.RCODE.NXDOMAIN
        elif request.q.qtype in (dnslib.QTYPE.A, dnslib.QTYPE.ANY):
            for address in addresses:
                reply.add_answer(dnslib.RR(request.q.qname, dnslib.QTYPE.A, rdata=dnslib.A(address), ttl=0))
        return reply

    def lookup(self, name: str) -> list[str] | None:
        """The A records of ``name``; None for NXDOMAIN."""
        with self._lock:
            if name in self._records:
                return self._records[name]
        suffix = f".{self.domain}"
        if not name.endswith(suffix):
            return None
        labels = name[: -len(suffix)].split(".")
        if len(labels) == 3 and labels[2] == "pod":
            return _pod_address(labels[0])
        if len(labels) == 3 and labels[2] == "svc":
            return self._service(labels[1], labels[0], hostname=None)
        if len(labels) == 4 and labels[3] == "svc":
            return self._service(labels[2], labels[1], hostname=labels[0])
        return None

    def _service(self, namespace: str, service: str, hostname: str | None) -> list[str] | None:
        try:
            spec = self.core.read_namespaced_service(service, namespace).spec
        except client.exceptions.ApiException:
            return None
        if spec.cluster_ip not in ("None", None):
            return None if hostname else [spec.cluster_ip]
        slices = self.discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}"
        ).items
        addresses = [
            address
            for item in slices
            for endpoint in item.endpoints or []
            if (endpoint.conditions.ready is not False or spec.publish_not_ready_addresses)
            and (hostname is None or endpoint.hostname == hostname)
            for address in endpoint.addresses
        ]
        return sorted(set(addresses)) or None


def _pod_address(dashed: str) -> list[str] | None:
    try:
        return [str(ipaddress.IPv4Address(dashed.replace("-", ".")))]
    except ValueError:
        return None


class _Truncating(DNSHandler):  # type: ignore[misc]
    udplen = 512  # RFC 1035's UDP limit, which CoreDNS keeps to for a client without EDNS


class _Quiet:
    """dnslib logs every query to stdout by default."""

    def __getattr__(self, _: str) -> Any:
        return lambda *args, **kwargs: None

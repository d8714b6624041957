"""The operator's settings, as the CLI gathers them (flags or CONCLAVE_* variables)."""

from __future__ import annotations

import dataclasses
import enum
import os
import socket


class LogFormat(enum.Enum):
    PLAIN = "plain"
    JSON = "json"


def default_identity() -> str:
    """The pod name in a cluster (the Deployment sets POD_NAME), else host and PID."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclasses.dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()
    """Watch only these namespaces; empty: the whole cluster."""
    kubeconfig: str | None = None
    context: str | None = None
    """The kubeconfig context to use; None: its current context (or in-cluster credentials)."""
    identity: str = dataclasses.field(default_factory=default_identity)
    health_address: str = "0.0.0.0"
    health_port: int = 8080
    """Serves /healthz, /readyz and /metrics on every replica, active or standby."""
    log_format: LogFormat = LogFormat.PLAIN
    verbose: bool = False
    leader_election_namespace: str = dataclasses.field(
        default_factory=lambda: os.environ.get("POD_NAMESPACE", "default")
    )
    leader_election_lease: str = "conclave-operator"
    """The leader Lease's name; the chart names it after the release, so that two releases
    in one namespace never share one."""
    lease_duration: float = 15.0
    """Seconds (the CLI reads Go-style durations such as ``15s``), as for every timing here."""
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    cluster_domain: str = "cluster.local"
    """The cluster's DNS domain, for node names (dns, hostname) and DNS discovery."""
    dns_server: str | None = None
    """HOST[:PORT] of the nameserver for the DNS strategies; None: the pod's resolver."""
    resync_seconds: float = 60.0
    """Every supervisor looks again at least this often, with or without events."""

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

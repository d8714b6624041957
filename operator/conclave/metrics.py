"""Every Prometheus metric the operator exports, in one registry.

Labels are few and bounded (namespace, topology, controller, result): never a pod, member,
singleton or uid, which would make a series per object. Capabilities add their metrics
here, so the dashboard and the alert rules have one list to check against.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram, Info

from conclave import __version__

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = prometheus_client.CollectorRegistry(auto_describe=True)

BUILD = Info("conclave_build", "The running operator's version.", registry=REGISTRY)
BUILD.info({"version": __version__})

LEADER = Gauge(
    "conclave_leader",
    "1 while this replica is the active one (holds the leader Lease), else 0.",
    registry=REGISTRY,
)
RECONCILE_TOTAL = Counter(
    "conclave_reconcile",
    "Supervisor iterations by controller and result (success, conflict, error).",
    ["controller", "result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "conclave_reconcile_seconds",
    "Time from a supervisor waking to its plan applied.",
    ["controller"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
API_ERRORS = Counter(
    "conclave_api_errors",
    "Failed Kubernetes API requests by verb and HTTP status (0: unreachable).",
    ["verb", "code"],
    registry=REGISTRY,
)
SUPERVISORS = Gauge(
    "conclave_supervisors",
    "Running supervisor tasks, one per ClusterTopology name in use.",
    registry=REGISTRY,
)
WRITES_TOTAL = Counter(
    "conclave_api_writes",
    "Writes the applier sent, by kind of write.",
    ["write"],
    registry=REGISTRY,
)


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Serve /metrics in a background thread."""
    prometheus_client.start_http_server(port, addr=address, registry=REGISTRY)

"""What the observer reads from the cache's objects."""

from __future__ import annotations

from typing import Any

from conclave.adapters.cache import Cache
from conclave.observe import reading


def pod(name: str, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "prod",
            "uid": f"u-{name}",
            "resourceVersion": "1",
            **metadata,
        },
        "status": {"podIP": "10.0.0.1", "phase": "Running"},
    }


def test_an_endpoint_whose_pod_is_deleted_or_gone_is_leaving() -> None:
    """The EndpointSlice controller removes a deleted pod's endpoint later than the pod
    goes: the endpoint alone must not keep a member that is no longer there."""
    cache = Cache()
    cache.put("Pod", pod("chat-0"))
    cache.put("Pod", pod("chat-1", deletionTimestamp="2026-12-01T10:00:00Z"))
    entries = [
        {
            "addresses": [f"10.0.0.{i}"],
            "conditions": {"ready": True},
            "targetRef": {"kind": "Pod", "name": name},
        }
        for i, name in enumerate(("chat-0", "chat-1", "chat-2"))
    ]
    cache.put(
        "EndpointSlice",
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "chat-abc",
                "namespace": "prod",
                "uid": "s1",
                "resourceVersion": "1",
                "labels": {reading.SERVICE_NAME_LABEL: "chat"},
            },
            "addressType": "IPv4",
            "endpoints": entries,
        },
    )
    leaving = {endpoint.pod: endpoint.pod_leaving for endpoint in reading.endpoints(cache, "prod", "chat")}
    assert leaving == {"chat-0": False, "chat-1": True, "chat-2": True}

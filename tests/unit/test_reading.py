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


def slice_of(entries: list[dict[str, Any]], managed_by: str) -> dict[str, Any]:
    labels = {reading.SERVICE_NAME_LABEL: "chat", reading.MANAGED_BY_LABEL: managed_by}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "chat-abc",
            "namespace": "prod",
            "uid": "s1",
            "resourceVersion": "1",
            "labels": labels,
        },
        "addressType": "IPv4",
        "endpoints": entries,
    }


def test_an_endpoint_whose_pod_is_deleted_or_gone_is_leaving() -> None:
    """The EndpointSlice controller removes a deleted pod's endpoint later than the pod
    goes: the endpoint alone must not keep a member that is no longer there. A slice it
    does not manage is taken as it says (only a pod being deleted is leaving)."""
    cache = Cache()
    cache.put("Pod", pod("chat-0"))
    cache.put("Pod", pod("chat-1", deletionTimestamp="2026-12-01T10:00:00Z"))
    cache.put("Pod", pod("chat-3"))
    entries = [
        {"addresses": [ip], "conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": name, **uid}}
        for ip, name, uid in (
            ("10.0.0.1", "chat-0", {"uid": "u-chat-0"}),
            ("10.0.0.2", "chat-0", {}),  # no uid to compare: the name decides
            ("10.0.0.3", "chat-1", {"uid": "u-chat-1"}),
            ("10.0.0.4", "chat-2", {"uid": "u-chat-2"}),
            ("10.0.0.5", "chat-3", {"uid": "u-chat-3-before"}),  # the predecessor of chat-3
        )
    ]

    def leaving() -> dict[str, bool]:
        return {endpoint.ip: endpoint.pod_leaving for endpoint in reading.endpoints(cache, "prod", "chat")}

    cache.put("EndpointSlice", slice_of(entries, reading.SLICE_CONTROLLER))
    assert leaving() == {
        "10.0.0.1": False,
        "10.0.0.2": False,
        "10.0.0.3": True,
        "10.0.0.4": True,
        "10.0.0.5": True,
    }
    cache.put("EndpointSlice", slice_of(entries, "someone-else"))
    assert leaving() == {
        "10.0.0.1": False,
        "10.0.0.2": False,
        "10.0.0.3": True,
        "10.0.0.4": False,
        "10.0.0.5": False,
    }

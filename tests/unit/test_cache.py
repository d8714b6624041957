"""The watch cache keeps what the operator reads, without copying, and derives (parses)
an object once per resourceVersion."""

from __future__ import annotations

from typing import Any

from conclave.adapters.cache import Cache, slim
from conclave.api import Singleton
from conclave.core.observations import Observed
from conclave.observe import reading


def pod(version: str = "1", uid: str = "u1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "chat-0",
            "namespace": "prod",
            "uid": uid,
            "resourceVersion": version,
            "labels": {"app": "chat"},
            "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}],
        },
        "spec": {"containers": [{"name": "beam", "image": "conclave.dev/fake:1", "env": [{"name": "A"}]}]},
        "status": {
            "podIP": "10.0.0.1",
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "beam", "ready": True}],
        },
    }


def test_a_pod_keeps_only_what_the_operator_reads() -> None:
    assert slim("Pod", pod()) == {
        "metadata": {
            "name": "chat-0",
            "namespace": "prod",
            "uid": "u1",
            "resourceVersion": "1",
            "labels": {"app": "chat"},
        },
        "status": {
            "podIP": "10.0.0.1",
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_other_kinds_keep_everything_but_managed_fields_and_share_it() -> None:
    body = {**pod(), "kind": "ConfigMap", "data": {"hosts": "a\n"}}
    kept = slim("ConfigMap", body)
    assert "managedFields" not in kept["metadata"]
    assert kept["data"] is body["data"]  # shared, not copied: readers never change a body
    assert {k: v for k, v in kept.items() if k != "metadata"} == {
        k: v for k, v in body.items() if k != "metadata"
    }


def test_an_object_is_derived_once_per_resource_version_and_uid() -> None:
    cache = Cache()
    made: list[str] = []

    def make(body: Any) -> str:
        made.append(body["metadata"]["resourceVersion"])
        return f"parsed {body['metadata']['resourceVersion']}"

    for version, uid in (("1", "u1"), ("1", "u1"), ("2", "u1"), ("2", "u1"), ("2", "u2")):
        cache.put("Pod", pod(version, uid))
        body = cache.get("Pod", "prod", "chat-0")
        assert body is not None
        assert cache.derived("Pod", body, "facts", make) == f"parsed {version}"
    assert made == ["1", "2", "2"]  # the same-named successor (u2) is made afresh
    cache.drop("Pod", "prod", "chat-0")
    cache.put("Pod", pod("2", "u2"))
    assert cache.derived("Pod", pod("2", "u2"), "facts", make) == "parsed 2"
    assert made == ["1", "2", "2", "2"]  # dropped with the object


def test_a_singleton_lease_keeps_what_its_state_is_read_from() -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "s", "namespace": "prod", "uid": "u", "resourceVersion": "7",
                     "annotations": {"conclave.dev/owner": "chat@10.0.0.1"},
                     "ownerReferences": [{"kind": "Singleton", "uid": "s-uid", "controller": True}],
                     "managedFields": [{"manager": "conclave"}]},
        "spec": {"holderIdentity": "chat@10.0.0.1", "leaseTransitions": 3, "leaseDurationSeconds": 15,
                 "acquireTime": "2026-12-01T00:00:00.000000Z", "renewTime": "2026-12-01T00:00:00.000000Z"},
    }  # fmt: skip
    kept = slim("Lease", lease)
    assert set(kept["spec"]) == {"holderIdentity", "leaseTransitions", "leaseDurationSeconds"}
    assert reading.lease_state(kept) == reading.lease_state(lease)


def test_equal_parts_are_kept_once_among_the_latest_keys() -> None:
    cache = Cache(shared=2)
    first = cache.shared("a", ["spec"])
    assert cache.shared("a", ["spec"]) is first
    cache.shared("b", ["b"])
    cache.shared("a", ["again"])  # a is the latest again
    cache.shared("c", ["c"])  # b, the oldest, goes
    assert cache.shared("a", ["other"]) is first
    fresh = ["b, anew"]
    assert cache.shared("b", fresh) is fresh


def test_singletons_parsed_alike_share_their_spec_and_equal_conditions() -> None:
    cache = Cache()

    def singleton(name: str, owner: str) -> dict[str, Any]:
        found = {
            "type": "TopologyFound",
            "status": "True",
            "reason": "TopologyFound",
            "message": "ok",
            "lastTransitionTime": "2026-12-01T00:00:00Z",
        }
        placed = {**found, "type": "Placed", "reason": "Placed", "message": f"Owned by {owner}"}
        status = {"phase": "Placed", "conditions": [found, placed]}
        return {"apiVersion": "conclave.dev/v1alpha1", "kind": "Singleton",
                "metadata": {"name": name, "namespace": "prod", "uid": name, "resourceVersion": "1"},
                "spec": {"topology": "chat"}, "status": status}  # fmt: skip

    for name, owner in (("a", "x"), ("b", "y")):
        cache.put("Singleton", singleton(name, owner))
    bodies = cache.in_namespace("Singleton", "prod")
    a, b = (reading.parsed(cache, "Singleton", Singleton, body) for body in bodies)
    assert isinstance(a, Observed)
    assert isinstance(b, Observed)
    assert a.resource.spec is b.resource.spec
    assert a.resource.status.conditions[0] is b.resource.status.conditions[0]
    assert a.resource.status.conditions[1] != b.resource.status.conditions[1]
    assert a.resource == Singleton.from_api(singleton("a", "x"))  # shared, yet what was parsed

"""An API server in memory, for running the operator's observe → plan → apply in one
process without a control plane: the planner's benchmark and its property tests.

It answers the applier's requests (create, merge patch, delete, get) as the API server
would for plain objects: resourceVersions and uids, a 409 for a stale resourceVersion or
a name taken, 404s, and the answer is what is stored. It validates nothing, runs no
controllers and keeps no watches; ``World`` plays the controllers and the watches.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from conclave.adapters.apiclient import Guard
from conclave.adapters.cache import Cache
from conclave.api import kinds
from conclave.errors import ApiError, ConflictError, NotFoundError

JSON = dict[str, Any]


def merged(target: Any, patch: Any) -> Any:
    """RFC 7386: ``patch`` applied to ``target``, as a new object."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merged(result.get(key), value)
    return result


class MemoryApi:
    """Objects by path (``/api/v1/namespaces/x/pods/y``); counts the writes it accepted.

    ``refuse`` makes the next that many writes fail with a 500, as an API server that is
    restarting does."""

    def __init__(self) -> None:
        self.objects: dict[str, JSON] = {}
        self._versions = itertools.count(1)
        self.writes = 0
        self.refuse = 0

    def stamped(self, body: JSON, *, uid: str | None = None) -> JSON:
        """``body`` with a new resourceVersion (and a uid if it has none), in a metadata of
        its own: the previous version's, which a cache may hold, is never changed."""
        metadata = body["metadata"] = dict(body.get("metadata") or {})
        metadata["uid"] = uid or metadata.get("uid") or f"uid-{next(self._versions)}"
        metadata["resourceVersion"] = str(next(self._versions))
        return body

    def seed(self, path: str, body: JSON) -> JSON:
        """Store ``body`` at ``path`` as if it had been created; return what is stored."""
        self.objects[path] = self.stamped(copy.deepcopy(body))
        return self.objects[path]

    def _write(self) -> None:
        if self.refuse:
            self.refuse -= 1
            raise ApiError(500, "InternalError", "refused (scripted)")
        self.writes += 1

    async def get(self, path: str) -> JSON:
        if path not in self.objects:
            raise NotFoundError(404, "NotFound", f"{path} not found")
        return self.objects[path]

    async def create(self, path: str, body: JSON, guard: Guard | None = None) -> JSON:
        if guard is not None:
            guard()
        self._write()
        if path.endswith("/events"):
            return dict(body)
        name = body["metadata"]["name"]
        if f"{path}/{name}" in self.objects:
            raise ConflictError(409, "AlreadyExists", f"{path}/{name} already exists")
        return self.seed(f"{path}/{name}", body)

    async def merge_patch(self, path: str, patch: JSON, guard: Guard | None = None) -> JSON:
        if guard is not None:
            guard()
        target = path.removesuffix("/status")
        if target not in self.objects:
            raise NotFoundError(404, "NotFound", f"{target} not found")
        current = self.objects[target]
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            raise ConflictError(409, "Conflict", f"{target} changed since {expected}")
        expected_uid = (patch.get("metadata") or {}).get("uid")
        if expected_uid is not None and expected_uid != current["metadata"]["uid"]:
            raise ConflictError(409, "Conflict", f"{target} is another object now")
        self._write()
        self.objects[target] = self.stamped(merged(current, patch), uid=current["metadata"]["uid"])
        return self.objects[target]

    async def delete(self, path: str, options: JSON | None = None, guard: Guard | None = None) -> JSON:
        if guard is not None:
            guard()
        if path not in self.objects:
            raise NotFoundError(404, "NotFound", f"{path} not found")
        self._write()
        return self.objects.pop(path)


class World:
    """A namespace with one KubernetesAPI topology behind a headless Service, held by a
    MemoryApi and mirrored into an operator's cache as its watches would (at once): pods
    with an EndpointSlice that follows them as the EndpointSlice controller's does,
    Singletons and ProcessGroups."""

    def __init__(self, cache: Cache, namespace: str = "bench", topology: str = "sing") -> None:
        self.api, self.cache = MemoryApi(), cache
        self.namespace, self.topology = namespace, topology
        self._addresses = itertools.count(2)
        self.lagging: dict[str, bool] = {}
        """Pods whose endpoint's readiness the EndpointSlice shows otherwise (it lags)."""
        self._put(kinds.TOPOLOGY, {
            "apiVersion": kinds.TOPOLOGY.api_version, "kind": kinds.TOPOLOGY.name,
            "metadata": {"name": topology, "namespace": namespace, "generation": 1},
            "spec": {"strategy": "KubernetesAPI", "service": topology, "applicationName": topology},
        })  # fmt: skip
        self._put(kinds.SERVICE, {"metadata": {"name": topology, "namespace": namespace},
                                  "spec": {"clusterIP": "None"}})  # fmt: skip
        self._publish()

    def _path(self, kind: kinds.Kind, name: str) -> str:
        return kind.path(self.namespace, name)

    def _put(self, kind: kinds.Kind, body: JSON) -> JSON:
        body["metadata"]["namespace"] = self.namespace
        stored = self.api.seed(self._path(kind, body["metadata"]["name"]), body)
        self.cache.put(kind.name, stored)
        return stored

    def _change(self, kind: kinds.Kind, name: str, patch: JSON) -> None:
        """Change an object as someone else would (no resourceVersion check)."""
        path = self._path(kind, name)
        body = merged(self.api.objects[path], patch)
        self.api.objects[path] = self.api.stamped(body)
        self.cache.put(kind.name, body)

    def _remove(self, kind: kinds.Kind, name: str) -> None:
        self.api.objects.pop(self._path(kind, name), None)
        self.cache.drop(kind.name, self.namespace, name)

    def pods(self) -> dict[str, JSON]:
        prefix = kinds.POD.collection(self.namespace) + "/"
        return {
            path.removeprefix(prefix): body
            for path, body in self.api.objects.items()
            if path.startswith(prefix)
        }

    def add_pod(self, name: str, labels: dict[str, str] | None = None, *, ready: bool = True) -> None:
        """A running pod of the topology's app, at a fresh address (a successor gets a new one)."""
        address = next(self._addresses)
        self._put(kinds.POD, {
            "metadata": {"name": name, "labels": {"app": self.topology, **(labels or {})}},
            "status": {"podIP": f"10.99.{address // 250}.{address % 250 + 1}", "phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
        })  # fmt: skip
        self._publish()

    def set_ready(self, name: str, ready: bool) -> None:
        condition = {"type": "Ready", "status": "True" if ready else "False"}
        self._change(kinds.POD, name, {"status": {"conditions": [condition]}})
        self._publish()

    def terminate(self, name: str) -> None:
        self._change(kinds.POD, name, {"metadata": {"deletionTimestamp": "2026-12-01T00:00:00Z"}})
        self._publish()

    def delete_pod(self, name: str) -> None:
        self._remove(kinds.POD, name)
        self._publish()

    def lag(self, name: str, ready: bool | None) -> None:
        """The EndpointSlice shows the pod's endpoint ``ready`` whatever the pod says
        (None: it follows the pod again)."""
        if ready is None:
            self.lagging.pop(name, None)
        else:
            self.lagging[name] = ready
        self._publish()

    def annotate_pod(self, name: str, annotations: dict[str, str | None]) -> None:
        self._change(kinds.POD, name, {"metadata": {"annotations": annotations}})

    def label_pod(self, name: str, labels: dict[str, str | None]) -> None:
        self._change(kinds.POD, name, {"metadata": {"labels": labels}})

    def _publish(self) -> None:
        """The Service's EndpointSlice, as the EndpointSlice controller writes it."""
        endpoints = []
        for name, pod in sorted(self.pods().items()):
            status, metadata = pod["status"], pod["metadata"]
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])
            ready = self.lagging.get(name, ready)
            terminating = "deletionTimestamp" in metadata
            endpoints.append({
                "addresses": [status["podIP"]], "targetRef": {"kind": "Pod", "name": name},
                "conditions": {"ready": ready and not terminating, "terminating": terminating},
            })  # fmt: skip
        self._put(kinds.ENDPOINT_SLICE, {
            "metadata": {"name": f"{self.topology}-1",
                         "labels": {"kubernetes.io/service-name": self.topology}},
            "addressType": "IPv4", "endpoints": endpoints,
        })  # fmt: skip

    def add_singleton(self, name: str, spec: JSON | None = None) -> None:
        self._put(kinds.SINGLETON, {
            "apiVersion": kinds.SINGLETON.api_version, "kind": kinds.SINGLETON.name,
            "metadata": {"name": name, "generation": 1},
            "spec": {"topology": self.topology, **(spec or {})},
        })  # fmt: skip

    def respec(self, kind: kinds.Kind, name: str, spec: JSON) -> None:
        generation = self.api.objects[self._path(kind, name)]["metadata"].get("generation", 1)
        self._change(kind, name, {"metadata": {"generation": generation + 1}, "spec": spec})

    def delete(self, kind: kinds.Kind, name: str) -> None:
        self._remove(kind, name)

    def add_group(self, name: str, selector: JSON) -> None:
        self._put(kinds.PROCESS_GROUP, {
            "apiVersion": kinds.PROCESS_GROUP.api_version, "kind": kinds.PROCESS_GROUP.name,
            "metadata": {"name": name, "generation": 1, "creationTimestamp": "2026-12-01T00:00:00Z"},
            "spec": {"topology": self.topology, "group": name, "selector": selector},
        })  # fmt: skip

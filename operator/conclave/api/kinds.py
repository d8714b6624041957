"""Every kind conclave reads or writes, in one registry: its API group, version and plural.

Paths, watch registrations, owner references and the CRD generator all look a kind up
here, so a plural is spelt once.
"""

from __future__ import annotations

import dataclasses

from conclave.api.base import GROUP, VERSION


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str
    group: str
    """"" for the core API group."""
    version: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def collection(self, namespace: str) -> str:
        """The namespaced collection's path, e.g. ``/api/v1/namespaces/prod/pods``."""
        prefix = "/apis" if self.group else "/api"
        return f"{prefix}/{self.api_version}/namespaces/{namespace}/{self.plural}"

    def path(self, namespace: str, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"


TOPOLOGY = Kind("ClusterTopology", GROUP, VERSION, "clustertopologies")
PROCESS_GROUP = Kind("ProcessGroup", GROUP, VERSION, "processgroups")
SINGLETON = Kind("Singleton", GROUP, VERSION, "singletons")
SERVICE = Kind("Service", "", "v1", "services")
ENDPOINT_SLICE = Kind("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices")
POD = Kind("Pod", "", "v1", "pods")
CONFIG_MAP = Kind("ConfigMap", "", "v1", "configmaps")
LEASE = Kind("Lease", "coordination.k8s.io", "v1", "leases")
SECRET = Kind("Secret", "", "v1", "secrets")
EVENT = Kind("Event", "events.k8s.io", "v1", "events")

CONCLAVE = (TOPOLOGY, PROCESS_GROUP, SINGLETON)
"""conclave's own kinds, whose schemas the CRDs carry."""
BY_NAME = {
    kind.name: kind for kind in (*CONCLAVE, SERVICE, ENDPOINT_SLICE, POD, CONFIG_MAP, LEASE, SECRET, EVENT)
}


def of(name: str) -> Kind:
    """The kind called ``name`` ("Pod"); raises KeyError for a kind conclave does not use."""
    return BY_NAME[name]

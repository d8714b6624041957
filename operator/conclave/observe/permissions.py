"""Asks the API server what this operator may do (SelfSubjectAccessReview), so that a
forbidden watch shows up as a condition instead of as an empty cluster.

A watch that RBAC refuses delivers nothing, which looks exactly like a Service without
endpoints; libcluster turns a 403 into an empty member list and disconnects everyone.
The answers are remembered for a while: permissions change rarely, and asking on every
iteration would cost a request per topology per event.
"""

from __future__ import annotations

import time

from conclave.adapters.apiclient import ApiClient
from conclave.api import ClusterTopology

REMEMBER_SECONDS = 60.0

Check = tuple[str, str, str]
"""(API group, resource, verb)."""


class Permissions:
    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self._answers: dict[tuple[str, Check], tuple[float, bool]] = {}

    async def denied(self, namespace: str, checks: list[Check]) -> list[str]:
        """The checks RBAC refuses in ``namespace``, as "verb resource.group" strings."""
        refused = []
        for check in checks:
            if not await self._allowed(namespace, check):
                group, resource, verb = check
                refused.append(f"{verb} {resource}{'.' + group if group else ''}")
        return refused

    async def _allowed(self, namespace: str, check: Check) -> bool:
        remembered = self._answers.get((namespace, check))
        if remembered is not None and time.monotonic() - remembered[0] < REMEMBER_SECONDS:
            return remembered[1]
        group, resource, verb = check
        review = await self.api.create(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {
                    "resourceAttributes": {
                        "namespace": namespace,
                        "group": group,
                        "resource": resource,
                        "verb": verb,
                    }
                },
            },
        )
        allowed = bool(review.get("status", {}).get("allowed"))
        self._answers[(namespace, check)] = (time.monotonic(), allowed)
        return allowed


WATCHED_BY_STRATEGY: dict[str, list[Check]] = {
    "KubernetesAPI": [
        (group, resource, verb)
        for group, resource in (("discovery.k8s.io", "endpointslices"), ("", "pods"), ("", "services"))
        for verb in ("list", "watch")
    ],
    "KubernetesDNS": [("", "services", "list"), ("", "services", "watch")],
}


async def refused(topology: ClusterTopology | None, checker: Permissions | None) -> tuple[str, ...]:
    """What RBAC refuses of the watches the topology's strategy relies on."""
    if topology is None or checker is None:
        return ()
    checks = WATCHED_BY_STRATEGY.get(topology.spec.strategy, [])
    return tuple(await checker.denied(topology.metadata.namespace, checks)) if checks else ()

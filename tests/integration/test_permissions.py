"""The operator asks the real API server what RBAC allows it."""

from __future__ import annotations

import asyncio

from kubernetes import client

from conclave.adapters.apiclient import ApiClient
from conclave.observe.permissions import WATCHED_BY_STRATEGY, Permissions


def denied_for(configuration: client.Configuration, namespace: str) -> list[str]:
    async def ask() -> list[str]:
        async with ApiClient(configuration, "test") as api:
            return await Permissions(api).denied(namespace, WATCHED_BY_STRATEGY["KubernetesAPI"])

    return asyncio.run(ask())


def test_a_service_account_without_roles_is_refused_every_watch_discovery_needs(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "discoverer"}})
    client.RbacAuthorizationV1Api(api_client).create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "half"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]},
            ],
        },
    )
    client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "half"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "half"},
            "subjects": [{"kind": "ServiceAccount", "name": "discoverer", "namespace": namespace}],
        },
    )
    token = core.create_namespaced_service_account_token("discoverer", namespace, {"spec": {}}).status.token
    restricted = client.Configuration()
    restricted.host = api_client.configuration.host
    restricted.ssl_ca_cert = api_client.configuration.ssl_ca_cert
    restricted.api_key = {"BearerToken": f"Bearer {token}"}

    assert denied_for(restricted, namespace) == ["watch endpointslices.discovery.k8s.io"]
    assert denied_for(api_client.configuration, namespace) == []

"""Integration fixtures: the generated CRDs, installed once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from conclave.api import crdgen
from conclave.localcluster.dnsserver import ClusterDNS
from support import eventually


def established(api: client.ApiextensionsV1Api, name: str) -> bool:
    conditions = api.read_custom_resource_definition(name).status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture(scope="session")
def installed_crds(api_client: client.ApiClient) -> None:
    """Create or replace the CRDs from the models (not from crds/: the models are the source)."""
    api = client.ApiextensionsV1Api(api_client)
    for definition in crdgen.all_crds():
        name = definition["metadata"]["name"]
        try:
            current = api.read_custom_resource_definition(name)
        except client.exceptions.ApiException as error:
            if error.status != 404:
                raise
            api.create_custom_resource_definition(definition)
        else:
            definition["metadata"]["resourceVersion"] = current.metadata.resource_version
            api.replace_custom_resource_definition(name, definition)
        eventually(lambda n=name: established(api, n))


@pytest.fixture(scope="session")
def cluster_dns(api_client: client.ApiClient) -> Iterator[ClusterDNS]:
    """The local cluster's DNS server, answering from the API like CoreDNS."""
    with ClusterDNS(api_client) as dns:
        yield dns

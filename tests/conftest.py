"""Fixtures shared by every test: the real local control plane, a namespace per test,
the pod network and the fake kubelet. Unit tests use none of them, so `-m unit` starts
nothing. Set CONCLAVE_KUBECONFIG to run against an existing cluster instead; tests that
need the pod network or the fake kubelet are then skipped, saying why.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from conclave_harness.localcluster import LocalCluster, PodNetwork
from conclave_harness.localcluster.kubelet import FakeKubelet
from support import Cluster, Operators

# Two test sessions on one machine must not share a cluster (one's teardown would stop the
# other's): give a second session its own name and pod network through these variables.
TEST_CLUSTER = os.environ.get("CONCLAVE_TEST_CLUSTER", "pytest")
TEST_POD_CIDR = os.environ.get("CONCLAVE_TEST_POD_CIDR", "10.245.0.0/16")
AUDIT_POLICY = Path(__file__).parent / "audit-policy.yaml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the folder it lives in, so `-m unit` selects tests/unit."""
    for item in items:
        for kind in ("unit", "integration", "e2e"):
            if f"{os.sep}tests{os.sep}{kind}{os.sep}" in str(item.path):
                item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    existing = os.environ.get("CONCLAVE_KUBECONFIG")
    if existing:
        yield Cluster(kubeconfig=Path(existing), network=None, audit_log=None)
        return
    local = LocalCluster(
        name=TEST_CLUSTER, pod_cidr=TEST_POD_CIDR, die_with_caller=True, audit_policy=AUDIT_POLICY
    )
    local.up()
    try:
        yield Cluster(kubeconfig=local.kubeconfig, network=local.network, audit_log=local.audit_log)
    finally:
        local.down()


@pytest.fixture(scope="session")
def api_client(cluster: Cluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace, its default ServiceAccount in place (pods need it to be admitted)."""
    core = client.CoreV1Api(api_client)
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"conclave.dev/test": "true"}}})
    for _ in watch.Watch().stream(
        core.list_namespaced_service_account,
        name,
        field_selector="metadata.name=default",
        timeout_seconds=30,
    ):
        break  # the first event is the ServiceAccount, listed or created
    else:
        raise TimeoutError(f"No default ServiceAccount in namespace {name} after 30s")
    yield name
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)


@pytest.fixture(scope="session")
def pod_network(cluster: Cluster) -> PodNetwork:
    if cluster.network is None:
        pytest.skip("needs the local cluster's pod network (CONCLAVE_KUBECONFIG is set)")
    return cluster.network


@pytest.fixture(scope="session")
def kubelet(api_client: client.ApiClient, pod_network: PodNetwork) -> Iterator[FakeKubelet]:
    with FakeKubelet(api_client, pod_network) as fake:
        yield fake


@pytest.fixture
def start_operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Operators]:
    """Start `conclave run` against the test cluster, watching the test's namespace."""
    operators = Operators(cluster.kubeconfig, namespace, tmp_path)
    yield operators
    for operator in operators.started:
        code = operator.stop()
        print(f"--- {operator.identity} exited {code}; its log:\n{operator.output()}")  # shown on failure

"""The harness is real: the EndpointSlice controller, the garbage collector, RBAC and the
pod network all do what they do in a real cluster."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conclave_harness.localcluster import PodNetwork
from conclave_harness.localcluster.kubelet import NEVER, TERMINATION_DELAY_ANNOTATION, FakeKubelet
from support import eventually


def make_pod(name: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
        "spec": {"containers": [{"name": "app", "image": "conclave.dev/fake:1"}]},
    }


def slice_endpoints(api_client: client.ApiClient, namespace: str, service: str) -> dict[str, dict[str, Any]]:
    """Pod name → {ip, ready, terminating} across every slice of the Service."""
    slices = client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    return {
        endpoint.target_ref.name: {
            "ip": endpoint.addresses[0],
            "ready": endpoint.conditions.ready,
            "terminating": bool(endpoint.conditions.terminating),
        }
        for item in slices.items
        for endpoint in item.endpoints or []
    }


@contextlib.contextmanager
def http_server_in_pod_network(network: PodNetwork, address: str, port: int) -> Iterator[None]:
    process = subprocess.Popen(
        network.command(["python3", "-m", "http.server", str(port), "--bind", address]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def fetch(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            status: int = response.status
            return status
    except OSError:
        return None


def test_headless_service_follows_fake_kubelet_pods(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, pod_network: PodNetwork
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "smoke"},
            "spec": {"clusterIP": "None", "selector": {"app": "smoke"}, "ports": [{"port": 8080}]},
        },
    )
    core.create_namespaced_pod(namespace, make_pod("smoke-0", {"app": "smoke"}))
    core.create_namespaced_pod(namespace, make_pod("smoke-1", {"app": "smoke"}))
    core.create_namespaced_pod(
        namespace, make_pod("smoke-2", {"app": "smoke"}, {TERMINATION_DELAY_ANNOTATION: NEVER})
    )

    endpoints = eventually(
        lambda: (
            (found := slice_endpoints(api_client, namespace, "smoke"))
            and len(found) == 3
            and all(e["ready"] for e in found.values())
            and found
        )
    )
    assert {pod: e["ready"] for pod, e in endpoints.items()} == {
        "smoke-0": True,
        "smoke-1": True,
        "smoke-2": True,
    }
    addresses = [e["ip"] for e in endpoints.values()]
    assert len(set(addresses)) == 3
    assert all(ipaddress.ip_address(ip) in pod_network.network for ip in addresses)
    assert set(addresses) <= set(pod_network.addresses())  # other tests' pods may still be going

    address = endpoints["smoke-0"]["ip"]
    with http_server_in_pod_network(pod_network, address, 8080):
        assert eventually(lambda: fetch(f"http://{address}:8080/")) == 200

    kubelet.set_ready(namespace, "smoke-1", ready=False)
    eventually(lambda: slice_endpoints(api_client, namespace, "smoke")["smoke-1"]["ready"] is False)

    core.delete_namespaced_pod("smoke-2", namespace)
    lingering = eventually(lambda: slice_endpoints(api_client, namespace, "smoke")["smoke-2"]["terminating"])
    assert lingering is True
    assert core.read_namespaced_pod("smoke-2", namespace).metadata.deletion_timestamp is not None

    kubelet.confirm_termination(namespace, "smoke-2")
    remaining = eventually(
        lambda: (
            (found := slice_endpoints(api_client, namespace, "smoke")) and "smoke-2" not in found and found
        )
    )
    assert {pod: e["ready"] for pod, e in remaining.items()} == {"smoke-0": True, "smoke-1": False}
    gone_address = endpoints["smoke-2"]["ip"]
    eventually(lambda: gone_address not in pod_network.addresses())


def test_address_without_a_pod_times_out(pod_network: PodNetwork) -> None:
    """A dead pod's IP does not refuse: nothing answers ARP, so a connect times out."""
    unassigned = str(pod_network.network.broadcast_address - 1)
    assert unassigned not in pod_network.addresses()
    with socket.socket() as probe:
        probe.settimeout(0.5)
        with pytest.raises(TimeoutError):
            probe.connect((unassigned, 80))


def test_garbage_collector_deletes_dependents(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
    }
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "dependent", "ownerReferences": [reference]}}
    )
    core.delete_namespaced_config_map("owner", namespace)

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as error:
            return error.status == 404
        return False

    assert eventually(dependent_gone)


def test_rbac_refuses_a_service_account_without_roles(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    configuration = client.Configuration()
    configuration.host = api_client.configuration.host
    configuration.ssl_ca_cert = api_client.configuration.ssl_ca_cert
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(configuration) as nobody:
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(nobody).list_namespaced_pod(namespace)
        who_am_i = client.AuthenticationV1Api(nobody).create_self_subject_review({})
    assert refused.value.status == 403
    assert who_am_i.status.user_info.username == f"system:serviceaccount:{namespace}:nobody"

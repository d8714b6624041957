"""Helpers shared by the integration and e2e tests (plain functions and classes, no fixtures)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from conclave_harness.localcluster import PodNetwork
from conclave_harness.localcluster.clusters import free_port

T = TypeVar("T")

GROUP, VERSION = "conclave.dev", "v1alpha1"
STABLE_AFTER = 2.0
"""The partition debounce of the topologies the integration tests start."""


def eventually(probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll until ``probe`` returns something truthy and return it; the cluster is asynchronous."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last result: {result!r}")
        time.sleep(interval)


def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def create(api_client: client.ApiClient, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", **body}
    created: dict[str, Any] = custom(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, body
    )
    return created


def read(api_client: client.ApiClient, namespace: str, plural: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = custom(api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )
    return found


def condition(body: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for entry in body.get("status", {}).get("conditions", []):
        if entry["type"] == kind:
            found: dict[str, Any] = entry
            return found
    return None


def raw_get(api_client: client.ApiClient, path: str, accept: str = "application/json") -> Any:
    """GET a path and decode its JSON body, e.g. to read the Table `kubectl get` prints."""
    request = api_client.param_serialize(
        "GET", path, header_params={"Accept": accept}, auth_settings=["BearerToken"]
    )
    response = api_client.call_api(*request)
    body = response.read()
    assert 200 <= response.status <= 299, f"GET {path}: {response.status} {body[:300]!r}"
    return json.loads(body)


def events_about(api_client: client.ApiClient, namespace: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, note) of the events about ``name``, read as JSON: the client's models
    refuse events that other controllers post without an eventTime."""
    found = raw_get(api_client, f"/apis/events.k8s.io/v1/namespaces/{namespace}/events")["items"]
    return [
        (e.get("type", ""), e.get("reason", ""), e.get("note", ""))
        for e in found
        if e.get("regarding", {}).get("name") == name
    ]


def member_pod(name: str) -> dict[str, Any]:
    """A pod the fake kubelet runs as a member of the tests' `chat` Service."""
    return {
        "metadata": {"name": name, "labels": {"app": "chat"}},
        "spec": {"containers": [{"name": "beam", "image": "conclave.dev/fake:1"}]},
    }


def partition_of(api_client: client.ApiClient, namespace: str) -> dict[str, Any]:
    partition: dict[str, Any] = (
        read(api_client, namespace, "clustertopologies", "chat").get("status", {}).get("partition", {})
    )
    return partition


@dataclasses.dataclass
class OperatorProcess:
    """A `conclave run` process under test; its log is kept for the failure report."""

    identity: str
    process: subprocess.Popen[bytes]
    log: Path
    health_port: int

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def metric(self, name: str, **labels: str) -> float | None:
        """The sample of ``name`` with exactly these labels on its /metrics; None: absent, or
        the process does not serve yet (a standby starts its server while it campaigns)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/metrics", timeout=2) as page:
                families = text_string_to_metric_families(page.read().decode())
        except urllib.error.URLError:
            return None
        return next(
            (s.value for f in families for s in f.samples if s.name == name and s.labels == labels), None
        )


class Operators:
    """Starts `conclave run` processes against the test cluster, watching one namespace;
    keeps them, so a test can kill one and the fixture stops the rest."""

    def __init__(self, kubeconfig: Path, namespace: str, logs: Path) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.logs = logs
        self.started: list[OperatorProcess] = []

    def __call__(self, identity: str = "operator-0", *extra: str) -> OperatorProcess:
        port = free_port()
        log = self.logs / f"{identity}.log"
        command = [
            sys.executable, "-m", "conclave", "run",
            "--kubeconfig", str(self.kubeconfig),
            "--namespace", self.namespace,
            "--identity", identity,
            "--leader-election-namespace", self.namespace,
            "--health-port", str(port),
            "--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms",
            *extra,
        ]  # fmt: skip
        with log.open("wb") as sink:
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        operator = OperatorProcess(identity, process, log, port)
        self.started.append(operator)
        return operator


@dataclasses.dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    network: PodNetwork | None
    """None on an existing cluster, which has no pod network of ours."""
    audit_log: Path | None

    def audit_events(self) -> list[dict[str, Any]]:
        if self.audit_log is None:
            pytest.skip("needs the local cluster's audit log (CONCLAVE_KUBECONFIG is set)")
        lines = self.audit_log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def token_kubeconfig(
    api_client: client.ApiClient, namespace: str, service_account: str, server: str, path: Path
) -> Path:
    """A kubeconfig for ``server`` that authenticates as the ServiceAccount, as a pod's token would."""
    token = client.CoreV1Api(api_client).create_namespaced_service_account_token(
        service_account, namespace, {"spec": {"expirationSeconds": 3600}}
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server}}],
        "users": [{"name": service_account, "user": {"token": token.status.token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": service_account}}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def cluster_admin(api_client: client.ApiClient, namespace: str, name: str) -> Iterator[str]:
    """A ServiceAccount bound to cluster-admin, for an operator that must reach the API through
    a test's proxy (which can forward a token, not the admin's client certificate); what the
    chart grants is proven by the chart scenario, not here. The binding is cluster-scoped, so
    the namespace's deletion would leave it: it is removed on the way out."""
    client.CoreV1Api(api_client).create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac = client.RbacAuthorizationV1Api(api_client)
    binding = f"{namespace}-{name}"
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": binding, "labels": {"conclave.dev/test": "true"}},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
    )
    try:
        yield name
    finally:
        with contextlib.suppress(ApiException):
            rbac.delete_cluster_role_binding(binding)


def stop_and_show(operator: OperatorProcess) -> None:
    """Stop the operator and print its log (pytest shows it when the test fails)."""
    code = operator.stop()
    print(f"--- {operator.identity} exited {code}; its log:\n{operator.output()}")

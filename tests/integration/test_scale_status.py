"""Status that fits any size, on the real control plane (issue #16): a topology of 600
members (past the CRD's 500-item lists) has exact counts and a status the API accepts; a
status write the API refuses shows up as Ready=False/ApiError through a small patch of the
conditions; and iterating again posts each membership event once.

The members are endpoints of hand-made EndpointSlices (a selector-less headless Service,
its slices labelled as another controller's), the cheapest way to 600 members: no pods.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conflicts import ConflictingProxy
from support import (
    GROUP,
    VERSION,
    OperatorProcess,
    Operators,
    cluster_admin,
    condition,
    create,
    custom,
    events_about,
    eventually,
    read,
    stop_and_show,
    token_kubeconfig,
)

pytestmark = pytest.mark.usefixtures("installed_crds")

SLICE_SIZE = 100
Start = Callable[..., tuple["RefusingProxy", OperatorProcess]]
SERVICE_ACCOUNT = "conclave"


def ip(i: int) -> str:
    return f"10.77.{i // 250}.{i % 250 + 1}"


def service(api_client: client.ApiClient, namespace: str) -> None:
    client.CoreV1Api(api_client).create_namespaced_service(
        namespace, {"metadata": {"name": "chat"}, "spec": {"clusterIP": "None", "ports": [{"port": 4369}]}}
    )


def slices(
    api_client: client.ApiClient, namespace: str, size: int, unready: frozenset[int] = frozenset()
) -> None:
    """Endpoints 0..size-1 in slices of SLICE_SIZE, ``chat-<n>`` (create or replace)."""
    api = client.DiscoveryV1Api(api_client)
    for first in range(0, size, SLICE_SIZE):
        body = {
            "metadata": {
                "name": f"chat-{first // SLICE_SIZE}",
                "labels": {
                    "kubernetes.io/service-name": "chat",
                    "endpointslice.kubernetes.io/managed-by": "test",
                },
            },
            "addressType": "IPv4",
            "ports": [{"port": 4369, "name": ""}],
            "endpoints": [
                {
                    "addresses": [ip(i)],
                    "conditions": {"ready": i not in unready},
                    "targetRef": {"kind": "Pod", "name": f"chat-{i:04d}", "namespace": namespace},
                }
                for i in range(first, min(first + SLICE_SIZE, size))
            ],
        }
        try:
            api.replace_namespaced_endpoint_slice(body["metadata"]["name"], namespace, body)
        except ApiException as error:
            if error.status != 404:
                raise
            api.create_namespaced_endpoint_slice(namespace, body)


def topology(api_client: client.ApiClient, namespace: str) -> None:
    spec = {"strategy": "KubernetesAPI", "service": "chat", "applicationName": "chat"}
    create(
        api_client,
        namespace,
        "clustertopologies",
        {"kind": "ClusterTopology", "metadata": {"name": "chat"}, "spec": spec},
    )


def status_of(api_client: client.ApiClient, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = read(api_client, namespace, "clustertopologies", "chat").get("status", {})
    return found


def hosts(api_client: client.ApiClient, namespace: str) -> tuple[list[str], list[dict[str, Any]]] | None:
    """The members ConfigMap's hosts.json and members.json; None before it exists."""
    try:
        data = client.CoreV1Api(api_client).read_namespaced_config_map("chat-members", namespace).data
    except ApiException:
        return None
    return json.loads(data["hosts.json"]), json.loads(data["members.json"])


def membership_events(api_client: client.ApiClient, namespace: str) -> Counter[str]:
    return Counter(
        note
        for _, reason, note in events_about(api_client, namespace, "chat")
        if reason in ("MemberJoined", "MemberLeft")
    )


def reconciled(operator: OperatorProcess) -> float:
    return operator.metric("conclave_reconcile_total", controller="topology", result="success") or 0.0


def settled(api_client: client.ApiClient, namespace: str, operator: OperatorProcess) -> None:
    """Two whole supervisor iterations after now, each woken by touching the topology (with
    no probe, nothing else wakes it before the resync)."""
    for touch in range(2):
        later = reconciled(operator) + 1
        patch = {"metadata": {"annotations": {"test.conclave.dev/touch": f"{touch}-{later}"}}}
        custom(api_client).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "clustertopologies", "chat", patch
        )
        eventually(lambda later=later: reconciled(operator) >= later or None, timeout=30)


def test_six_hundred_members_have_exact_counts_and_a_status_the_api_accepts(
    api_client: client.ApiClient, namespace: str, start_operator: Operators
) -> None:
    service(api_client, namespace)
    slices(api_client, namespace, 600)
    topology(api_client, namespace)
    operator = start_operator()

    status = eventually(lambda: (s := status_of(api_client, namespace)).get("memberCount") == 600 and s, 60)
    assert (status["readyMembers"], status["membersShown"], len(status["members"])) == (600, 100, 100)
    assert condition({"status": status}, "Ready")["status"] == "True"
    names = [m["name"] for m in status["members"]]
    assert names == sorted(f"chat@{ip(i)}" for i in range(600))[:100]
    found = eventually(lambda: hosts(api_client, namespace), 30)
    assert (len(found[0]), len(found[1])) == (600, 600)
    joined = Counter(f"Member chat@{ip(i)} joined (pod chat-{i:04d})" for i in range(600))
    eventually(lambda: membership_events(api_client, namespace) == joined, 60)
    settled(api_client, namespace, operator)
    assert membership_events(api_client, namespace) == joined  # iterating again announces nothing

    # a member far past the shown slice turns unready, and the last hundred leave
    slices(api_client, namespace, 500, unready=frozenset({499}))
    client.DiscoveryV1Api(api_client).delete_namespaced_endpoint_slice("chat-5", namespace)
    status = eventually(
        lambda: (
            (s := status_of(api_client, namespace)).get("memberCount") == 500
            and s.get("readyMembers") == 499
            and s
        ),
        60,
    )
    assert status["members"][0] == {**status["members"][0], "name": f"chat@{ip(499)}", "ready": False}
    assert (
        len(eventually(lambda: (h := hosts(api_client, namespace)) and len(h[0]) == 499 and h, 30)[1]) == 500
    )
    left = Counter(f"Member chat@{ip(i)} left (pod chat-{i:04d})" for i in range(500, 600))
    eventually(lambda: membership_events(api_client, namespace) == joined + left, 60)
    settled(api_client, namespace, operator)
    assert membership_events(api_client, namespace) == joined + left


class RefusingProxy(ConflictingProxy):
    """Answers every status patch of the topology that carries members with a 422, as the
    API server does for a status its schema refuses, while ``refusing``; the rest is forwarded."""

    def __init__(self, upstream: str, ca_file: str, path: str) -> None:
        super().__init__(upstream, ca_file, [])
        self.path = path
        self.refusing = True
        self.refused = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.refusing and request.method == "PATCH" and request.path == self.path:
            body = await request.read()
            if b'"members"' in body:
                self.refused += 1
                status = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "Invalid",
                    "message": "status.members: Too many: 501: must have at most 500 items (scripted)",
                    "code": 422,
                }
                return web.json_response(status, status=422)
        return await super()._handle(request)


class ThrottlingProxy(RefusingProxy):
    """Answers the first ``times`` status patches of the topology with a 429 and a
    Retry-After, as the API server's priority and fairness does."""

    def __init__(self, upstream: str, ca_file: str, path: str, times: int = 2) -> None:
        super().__init__(upstream, ca_file, path)
        self.refusing = False
        self.throttle = times

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.throttle and request.method == "PATCH" and request.path == self.path:
            self.throttle -= 1
            self.refused += 1
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "TooManyRequests",
                "message": "Too many requests, please try again later (scripted)",
                "code": 429,
                "details": {"retryAfterSeconds": 1},
            }
            return web.json_response(status, status=429, headers={"Retry-After": "1"})
        return await super()._handle(request)


@pytest.fixture
def behind_proxy(api_client: client.ApiClient, namespace: str, tmp_path: Path) -> Iterator[Start]:
    """`conclave run` as a cluster-admin ServiceAccount, reaching the API through a RefusingProxy."""
    upstream = api_client.configuration
    with contextlib.ExitStack() as stack:
        account = stack.enter_context(cluster_admin(api_client, namespace, SERVICE_ACCOUNT))

        def start(
            path: str, kind: type[RefusingProxy] = RefusingProxy
        ) -> tuple[RefusingProxy, OperatorProcess]:
            proxy = stack.enter_context(kind(upstream.host, upstream.ssl_ca_cert, path))
            kubeconfig = token_kubeconfig(api_client, namespace, account, proxy.url, tmp_path / "kubeconfig")
            operator = Operators(kubeconfig, namespace, tmp_path)()
            stack.callback(stop_and_show, operator)
            return proxy, operator

        yield start


def test_a_refused_status_write_is_ready_false_api_error_and_each_event_is_posted_once(
    api_client: client.ApiClient,
    namespace: str,
    behind_proxy: Start,
) -> None:
    service(api_client, namespace)
    slices(api_client, namespace, 3)
    topology(api_client, namespace)
    path = f"/apis/conclave.dev/v1alpha1/namespaces/{namespace}/clustertopologies/chat/status"
    proxy, operator = behind_proxy(path)

    def ready() -> dict[str, Any] | None:
        return condition(read(api_client, namespace, "clustertopologies", "chat"), "Ready")

    refused = eventually(lambda: (r := ready()) and r["reason"] == "ApiError" and r, 30)
    assert refused["status"] == "False"
    assert "status.members: Too many" in refused["message"]
    assert proxy.refused >= 1  # the proof is not vacuous
    settled(api_client, namespace, operator)
    assert "members" not in status_of(api_client, namespace)  # only the conditions got through
    assert membership_events(api_client, namespace) == Counter()  # they follow the status

    proxy.refusing = False
    eventually(lambda: (r := ready()) and r["status"] == "True", 30)
    assert status_of(api_client, namespace)["memberCount"] == 3
    joined = Counter(f"Member chat@{ip(i)} joined (pod chat-{i:04d})" for i in range(3))
    eventually(lambda: membership_events(api_client, namespace) == joined, 30)
    settled(api_client, namespace, operator)
    assert membership_events(api_client, namespace) == joined


def test_a_throttled_status_write_is_waited_out_and_never_a_failure(
    api_client: client.ApiClient, namespace: str, behind_proxy: Start
) -> None:
    service(api_client, namespace)
    slices(api_client, namespace, 3)
    topology(api_client, namespace)
    path = f"/apis/conclave.dev/v1alpha1/namespaces/{namespace}/clustertopologies/chat/status"
    proxy, operator = behind_proxy(path, ThrottlingProxy)

    body = eventually(
        lambda: (b := read(api_client, namespace, "clustertopologies", "chat")).get("status") and b, 30
    )
    assert proxy.refused == 2  # both 429s were answered, and the write still went through
    assert condition(body, "Ready") == {**condition(body, "Ready"), "status": "True", "reason": "Reconciled"}
    assert body["status"]["memberCount"] == 3
    assert operator.metric("conclave_api_errors_total", verb="patch", code="429") is None

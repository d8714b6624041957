"""Faults of the operator's own control plane, with two replicas: the API server and etcd
killed and started again, etcd compacted, both replicas frozen. No replica ever exits with
a traceback; the active one either rides the fault out or hands over (it exits, saying
why, and the standby takes over); ownership is what it was; reconciling resumes.

Each test waits for what shows the fault took hold (the replicas' own logs) and for what
shows it is over, never for a fixed time, and leaves the control plane running and ready
for the tests after it (the cluster is the whole session's).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client

from conclave_harness.localcluster import LocalCluster, etcd
from support import GROUP, VERSION, Cluster, OperatorProcess, Operators, create, custom, eventually, read

pytestmark = pytest.mark.usefixtures("installed_crds")

STATIC = {"strategy": "Static", "applicationName": "chat", "hosts": [f"chat@10.0.0.{i}" for i in range(1, 4)]}
SINGLETONS = [f"job-{i}" for i in range(6)]
SINGLETON_LEASE = 2.0
LEADER_LEASE = 4.0
"""tests/support.py starts replicas with a 4s leader lease, a 3s renew deadline."""
AUDIT_POLICY = Path(__file__).parents[1] / "audit-policy.yaml"


@pytest.fixture
def control_plane(cluster: Cluster) -> Iterator[LocalCluster]:
    """The session's local cluster, to break; healed afterwards, whatever happened."""
    if cluster.network is None:
        pytest.skip("needs the local cluster's own control plane (CONCLAVE_KUBECONFIG is set)")
    local = LocalCluster(
        name=os.environ.get("CONCLAVE_TEST_CLUSTER", "pytest"),
        pod_cidr=os.environ.get("CONCLAVE_TEST_POD_CIDR", "10.245.0.0/16"),
        die_with_caller=True,
        audit_policy=AUDIT_POLICY,
    )
    assert local.kubeconfig == cluster.kubeconfig
    try:
        yield local
    finally:
        local.heal()
        # The API server's restarts and etcd's compaction can leave the controller manager's
        # informers backing off their relists for long after: the tests after these must
        # find its EndpointSlice controller as a fresh cluster has it.
        local.restart("kube-controller-manager")


Owner = tuple[str, int, str]
"""A singleton Lease's holder, epoch and resourceVersion."""


def leases(api_client: client.ApiClient, namespace: str) -> tuple[str | None, dict[str, Owner]]:
    """One read of every Lease in the namespace: who leads the operator, and who owns each
    singleton (those that have an owner)."""
    found = client.CoordinationV1Api(api_client).list_namespaced_lease(namespace).items
    spec = {item.metadata.name: (item.spec, item.metadata) for item in found}
    leading = spec["conclave-operator"][0].holder_identity if "conclave-operator" in spec else None
    owned = {
        name: (lease.holder_identity, lease.lease_transitions, metadata.resource_version)
        for name, (lease, metadata) in spec.items()
        if "conclave.dev/lease-of" in (metadata.labels or {}) and lease.holder_identity
    }
    return leading, owned


def owners(api_client: client.ApiClient, namespace: str) -> dict[str, Owner]:
    return leases(api_client, namespace)[1]


def leader(api_client: client.ApiClient, namespace: str) -> str | None:
    return leases(api_client, namespace)[0]


def healthz(replica: OperatorProcess) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{replica.health_port}/healthz", timeout=2) as page:
            return int(page.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except urllib.error.URLError:
        return None


@dataclasses.dataclass
class Pair:
    """Two replicas reconciling a Static topology and its singletons."""

    api_client: client.ApiClient
    namespace: str
    replicas: dict[str, OperatorProcess]
    active: OperatorProcess
    standby: OperatorProcess
    owners: dict[str, Owner]

    def logged(self, replica: OperatorProcess, text: str) -> bool:
        return text in replica.output()

    def check_recovered(self) -> OperatorProcess:
        """The standby rides out the fault; a change made now is reconciled and a new
        singleton placed, and the replica that did it leads (only a replica that has renewed
        the leader Lease since the fault writes) and is returned; ownership is unchanged.
        The active replica, unless it is the one that leads, hands over: it exits 3, saying
        why, whenever it notices (a resumed replica only does once its loop runs again).
        No replica logs a traceback, and the two left running answer /healthz."""
        assert self.standby.process.poll() is None, "the standby rides out every fault"
        custom(self.api_client).patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "clustertopologies", "chat", {"spec": {"pollingInterval": "7s"}}
        )
        eventually(lambda: reconciled(self.api_client, self.namespace))
        singleton(self.api_client, self.namespace, "after")
        eventually(lambda: "after" in owners(self.api_client, self.namespace))
        assert {
            n: o for n, o in owners(self.api_client, self.namespace).items() if n in SINGLETONS
        } == self.owners
        leading = self.replicas[eventually(lambda: leader(self.api_client, self.namespace))]
        if leading is not self.active:  # handed over: it could not prove it still led
            # its exit waits for requests still in flight (etcd down: up to their timeouts)
            assert self.active.process.wait(timeout=90) == 3, self.active.output()
            assert "Stopped: " in self.active.output(), self.active.output()
        for replica in self.replicas.values():
            output = replica.output()
            assert "Traceback" not in output, f"{replica.identity} logged a traceback:\n{output}"
        for replica in {leading.identity: leading, self.standby.identity: self.standby}.values():
            assert replica.process.poll() is None, f"{replica.identity} exited:\n{replica.output()}"
            assert eventually(lambda r=replica: healthz(r)) == 200
        return leading


def singleton(api_client: client.ApiClient, namespace: str, name: str) -> None:
    body = {
        "kind": "Singleton",
        "metadata": {"name": name},
        "spec": {"topology": "chat", "leaseDuration": f"{SINGLETON_LEASE:.0f}s"},
    }
    create(api_client, namespace, "singletons", body)


def reconciled(api_client: client.ApiClient, namespace: str) -> bool:
    body = read(api_client, namespace, "clustertopologies", "chat")
    return bool(body.get("status", {}).get("observedGeneration") == body["metadata"]["generation"])


def pair(api_client: client.ApiClient, namespace: str, start_operator: Operators, *extra: str) -> Pair:
    topology = {"kind": "ClusterTopology", "metadata": {"name": "chat"}}
    create(api_client, namespace, "clustertopologies", {**topology, "spec": STATIC})
    for name in SINGLETONS:
        singleton(api_client, namespace, name)
    replicas = {name: start_operator(name, *extra) for name in ("operator-a", "operator-b")}
    active = replicas[eventually(lambda: leader(api_client, namespace))]
    standby = next(r for r in replicas.values() if r is not active)
    placed = eventually(
        lambda: (found := owners(api_client, namespace)) and set(found) == set(SINGLETONS) and found
    )
    eventually(lambda: reconciled(api_client, namespace))
    eventually(lambda: standby.metric("conclave_leader") == 0.0)  # the standby serves, and stands by
    return Pair(api_client, namespace, replicas, active, standby, placed)


@pytest.mark.parametrize(
    "component",
    ["kube-apiserver", "etcd"],
    ids=["the API server killed and started again", "etcd killed and started again"],
)
def test_a_control_plane_component_killed_and_started_again(
    api_client: client.ApiClient,
    namespace: str,
    start_operator: Operators,
    control_plane: LocalCluster,
    component: str,
) -> None:
    replicas = pair(api_client, namespace, start_operator)
    control_plane.kill(component)
    eventually(lambda: replicas.logged(replicas.active, "Failed to renew Lease"))
    eventually(lambda: replicas.logged(replicas.standby, "Failed to campaign for Lease"))
    control_plane.start(component)
    replicas.check_recovered()


def test_watches_resume_after_410_when_etcd_was_compacted_under_a_running_operator(
    api_client: client.ApiClient, namespace: str, start_operator: Operators, control_plane: LocalCluster
) -> None:
    """The API server's watch cache hides a compaction from the watches that stay
    connected; a watch meets it when it resumes from a version compaction removed, as
    every watch must once the API server restarts. The leader's deadline is long here, so
    the same replica's watches resume (kopf lists again after the 410), and nothing
    hands over."""
    long_lease = ("--lease-duration", "60s", "--renew-deadline", "40s", "--retry-period", "1s", "--verbose")
    replicas = pair(api_client, namespace, start_operator, *long_lease)
    before = replicas.active.output().count("Restarting the watch-stream")
    revision = control_plane.compact()
    control_plane.kill("kube-apiserver")
    eventually(lambda: replicas.logged(replicas.active, "Failed to renew Lease"))
    control_plane.start("kube-apiserver")
    eventually(
        lambda: replicas.active.output().count("Restarting the watch-stream") > before
    )  # kopf's 410 path
    assert replicas.check_recovered() is replicas.active, "nothing handed over"
    assert (
        int(read(api_client, namespace, "clustertopologies", "chat")["metadata"]["resourceVersion"])
        > revision
    )


def test_both_replicas_frozen_longer_than_every_lease_move_nothing_when_they_resume(
    api_client: client.ApiClient, namespace: str, start_operator: Operators
) -> None:
    replicas = pair(api_client, namespace, start_operator)
    frozen_at = time.monotonic()
    before = leader(api_client, namespace)
    for replica in replicas.replicas.values():
        os.kill(replica.process.pid, signal.SIGSTOP)
    seen: list[tuple[str | None, dict[str, Owner]]] = []

    def frozen_long_enough() -> bool:
        """Every Lease, read through the freeze until every lease duration has passed twice."""
        seen.append(leases(api_client, namespace))
        return time.monotonic() - frozen_at > 2 * max(LEADER_LEASE, SINGLETON_LEASE)

    try:
        eventually(frozen_long_enough, timeout=30)
    finally:
        for replica in replicas.replicas.values():
            os.kill(replica.process.pid, signal.SIGCONT)
    assert all(read == (before, replicas.owners) for read in seen), "a Lease changed while all were frozen"
    # Resumed, the active replica finds its last renewal older than the renew deadline and
    # hands over; the standby finds the Lease unrenewed for longer than its duration, by its
    # own clock, and takes over.
    assert replicas.check_recovered() is replicas.standby, "the resumed active replica handed over"
    after: dict[str, Any] = owners(api_client, namespace)
    assert {n: o for n, o in after.items() if n in SINGLETONS} == replicas.owners, "no singleton moved"


def test_the_local_cluster_restarts_compacts_and_freezes_in_place(
    api_client: client.ApiClient, namespace: str, control_plane: LocalCluster
) -> None:
    before = {c.name: c for c in control_plane.components()}
    control_plane.restart("etcd")
    after = {c.name: c for c in control_plane.components()}
    assert (after["etcd"].args, after["etcd"].pid != before["etcd"].pid) == (before["etcd"].args, True)
    assert after["kube-apiserver"] == before["kube-apiserver"]

    core = client.CoreV1Api(api_client)
    old = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "later"}})
    assert etcd.kept(control_plane.etcd_url, int(old))
    assert control_plane.compact() > int(old)
    assert not etcd.kept(control_plane.etcd_url, int(old))

    control_plane.freeze("kube-apiserver")
    try:
        with pytest.raises(urllib3.exceptions.HTTPError):  # its port accepts; nothing answers
            core.list_namespaced_config_map(namespace, _request_timeout=0.5)
    finally:
        control_plane.thaw("kube-apiserver")
    assert [
        item.metadata.name
        for item in core.list_namespaced_config_map(namespace).items
        if item.metadata.name == "later"
    ] == ["later"]

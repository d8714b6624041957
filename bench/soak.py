"""Soak: faults of the operator's own control plane, mixed with member churn, for N minutes.

On a local cluster of its own, with an audit log: two operator replicas kept running like
a Deployment would (one that exits is replaced by a new one, under a new name), five
member pods (fake kubelet, simulated member views, a KubernetesAPI topology probing them)
and 20 singletons of mixed policies (2s leases), each member running an app that keeps
docs/singletons.md's rule. For ``--minutes`` it draws, at random, either a fault of the
control plane (the API server or etcd SIGKILLed and started again, the API server frozen,
etcd compacted, the active replica SIGKILLed or frozen) or member churn (a pod gone or
terminating and replaced, readiness flipped, a split or a heal, an app cut off from the
API). After each control-plane fault it measures the recovery: from the control plane
answering again to the operator having reconciled a spec change made at that moment.

An independent checker (bench/ownership.py: its own watches, the audit log, the apps)
then judges the whole history against docs/singletons.md. Tables: the faults injected and
their recovery times (median, max), grants by cause, violations (must be 0), replica
exits, and the replicas' RSS over time.

    .venv/bin/python bench/soak.py [--minutes 10] [--seed 20261201]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import ownership
import tables
from apps import App, Run
from kubernetes import client, config
from replicas import Deployment, sampling_rss

from conclave.adapters.apiclient import ApiClient, load_configuration
from conclave_harness.demo import launching
from conclave_harness.localcluster import LocalCluster
from conclave_harness.localcluster.kubelet import TERMINATION_DELAY_ANNOTATION, FakeKubelet
from conclave_harness.sim import SimulatedMembers

GROUP, VERSION = "conclave.dev", "v1alpha1"
AUDIT_POLICY = Path(__file__).parents[1] / "tests" / "audit-policy.yaml"
SINGLETON_LEASE = 2.0
MEMBERS = 5
SINGLETONS = 20
CHURN = (
    "pod gone",
    "pod terminating",
    "readiness flipped",
    "readiness flipped",
    "split",
    "heal",
    "app cut off",
)
CONTROL_PLANE_FAULTS = (
    "kube-apiserver killed",
    "etcd killed",
    "kube-apiserver frozen",
    "etcd compacted",
    "active replica killed",
    "active replica frozen",
)
T = TypeVar("T")


def retrying(call: Callable[[], T], timeout: float = 60.0) -> T:
    """The control plane may be re-initializing: retry what fails for a while."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ownership.FAILURES:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_for(probe: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(*ownership.FAILURES):
            if probe():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


@dataclasses.dataclass
class Soak:
    api: client.ApiClient
    namespace: str
    cluster: LocalCluster
    kubelet: FakeKubelet
    sim: SimulatedMembers
    deployment: Deployment
    rng: random.Random
    members: dict[str, str] = dataclasses.field(default_factory=dict)
    """pod → node name"""
    apps: dict[str, App] = dataclasses.field(default_factory=dict)
    stopped: list[App] = dataclasses.field(default_factory=list)
    faults: Counter[str] = dataclasses.field(default_factory=Counter)
    timeline: list[tuple[float, str]] = dataclasses.field(default_factory=list)
    """(wall-clock time, fault) of every control-plane fault, when it began."""
    frozen: dict[str, list[tuple[float, float]]] = dataclasses.field(default_factory=dict)
    """Per replica, the wall-clock times it was frozen."""
    recoveries: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    created: int = 0
    generation_flip: bool = False

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def add_member(self, pod: str) -> None:
        body = {
            "metadata": {"name": pod, "labels": {"app": "chat"}},
            "spec": {"containers": [{"name": "beam", "image": "conclave.dev/fake:1"}]},
        }
        retrying(lambda: self.core.create_namespaced_pod(self.namespace, body))
        running = self.kubelet.wait_running(self.namespace, pod, timeout=60)
        node = f"chat@{running.status.pod_ip}"
        self.members[pod] = node
        self.sim.add(node, running.status.pod_ip)
        self.sim.connect_all()
        self.apps[pod] = App(self.api, self.namespace, pod, node, running.metadata.uid, self.rng.random())

    def leader(self) -> str | None:
        lease = client.CoordinationV1Api(self.api).read_namespaced_lease(
            ownership.LEADER_LEASE, self.namespace, _request_timeout=5
        )
        holder: str | None = lease.spec.holder_identity
        return holder

    # Control-plane faults: each returns once the control plane answers again.

    def control_plane_fault(self, fault: str) -> None:
        self.faults[fault] += 1
        self.timeline.append((time.time(), fault))
        if fault in ("kube-apiserver killed", "etcd killed"):
            component = fault.split(maxsplit=1)[0]
            self.cluster.kill(component)
            time.sleep(self.rng.uniform(1.0, 6.0))
            self.cluster.start(component)
        elif fault == "kube-apiserver frozen":
            self.cluster.freeze("kube-apiserver")
            time.sleep(self.rng.uniform(1.0, 5.0))
            self.cluster.thaw("kube-apiserver")
        elif fault == "etcd compacted":
            self.cluster.compact()
        else:
            active = self.deployment.by_identity(retrying(self.leader))
            if active is None:
                return
            if fault == "active replica killed":
                active.process.send_signal(signal.SIGKILL)
            else:
                stopped = time.time()
                active.process.send_signal(signal.SIGSTOP)
                time.sleep(self.rng.uniform(2.0, 6.0))
                active.process.send_signal(signal.SIGCONT)
                self.frozen.setdefault(active.identity, []).append((stopped, time.time()))
        self.recoveries.setdefault(fault, []).append(self.recovery())

    def recovery(self) -> float:
        """Seconds from now (the control plane answering) until the operator has reconciled
        a spec change made now."""
        started = time.monotonic()
        self.generation_flip = not self.generation_flip
        interval = "6s" if self.generation_flip else "5s"
        custom = client.CustomObjectsApi(self.api)
        patched = retrying(
            lambda: custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                "clustertopologies",
                "chat",
                {"spec": {"pollingInterval": interval}},
            )
        )
        generation = patched["metadata"]["generation"]

        def reconciled() -> bool:
            self.deployment.keep()
            body = custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "clustertopologies", "chat", _request_timeout=5
            )
            return bool(body.get("status", {}).get("observedGeneration", 0) >= generation)

        wait_for(reconciled, 180, "the operator to reconcile again")
        return time.monotonic() - started

    # Member churn: the trouble tests/integration/test_singletons.py's churn test makes.

    def churn(self, action: str) -> None:
        pod = self.rng.choice(sorted(self.members))
        steps: dict[str, Callable[[], None]] = {
            "pod gone": lambda: self.replace(pod, grace=0),
            "pod terminating": lambda: self.replace(pod, grace=None),
            "readiness flipped": lambda: self.kubelet.set_ready(self.namespace, pod, self.rng.random() < 0.5),
            "split": lambda: self.sim.partition(self.halves()),
            "heal": self.sim.connect_all,
            "app cut off": lambda: self.apps[pod].cut_off(self.rng.uniform(0.5, 4.0)),
        }
        steps[action]()

    def halves(self) -> list[list[str]]:
        nodes = sorted(self.members.values())
        self.rng.shuffle(nodes)
        return [nodes[:3], nodes[3:]]

    def replace(self, pod: str, grace: int | None) -> None:
        if grace is None:
            patch = {"metadata": {"annotations": {TERMINATION_DELAY_ANNOTATION: "0.5"}}}
            retrying(lambda: self.core.patch_namespaced_pod(pod, self.namespace, patch))
        self.stopped.append(self.apps.pop(pod))
        self.stopped[-1].kill()  # its containers stop before the pod is removed
        retrying(lambda: self.core.delete_namespaced_pod(pod, self.namespace, grace_period_seconds=grace))
        self.sim.remove(self.members.pop(pod))
        self.created += 1
        self.add_member(f"chat-new-{self.created}")

    def settle(self) -> None:
        self.cluster.heal()
        self.sim.connect_all()
        for pod in self.members:
            retrying(functools.partial(self.kubelet.set_ready, self.namespace, pod, True))
            self.apps[pod].cut_off(0)

    def ran(self) -> list[Run]:
        """Stop every app; every run each made."""
        return [run for app in [*self.stopped, *self.apps.values()] for run in app.kill()]


def setup(cluster: LocalCluster, namespace: str) -> None:
    """The CRDs from the models and the namespace, as the demo makes them; the headless Service."""

    async def install() -> None:
        async with ApiClient(load_configuration(str(cluster.kubeconfig)), "soak") as api:
            await launching.install_crds(api)
            await launching.create_namespace(api, namespace)
            service = {
                "metadata": {"name": "chat"},
                "spec": {"clusterIP": "None", "selector": {"app": "chat"}},
            }
            await api.create(f"/api/v1/namespaces/{namespace}/services", service)

    asyncio.run(install())


def create(
    api: client.ApiClient, namespace: str, plural: str, kind: str, name: str, spec: dict[str, Any]
) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def held(api: client.ApiClient, namespace: str) -> set[str]:
    leases = client.CoordinationV1Api(api).list_namespaced_lease(
        namespace, label_selector=ownership.LEASE_LABEL, _request_timeout=5
    )
    return {item.metadata.name for item in leases.items if item.spec.holder_identity}


def populate(run: Soak) -> list[str]:
    """The members, their topology, and the singletons (mixed policies); their names."""
    for index in range(MEMBERS):
        run.add_member(f"chat-{index}")
    create(run.api, run.namespace, "clustertopologies", "ClusterTopology", "chat", {
        "strategy": "KubernetesAPI", "service": "chat", "applicationName": "chat",
        "probe": {"type": "http", "port": 4000, "interval": "500ms", "timeout": "300ms"},
        "partition": {"stableAfter": "2s"},
    })  # fmt: skip
    names = [f"s-{i}" for i in range(SINGLETONS)]
    for i, name in enumerate(names):
        create(run.api, run.namespace, "singletons", "Singleton", name, {
            "topology": "chat", "leaseDuration": f"{SINGLETON_LEASE:.0f}s",
            "distribution": "UniformQuorum" if i % 4 == 0 else "Uniform",
            "partitionPolicy": "Continue" if i % 3 == 0 else "Fence",
            "rebalance": "Active" if i % 5 == 0 else "Passive",
        })  # fmt: skip
    return names


def trouble(run: Soak, minutes: float) -> None:
    """A random mix of control-plane faults and member churn, until time is up."""
    started = time.monotonic()
    while time.monotonic() - started < minutes * 60:
        run.deployment.keep()
        if run.rng.random() < 0.3:
            fault = run.rng.choice(CONTROL_PLANE_FAULTS)
            print(f"{time.monotonic() - started:7.1f}s  {fault}", file=sys.stderr)
            run.control_plane_fault(fault)
        else:
            action = run.rng.choice(CHURN)
            with contextlib.suppress(*ownership.FAILURES):
                run.churn(action)
            run.faults[action] += 1
        time.sleep(run.rng.uniform(0.2, 1.5))


def soak(minutes: float, seed: int, cluster_name: str, pod_cidr: str) -> None:
    # the fake kubelet logs each watch the outages break, with its traceback, and relists
    logging.getLogger("conclave_harness.localcluster.kubelet").setLevel(logging.CRITICAL)
    cluster = LocalCluster(
        name=cluster_name, pod_cidr=pod_cidr, die_with_caller=True, audit_policy=AUDIT_POLICY
    )
    cluster.up(progress=lambda line: print(line, file=sys.stderr))
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    namespace = f"soak-{uuid.uuid4().hex[:6]}"
    scratch = tempfile.TemporaryDirectory()
    deployment = Deployment(cluster.kubeconfig, namespace, Path(scratch.name))
    try:
        setup(cluster, namespace)
        with FakeKubelet(api, cluster.network) as kubelet, SimulatedMembers(cluster.network) as sim:
            run = Soak(api, namespace, cluster, kubelet, sim, deployment, random.Random(seed))
            names = populate(run)
            deployment.keep()
            with ownership.History(api, namespace) as history:
                wait_for(lambda: held(api, namespace) == set(names), 60, "every singleton placed")
                with sampling_rss(deployment, time.monotonic()) as rss:
                    trouble(run, minutes)
                    run.settle()
                    deployment.keep()
                    wait_for(lambda: held(api, namespace) == set(names), 120, "every singleton placed again")
                ran = run.ran()
                time.sleep(2)  # the last watch events of the apps' releases
            deployment.stop()
            tables.report(
                run, history, ran, rss, cluster.audit_log, namespace, minutes,
                title=f"{MEMBERS} members, {SINGLETONS} singletons, 2 replicas",
                singleton_lease=SINGLETON_LEASE,
                control_plane_faults=CONTROL_PLANE_FAULTS,
            )  # fmt: skip
    finally:
        deployment.stop()
        with contextlib.suppress(*ownership.FAILURES):
            client.CoreV1Api(api).delete_namespace(namespace)
        api.close()
        cluster.down()
        scratch.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--cluster", default="soak", help="the local cluster's name")
    parser.add_argument("--pod-cidr", default="10.250.0.0/16")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the soak needs the local cluster's pod network, which needs root")
    soak(arguments.minutes, arguments.seed, arguments.cluster, arguments.pod_cidr)


if __name__ == "__main__":
    main()

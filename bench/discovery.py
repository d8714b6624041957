"""Discovery latency: from an endpoint turning ready in the API to the member in status.

Scales a real Deployment behind a headless Service from 0 to N fake-kubelet pods and back
to 1 on the local control plane, with the operator running as its own process, and
prints per strategy the latency p50 / p99 / max for members joining and leaving. Both
ends are timed by this process's watches on one clock: the EndpointSlice event that shows
an address ready (or gone, or terminating), and the topology event that shows the member
(or its absence).

    .venv/bin/python bench/discovery.py [--pods 100]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from conclave.api import crdgen
from conclave_harness.localcluster import LocalCluster
from conclave_harness.localcluster.clusters import free_port
from conclave_harness.localcluster.dnsserver import ClusterDNS
from conclave_harness.localcluster.kubelet import FakeKubelet

GROUP, VERSION = "conclave.dev", "v1alpha1"
POLLING = "5s"
STRATEGIES: dict[str, dict[str, str]] = {
    "KubernetesAPI": {"strategy": "KubernetesAPI", "service": "chat-headless"},
    "KubernetesDNS": {"strategy": "KubernetesDNS", "service": "chat-headless", "pollingInterval": POLLING},
    "DNSPoll": {"strategy": "DNSPoll", "pollingInterval": POLLING},  # the query is set per namespace
}


class Clock:
    """First time each (topic, ip) was seen, by this process's monotonic clock."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()

    def mark(self, topic: str, ip: str) -> None:
        with self.lock:
            self.seen.setdefault((topic, ip), time.monotonic())

    def get(self, topic: str, ip: str) -> float | None:
        with self.lock:
            return self.seen.get((topic, ip))


def follow_slices(api: client.ApiClient, namespace: str, clock: Clock, stop: threading.Event) -> None:
    discovery = client.DiscoveryV1Api(api)
    while not stop.is_set():
        for event in watch.Watch().stream(
            discovery.list_namespaced_endpoint_slice, namespace, timeout_seconds=2
        ):
            for endpoint in event["object"].endpoints or []:
                ready = endpoint.conditions.ready and not endpoint.conditions.terminating
                for ip in endpoint.addresses:
                    clock.mark("ready" if ready else "leaving", ip)
            present = {ip for e in event["object"].endpoints or [] for ip in e.addresses}
            with clock.lock:
                known = {ip for (topic, ip) in clock.seen if topic == "ready"}
            for ip in known - present:
                clock.mark("leaving", ip)


def follow_topologies(api: client.ApiClient, namespace: str, clock: Clock, stop: threading.Event) -> None:
    custom = client.CustomObjectsApi(api)
    while not stop.is_set():
        stream = watch.Watch().stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "clustertopologies",
            timeout_seconds=2,
        )
        for event in stream:
            body = event["object"]
            strategy = body["metadata"]["name"]  # the lower-cased strategy
            members = {m.get("ip") for m in body.get("status", {}).get("members", []) if m.get("ready")}
            for ip in members:
                clock.mark(f"joined:{strategy}", ip)
            with clock.lock:
                joined = {ip for (topic, ip) in clock.seen if topic == f"joined:{strategy}"}
            for ip in joined - members:
                clock.mark(f"left:{strategy}", ip)


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99, ordered[-1]


@contextlib.contextmanager
def operator_process(
    kubeconfig: Path, namespace: str, log: Path, dns: tuple[str, int] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        sys.executable, "-m", "conclave", "run", "--kubeconfig", str(kubeconfig), "--namespace", namespace,
        "--leader-election-namespace", namespace, "--health-port", str(free_port()), "--identity", "bench",
        *(["--dns-server", f"{dns[0]}:{dns[1]}"] if dns else []),
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=15)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def run(pods: int) -> list[tuple[str, str, int, float, float, float]]:
    cluster = LocalCluster(name="bench", pod_cidr="10.247.0.0/16", die_with_caller=True)
    cluster.up(progress=lambda line: print(line, file=sys.stderr))
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    stop = threading.Event()
    try:
        extensions = client.ApiextensionsV1Api(api)
        for definition in crdgen.all_crds():
            with contextlib.suppress(client.exceptions.ApiException):
                extensions.create_custom_resource_definition(definition)
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": namespace}})
        wait_for(
            lambda: core.list_namespaced_service_account(namespace).items, 30, "the default ServiceAccount"
        )
        core.create_namespaced_service(
            namespace,
            {
                "metadata": {"name": "chat-headless"},
                "spec": {"clusterIP": "None", "selector": {"app": "chat"}},
            },
        )
        apps = client.AppsV1Api(api)
        apps.create_namespaced_deployment(
            namespace,
            {
                "metadata": {"name": "chat"},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "chat"}},
                    "template": {
                        "metadata": {"labels": {"app": "chat"}},
                        "spec": {"containers": [{"name": "beam", "image": "conclave.dev/fake:1"}]},
                    },
                },
            },
        )
        custom = client.CustomObjectsApi(api)
        for name, spec in STRATEGIES.items():
            custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "clustertopologies",
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "ClusterTopology",
                    "metadata": {"name": name.lower()},
                    "spec": {
                        "applicationName": "chat",
                        "query": f"chat-headless.{namespace}.svc.cluster.local",
                        **spec,
                    }
                    if name == "DNSPoll"
                    else {"applicationName": "chat", **spec},
                },
            )
        clock = Clock()
        for follower in (follow_slices, follow_topologies):
            threading.Thread(target=follower, args=(api, namespace, clock, stop), daemon=True).start()
        with (
            FakeKubelet(api, cluster.network, namespaces=[namespace]),
            ClusterDNS(api) as dns,
            tempfile.TemporaryDirectory() as scratch,
            operator_process(cluster.kubeconfig, namespace, Path(scratch) / "operator.log", dns.address),
        ):
            time.sleep(3)  # the operator takes the lease and lists everything
            apps.patch_namespaced_deployment_scale("chat", namespace, {"spec": {"replicas": pods}})

            def all_joined() -> bool:
                with clock.lock:
                    return all(
                        sum(1 for t, _ in clock.seen if t == f"joined:{s.lower()}") >= pods
                        for s in STRATEGIES
                    )

            wait_for(all_joined, 180, f"{pods} members in every topology")
            # Back to one pod, not zero: a name without addresses is NXDOMAIN, which DNSPoll takes as
            # a failure and answers by keeping the last members (never an invented empty list).
            apps.patch_namespaced_deployment_scale("chat", namespace, {"spec": {"replicas": 1}})

            def all_left() -> bool:
                with clock.lock:
                    return all(
                        sum(1 for t, _ in clock.seen if t == f"left:{s.lower()}") >= pods - 1
                        for s in STRATEGIES
                    )

            wait_for(all_left, 180, "all members but one gone")
        rows = []
        with clock.lock:
            ips = {ip for topic, ip in clock.seen if topic == "ready"}
        for strategy in STRATEGIES:
            for direction, start, end in (("join", "ready", "joined"), ("leave", "leaving", "left")):
                samples = [
                    max(0.0, finish - begin)
                    for ip in ips
                    if (begin := clock.get(start, ip)) is not None
                    and (finish := clock.get(f"{end}:{strategy.lower()}", ip)) is not None
                ]
                rows.append((strategy, direction, len(samples), *percentiles(samples)))
        return rows
    finally:
        stop.set()
        with contextlib.suppress(client.exceptions.ApiException):
            client.CoreV1Api(api).delete_namespace(namespace)
        api.close()
        cluster.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the local cluster's pod network needs root")
    rows = run(arguments.pods)
    print(
        f"\nDiscovery latency, 0 -> {arguments.pods} -> 1 fake-kubelet pods"
        f" (seconds; DNS polls every {POLLING})\n"
    )
    print(f"{'strategy':<16}{'change':<8}{'n':>5}{'p50':>9}{'p99':>9}{'max':>9}")
    for strategy, direction, count, p50, p99, worst in rows:
        print(f"{strategy:<16}{direction:<8}{count:>5}{p50:>9.3f}{p99:>9.3f}{worst:>9.3f}")


if __name__ == "__main__":
    main()

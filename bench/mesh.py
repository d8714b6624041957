"""connect: Mesh with real Erlang nodes: how soon a join is meshed, how soon a vanished
node is cut.

On the local control plane, with the operator as its own process and the fake kubelet,
a ClusterTopology (KubernetesAPI, memberReadiness Any, probe.type erlang on a fixed
distribution port, connect: Mesh) starts with a few members; then

1. joins: one pod at a time is created and, once it runs with an IP, a real node is
   started on that IP; the time from the node accepting distribution connections (its
   port accepts a TCP connection, tried every 2 ms from here) to every existing member
   having it in nodes();
2. vanishes: a member's BEAM is frozen (SIGSTOP: no FIN, no tick) and, 1 to 3 s later (the
   probes of it time out meanwhile), its pod deleted with grace period 0; the time from the
   pod gone from the API (the DELETE answered) to no member having it in nodes(). The nodes
   run with net_ticktime 600: without conclave they would keep it for ten minutes.

Each node reports its own nodeup/nodedown with the wall clock (net_kernel:monitor_nodes),
the same clock this process reads, so both ends are timed on one clock. Also printed: how
many links between surviving members went down while a vanished node was cut (OTP 25's
prevent_overlapping_partitions disconnects nodes that still see a lost one; the mesh
connects them again).

    .venv/bin/python bench/mesh.py [--joins 20] [--vanishes 10] [--members 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from discovery import operator_process, percentiles, wait_for
from kubernetes import client, config

from conclave.adapters.apiclient import ApiClient, load_configuration
from conclave_harness import demo
from conclave_harness.localcluster import LocalCluster, PodNetwork
from conclave_harness.localcluster.kubelet import FakeKubelet

GROUP, VERSION = "conclave.dev", "v1alpha1"
COOKIE = "conclave-bench-mesh"
DIST_PORT, NO_EPMD_PORT = 4370, 4471
PROBE = {"interval": "2s", "timeout": "1s"}
"""The probe's defaults: the mesh must not wait for the next probe to act."""
GAP_SECONDS = (1.0, 3.0)
"""How long a node is frozen before its pod is deleted: probes of it are timing out then."""
REPORTER = """
Say = fun(What, Node) -> io:format("~s ~s ~b~n", [What, Node, os:system_time(microsecond)]) end,
ok = net_kernel:monitor_nodes(true),
Say(up, node()),
[Say(nodeup, N) || N <- nodes()],  % connected before it monitored: seen now, and told
Loop = fun L() -> receive {nodeup, N} -> Say(nodeup, N), L(); {nodedown, N} -> Say(nodedown, N), L() end end,
Loop().
"""


@dataclasses.dataclass
class Node:
    name: str
    pod: str
    process: subprocess.Popen[bytes]


class Events:
    """Every node's nodeup/nodedown reports: (observer, what, node) → wall-clock times."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str, str], list[float]] = {}
        self.lock = threading.Lock()

    def follow(self, observer: str, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            parts = raw.decode(errors="replace").split()
            if len(parts) == 3 and parts[0] in ("up", "nodeup", "nodedown") and parts[2].isdigit():
                with self.lock:
                    self.seen.setdefault((observer, parts[0], parts[1]), []).append(int(parts[2]) / 1e6)

    def first_after(self, observer: str, what: str, node: str, after: float) -> float | None:
        with self.lock:
            return next((t for t in self.seen.get((observer, what, node), []) if t >= after), None)

    def count_between(self, what: str, nodes: set[str], start: float, end: float) -> int:
        with self.lock:
            return sum(
                1
                for (observer, kind, node), times in self.seen.items()
                if kind == what and observer in nodes and node in nodes
                for t in times
                if start <= t <= end
            )


class Bench:
    def __init__(
        self, api: client.ApiClient, network: PodNetwork, namespace: str, kubelet: FakeKubelet
    ) -> None:
        self.api, self.network, self.namespace, self.kubelet = api, network, namespace, kubelet
        self.core = client.CoreV1Api(api)
        self.events = Events()
        self.nodes: list[Node] = []
        self.count = 0

    def add(self) -> tuple[Node, float]:
        """A new pod, and its node once the pod runs; (the node, when it accepted connections)."""
        pod = f"chat-{self.count}"
        self.count += 1
        body = {
            "metadata": {"name": pod, "labels": {"app": "chat"}},
            "spec": {"containers": [{"name": "beam", "image": "conclave.dev/fake:1"}]},
        }
        self.core.create_namespaced_pod(self.namespace, body)
        ip = self.kubelet.wait_running(self.namespace, pod).status.pod_ip
        name = f"chat@{ip}"
        argv = [
            "env", f"ERL_EPMD_PORT={NO_EPMD_PORT}", "erl", "-noshell", "-name", name, "-setcookie", COOKIE,
            "-start_epmd", "false", "-erl_epmd_port", str(DIST_PORT), "-kernel", "net_ticktime", "600",
            "-kernel", "inet_dist_use_interface", "{" + ip.replace(".", ",") + "}", "-eval", REPORTER,
        ]  # fmt: skip
        listening: list[float] = []
        threading.Thread(target=accepting, args=(ip, listening), daemon=True).start()
        process = subprocess.Popen(
            self.network.command(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
        )
        threading.Thread(target=self.events.follow, args=(name, process), daemon=True).start()
        node = Node(name, pod, process)
        self.nodes.append(node)
        wait_for(lambda: listening and self.events.first_after(name, "up", name, 0), 30, f"{name} to start")
        up = self.events.first_after(name, "up", name, 0)
        assert up is not None
        return node, min(up, listening[0])

    def meshed(self, nodes: list[Node], node: Node, up: float) -> tuple[float, float] | None:
        """(when ``node`` accepted connections, when the last of ``nodes`` saw it come up);
        None: not all of them yet. A member may see it before it printed that it is up."""
        times = [self.events.first_after(other.name, "nodeup", node.name, 0) for other in nodes]
        if any(t is None for t in times):
            return None
        seen = [t for t in times if t is not None]
        return min([up, *seen]), max(seen)

    def cut(self, nodes: list[Node], node: Node, since: float) -> float | None:
        times = [self.events.first_after(other.name, "nodedown", node.name, since) for other in nodes]
        return None if any(t is None for t in times) else max(t for t in times if t is not None)

    def full_mesh(self) -> bool:
        """Whether every node's last report about every other is nodeup."""
        with self.events.lock:
            latest = {key: times[-1] for key, times in self.events.seen.items()}
        for a in self.nodes:
            for b in self.nodes:
                if a is not b and latest.get((a.name, "nodeup", b.name), 0) <= latest.get(
                    (a.name, "nodedown", b.name), 0
                ):
                    return False
        return True

    def vanish(self, node: Node, gap: float) -> tuple[float, float]:
        """Freeze the node, and ``gap`` seconds later delete its pod: (when it froze, when
        the pod was gone from the API)."""
        frozen = time.time()
        node.process.send_signal(signal.SIGSTOP)
        time.sleep(gap)  # as a real host that vanished: its pod goes only later
        self.core.delete_namespaced_pod(node.pod, self.namespace, grace_period_seconds=0)
        gone = time.time()
        self.nodes.remove(node)
        return frozen, gone

    def stop(self) -> None:
        for node in self.nodes:
            node.process.send_signal(signal.SIGCONT)
            node.process.kill()
            node.process.wait()


def accepting(ip: str, found: list[float], timeout: float = 30.0) -> None:
    """Note when the distribution port at ``ip`` first accepts a connection (tried every 2 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as attempt:
            attempt.settimeout(0.2)
            if attempt.connect_ex((ip, DIST_PORT)) == 0:
                found.append(time.time())
                return
        time.sleep(0.002)


async def install_crds(kubeconfig: Path) -> None:
    """The CRDs from the models, as the demo and the tests install them."""
    async with ApiClient(load_configuration(str(kubeconfig)), "bench-mesh") as api:
        await demo.install_crds(api)


@contextlib.contextmanager
def cluster_namespace() -> Iterator[tuple[LocalCluster, client.ApiClient, str]]:
    cluster = LocalCluster(name="benchmesh", pod_cidr="10.253.0.0/16", die_with_caller=True)
    cluster.up(progress=lambda line: print(line, file=sys.stderr))
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    try:
        asyncio.run(install_crds(cluster.kubeconfig))
        core.create_namespace({"metadata": {"name": namespace}})
        wait_for(
            lambda: core.list_namespaced_service_account(namespace).items, 30, "the default ServiceAccount"
        )
        yield cluster, api, namespace
    finally:
        with contextlib.suppress(client.exceptions.ApiException):
            core.delete_namespace(namespace)
        api.close()
        cluster.down()


def run(joins: int, vanishes: int, members: int, log: Path | None) -> tuple[list[float], list[float], int]:
    with cluster_namespace() as (cluster, api, namespace):
        core = client.CoreV1Api(api)
        core.create_namespaced_service(
            namespace,
            {"metadata": {"name": "chat"}, "spec": {"clusterIP": "None", "selector": {"app": "chat"}}},
        )
        secret = {"cookie": base64.b64encode(COOKIE.encode()).decode()}
        core.create_namespaced_secret(namespace, {"metadata": {"name": "chat-cookie"}, "data": secret})
        probe = {"type": "erlang", "cookieSecretRef": {"name": "chat-cookie", "key": "cookie"}}
        spec = {
            "strategy": "KubernetesAPI", "service": "chat", "applicationName": "chat",
            "memberReadiness": "Any", "connect": "Mesh",
            "probe": {**probe, "distributionPort": DIST_PORT, **PROBE},
        }  # fmt: skip
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterTopology", "metadata": {"name": "chat"}}
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "clustertopologies", {**body, "spec": spec}
        )
        with (
            FakeKubelet(api, cluster.network, namespaces=[namespace]) as kubelet,
            tempfile.TemporaryDirectory() as scratch,
            operator_process(cluster.kubeconfig, namespace, log or Path(scratch) / "operator.log"),
        ):
            bench = Bench(api, cluster.network, namespace, kubelet)
            try:
                for _ in range(members):
                    bench.add()
                wait_for(bench.full_mesh, 60, f"the first {members} members meshed")
                joined = []
                for _ in range(joins):
                    existing = list(bench.nodes)
                    node, up = bench.add()
                    wait_for(
                        lambda e=existing, n=node, u=up: bench.meshed(e, n, u), 60, f"{node.name} meshed"
                    )
                    meshed = bench.meshed(existing, node, up)
                    assert meshed is not None
                    joined.append(meshed[1] - meshed[0])
                    wait_for(bench.full_mesh, 60, "a full mesh")
                cut, collateral = [], 0
                gaps = random.Random(14)
                for index in range(vanishes):
                    node = bench.nodes[index % len(bench.nodes)]
                    frozen, gone = bench.vanish(node, gaps.uniform(*GAP_SECONDS))
                    wait_for(lambda n=node, f=frozen: bench.cut(bench.nodes, n, f), 60, f"{node.name} cut")
                    dropped = bench.cut(bench.nodes, node, frozen)
                    assert dropped is not None
                    cut.append(dropped - gone)
                    wait_for(bench.full_mesh, 60, "the survivors meshed again")
                    survivors = {n.name for n in bench.nodes}
                    collateral += bench.events.count_between("nodedown", survivors, frozen, time.time())
                    node.process.send_signal(signal.SIGCONT)
                    node.process.kill()
                    node.process.wait()
                return joined, cut, collateral
            finally:
                bench.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=20)
    parser.add_argument("--vanishes", type=int, default=10)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--log", type=Path, help="keep the operator's log in this file")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the local cluster's pod network needs root")
    if shutil.which("erl") is None:
        sys.exit("needs Erlang (Debian's erlang-base; make test installs it)")
    joined, cut, collateral = run(arguments.joins, arguments.vanishes, arguments.members, arguments.log)
    print(
        f"\nconnect: Mesh, {arguments.members} members, then {arguments.joins} joins and "
        f"{arguments.vanishes} vanished nodes (seconds; probe interval {PROBE['interval']})\n"
    )
    print(f"{'event':<58}{'n':>4}{'p50':>9}{'p99':>9}{'max':>9}")
    for label, samples in (
        ("join: node accepts connections -> in every member's nodes()", joined),
        ("vanish: pod gone from the API -> in no member's nodes()", cut),
    ):
        p50, p99, worst = percentiles(samples)
        print(f"{label:<58}{len(samples):>4}{p50:>9.3f}{p99:>9.3f}{worst:>9.3f}")
    print(f"\nlinks between survivors that went down while vanished nodes were cut: {collateral}")


if __name__ == "__main__":
    main()

"""Scale (issue #16): one operator replica on the local control plane, as a platform team
would load it. Prints tables; it is not a timed test and CI does not run it.

1. Discovery ramp: a KubernetesAPI topology behind a headless Service whose Deployment
   grows from 0 to --members fake-kubelet pods in batches of --batch. Per batch: the
   latency from an endpoint turning ready (this process's EndpointSlice watch) to its
   member being counted (in the topology's <name>-members ConfigMap, hosts.json), p50,
   p99 and max; the topology's memberCount; the operator's CPU seconds and RSS. Then, at
   the top: 50 pods turn unready, and 100 pods are deleted (latency to leaving hosts.json).
2. Singletons: --singletons Singletons on a topology of --singleton-members pods: the time
   until all are Placed and the writes that took; a quiet minute (writes in it); the pod
   owning the most singletons is deleted (grace 0) and each of its singletons is timed to
   its new Lease holder and to its new status.owner, p50/p99/max; RSS at the end.

Both ends of every latency are seen by this process's watches, on one clock.

    .venv/bin/python bench/scale.py [--members 1000] [--batch 100] [--singletons 10000]
        [--singleton-members 20] [--skip-ramp] [--skip-singletons]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from discovery import percentiles, wait_for
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

from conclave.api import crdgen
from conclave_harness.localcluster import LocalCluster
from conclave_harness.localcluster.clusters import free_port
from conclave_harness.localcluster.kubelet import FakeKubelet

GROUP, VERSION = "conclave.dev", "v1alpha1"
TICK = os.sysconf("SC_CLK_TCK")


class Operator:
    """`conclave run` as its own process, with its health port (metrics) and /proc."""

    def __init__(self, kubeconfig: Path, namespaces: list[str], log: Path) -> None:
        self.port = free_port()
        command = [
            sys.executable, "-m", "conclave", "run", "--kubeconfig", str(kubeconfig),
            *[flag for namespace in namespaces for flag in ("--namespace", namespace)],
            "--leader-election-namespace", namespaces[0], "--health-port", str(self.port),
            "--identity", "bench",
        ]  # fmt: skip
        self.log = log
        with log.open("wb") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)

    def usage(self) -> tuple[float, float]:
        """(CPU seconds so far, RSS in MiB)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return cpu, rss / 1024

    def writes(self) -> float:
        """conclave_api_writes_total over every kind of write."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as page:
                text = page.read().decode()
        except OSError:
            return float("nan")
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "conclave_api_writes_total"
        )


def raw_watch(
    api: client.ApiClient, path: str, handle: Callable[[str, dict[str, Any]], None], stop: threading.Event
) -> None:
    """Watch ``path`` as raw JSON lines (the client's models are slow at thousands of
    objects), calling ``handle(type, object)``; resumes from the last resourceVersion."""
    version = ""
    while not stop.is_set():
        query = f"?watch=1&timeoutSeconds=30&allowWatchBookmarks=true&resourceVersion={version}"
        request = api.param_serialize("GET", path + query, auth_settings=["BearerToken"])
        with contextlib.suppress(Exception):
            response = api.call_api(*request, _request_timeout=60).response
            buffer = b""
            for chunk in response.stream(65536):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    body = event["object"]
                    if event["type"] == "ERROR":
                        version = ""
                        break
                    version = body["metadata"].get("resourceVersion", version)
                    if event["type"] != "BOOKMARK":
                        handle(event["type"], body)
                if stop.is_set():
                    return


def follow(
    api: client.ApiClient, path: str, handle: Callable[[str, dict[str, Any]], None]
) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=raw_watch, args=(api, path, handle, stop), daemon=True).start()
    return stop


class Seen:
    """First time each (topic, key) was seen, by this process's monotonic clock."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()

    def mark(self, topic: str, key: str, when: float | None = None) -> None:
        with self.lock:
            self.at.setdefault((topic, key), when if when is not None else time.monotonic())

    def get(self, topic: str, key: str) -> float | None:
        with self.lock:
            return self.at.get((topic, key))

    def count(self, topic: str) -> int:
        with self.lock:
            return sum(1 for t, _ in self.at if t == topic)


def latencies(seen: Seen, start: str, end: str, keys: list[str]) -> tuple[int, str, str, str]:
    samples = [
        max(0.0, finish - begin)
        for key in keys
        if (begin := seen.get(start, key)) is not None and (finish := seen.get(end, key)) is not None
    ]
    if not samples:
        return 0, "-", "-", "-"
    p50, p99, worst = percentiles(samples)
    return len(samples), f"{p50:.3f}", f"{p99:.3f}", f"{worst:.3f}"


def setup(api: client.ApiClient, namespace: str, app: str, replicas: int) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    spec = {"clusterIP": "None", "selector": {"app": app}, "ports": [{"port": 4369}]}
    core.create_namespaced_service(namespace, {"metadata": {"name": app}, "spec": spec})
    template = {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "containers": [{"name": "beam", "image": "conclave.dev/fake:1"}],
            "terminationGracePeriodSeconds": 0,
        },
    }
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": app},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}}, "template": template},
        },
    )
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "clustertopologies",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterTopology", "metadata": {"name": app},
         "spec": {"strategy": "KubernetesAPI", "service": app, "applicationName": app}},
    )  # fmt: skip


def ramp(  # noqa: PLR0915 - one scenario, read top to bottom
    api: client.ApiClient, namespace: str, operator: Operator, kubelet: FakeKubelet, top: int, batch: int
) -> list[list[str]]:
    seen = Seen()
    ready_ips: set[str] = set()
    counted: set[str] = set()
    member_count = [0]

    def slices(_: str, body: dict[str, Any]) -> None:
        for endpoint in body.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            ready = conditions.get("ready") is not False and not conditions.get("terminating")
            for ip in endpoint.get("addresses") or []:
                if ready:
                    seen.mark("ready", ip)
                    ready_ips.add(ip)
                else:
                    seen.mark("unready", ip)

    def config_maps(kind: str, body: dict[str, Any]) -> None:
        if body["metadata"]["name"] != "chat-members":
            return
        hosts = {
            name.rpartition("@")[2] for name in json.loads((body.get("data") or {}).get("hosts.json", "[]"))
        }
        now = time.monotonic()
        for ip in hosts - counted:
            seen.mark("counted", ip, now)
        for ip in counted - hosts:
            seen.mark("uncounted", ip, now)
        counted.clear()
        counted.update(hosts)

    def topologies(_: str, body: dict[str, Any]) -> None:
        member_count[0] = (body.get("status") or {}).get("memberCount") or 0

    stops = [
        follow(api, f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", slices),
        follow(api, f"/api/v1/namespaces/{namespace}/configmaps", config_maps),
        follow(api, f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/clustertopologies", topologies),
    ]
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    rows = []
    try:
        before = set()
        cpu0, _ = operator.usage()
        for target in range(batch, top + 1, batch):
            apps.patch_namespaced_deployment_scale("chat", namespace, {"spec": {"replicas": target}})
            with contextlib.suppress(TimeoutError):
                wait_for(lambda t=target: len(ready_ips) >= t, 120, f"{target} ready endpoints")
            with contextlib.suppress(TimeoutError):
                wait_for(lambda t=target: len(counted) >= t, 30, f"{target} counted members")
            fresh = sorted(ready_ips - before)
            before = set(ready_ips)
            cpu, rss = operator.usage()
            n, p50, p99, worst = latencies(seen, "ready", "counted", fresh)
            rows.append([f"+{batch} to {target}", f"{n}/{len(fresh)}", p50, p99, worst, str(member_count[0]),
                         f"{cpu - cpu0:.1f}", f"{rss:.0f}"])  # fmt: skip
            cpu0 = cpu
        pods = sorted(
            (p for p in core.list_namespaced_pod(namespace).items if p.status.pod_ip),
            key=lambda p: p.metadata.name,
        )
        flipped = pods[:50]
        for pod in flipped:
            kubelet.set_ready(namespace, pod.metadata.name, False)
        ips = [p.status.pod_ip for p in flipped]
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: all(seen.get("uncounted", ip) for ip in ips), 30, "unready members uncounted")
        cpu, rss = operator.usage()
        n, p50, p99, worst = latencies(seen, "unready", "uncounted", ips)
        rows.append(
            [
                "50 turn unready",
                f"{n}/50",
                p50,
                p99,
                worst,
                str(member_count[0]),
                f"{cpu - cpu0:.1f}",
                f"{rss:.0f}",
            ]
        )
        cpu0 = cpu
        for pod in flipped:
            kubelet.set_ready(namespace, pod.metadata.name, True)
        deleted = pods[50:150]
        for pod in deleted:
            seen.mark("deleted", pod.status.pod_ip)
            with contextlib.suppress(client.exceptions.ApiException):
                core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
        apps.patch_namespaced_deployment_scale("chat", namespace, {"spec": {"replicas": top - 100}})
        gone = [p.status.pod_ip for p in deleted]
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: all(seen.get("uncounted", ip) for ip in gone), 30, "deleted members uncounted")
        cpu, rss = operator.usage()
        n, p50, p99, worst = latencies(seen, "deleted", "uncounted", gone)
        rows.append(
            [
                "100 pods deleted",
                f"{n}/100",
                p50,
                p99,
                worst,
                str(member_count[0]),
                f"{cpu - cpu0:.1f}",
                f"{rss:.0f}",
            ]
        )
    finally:
        for stop in stops:
            stop.set()
    return rows


def singletons(  # noqa: PLR0915 - one scenario, read top to bottom
    api: client.ApiClient, namespace: str, operator: Operator, count: int, members: int
) -> list[list[str]]:
    seen = Seen()
    phases: dict[str, str] = {}
    owners: dict[str, str] = {}
    holders: dict[str, str] = {}

    def on_singleton(kind: str, body: dict[str, Any]) -> None:
        name, status = body["metadata"]["name"], body.get("status") or {}
        phases[name] = status.get("phase") or ""
        if status.get("phase") == "Placed":
            seen.mark("placed", name)
        if status.get("owner"):
            if name in owners and owners[name] != status["owner"]:
                seen.mark("status-moved", name)
            owners[name] = status["owner"]

    def on_lease(kind: str, body: dict[str, Any]) -> None:
        name, holder = body["metadata"]["name"], (body.get("spec") or {}).get("holderIdentity")
        if holder:
            if name in holders and holders[name] != holder:
                seen.mark("lease-moved", name)
            holders[name] = holder

    stops = [
        follow(api, f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/singletons", on_singleton),
        follow(api, f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", on_lease),
    ]
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    rows = []
    try:
        wait_for(
            lambda: len([p for p in core.list_namespaced_pod(namespace).items if p.status.pod_ip]) >= members,
            120,
            "members",
        )
        time.sleep(3)
        writes0, (cpu0, _) = operator.writes(), operator.usage()
        started = time.monotonic()

        def create(i: int) -> None:
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Singleton",
                    "metadata": {"name": f"s-{i:05d}"}, "spec": {"topology": "sing"}}  # fmt: skip
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "singletons", body)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(count)))
        created = time.monotonic() - started
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: seen.count("placed") >= count, 900, "all placed")
        placed = time.monotonic() - started
        writes1, (cpu1, rss1) = operator.writes(), operator.usage()
        took = f"{placed:.1f} s (created in {created:.1f} s)"
        rows.append(["all Placed", f"{seen.count('placed')}/{count}", took,
                     f"{writes1 - writes0:.0f}", f"{cpu1 - cpu0:.1f}", f"{rss1:.0f}"])  # fmt: skip
        time.sleep(5)
        writes2 = operator.writes()
        time.sleep(60)
        writes3, (cpu3, rss3) = operator.writes(), operator.usage()
        rows.append(
            ["quiet minute", "", "60 s", f"{writes3 - writes2:.0f}", f"{cpu3 - cpu1:.1f}", f"{rss3:.0f}"]
        )
        load = Counter(holders.values())
        victim_member, held = load.most_common(1)[0]
        victim = next(
            p.metadata.name for p in core.list_namespaced_pod(namespace).items
            if p.status.pod_ip and victim_member.endswith("@" + p.status.pod_ip)
        )  # fmt: skip
        moving = [name for name, holder in holders.items() if holder == victim_member]
        deleted = time.monotonic()
        core.delete_namespaced_pod(victim, namespace, grace_period_seconds=0)
        for name in moving:
            seen.mark("deleted", name, deleted)
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: all(seen.get("status-moved", n) for n in moving), 120, "failover")
        writes4, (cpu4, rss4) = operator.writes(), operator.usage()
        for topic, label in (("lease-moved", "failover to Lease"), ("status-moved", "failover to status")):
            n, p50, p99, worst = latencies(seen, "deleted", topic, moving)
            rows.append([label, f"{n}/{len(moving)}", f"p50 {p50} p99 {p99} max {worst}",
                         f"{writes4 - writes3:.0f}", f"{cpu4 - cpu3:.1f}", f"{rss4:.0f}"])  # fmt: skip
        max_load = max(load.values()) / (count / members)
        rows.append(["max/mean load", f"{held} on the busiest", f"{max_load:.3f}", "", "", ""])
    finally:
        for stop in stops:
            stop.set()
    return rows


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in [header, *rows]
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


@contextlib.contextmanager
def local_cluster() -> Iterator[tuple[LocalCluster, client.ApiClient]]:
    cluster = LocalCluster(name="benchscale", pod_cidr="10.245.0.0/16", die_with_caller=True)
    cluster.up(progress=lambda line: print(line, file=sys.stderr))
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        extensions = client.ApiextensionsV1Api(api)
        for definition in crdgen.all_crds():
            with contextlib.suppress(client.exceptions.ApiException):
                extensions.delete_custom_resource_definition(definition["metadata"]["name"])
        time.sleep(2)
        for definition in crdgen.all_crds():
            extensions.create_custom_resource_definition(definition)
        time.sleep(2)
        yield cluster, api
    finally:
        api.close()
        cluster.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--singletons", type=int, default=10_000)
    parser.add_argument("--singleton-members", type=int, default=20)
    parser.add_argument("--skip-ramp", action="store_true")
    parser.add_argument("--skip-singletons", action="store_true")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the local cluster's pod network needs root")
    with local_cluster() as (cluster, api), tempfile.TemporaryDirectory() as scratch:
        core = client.CoreV1Api(api)
        ramp_ns, single_ns = f"ramp-{uuid.uuid4().hex[:6]}", f"single-{uuid.uuid4().hex[:6]}"
        for namespace in (ramp_ns, single_ns):
            core.create_namespace({"metadata": {"name": namespace}})
            wait_for(
                lambda n=namespace: core.list_namespaced_service_account(n).items,
                30,
                "the default ServiceAccount",
            )
        with FakeKubelet(api, cluster.network, namespaces=[ramp_ns, single_ns]) as kubelet:
            if not arguments.skip_ramp:
                setup(api, ramp_ns, "chat", 0)
                operator = Operator(cluster.kubeconfig, [ramp_ns], Path(scratch) / "ramp.log")
                try:
                    time.sleep(3)
                    rows = ramp(api, ramp_ns, operator, kubelet, arguments.members, arguments.batch)
                finally:
                    operator.stop()
                print(
                    f"\nDiscovery ramp to {arguments.members} members "
                    "(latency in seconds, ready → counted in hosts.json)\n"
                )
                print(
                    table(["step", "counted", "p50", "p99", "max", "memberCount", "CPU s", "RSS MiB"], rows)
                )
            if not arguments.skip_singletons:
                setup(api, single_ns, "sing", arguments.singleton_members)
                operator = Operator(cluster.kubeconfig, [single_ns], Path(scratch) / "singletons.log")
                try:
                    rows = singletons(
                        api, single_ns, operator, arguments.singletons, arguments.singleton_members
                    )
                finally:
                    operator.stop()
                print(f"\n{arguments.singletons} Singletons on {arguments.singleton_members} members\n")
                print(table(["step", "singletons", "time", "writes", "CPU s", "RSS MiB"], rows))


if __name__ == "__main__":
    main()

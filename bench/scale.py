"""Scale (issue #16): one operator replica on the local control plane, as a platform team
would load it. Prints tables; it is not a timed test and CI does not run it.

1. Discovery ramp: a KubernetesAPI topology behind a headless Service whose Deployment
   grows from 0 to --members fake-kubelet pods in batches of --batch. Per batch: the
   latency from an endpoint turning ready (this process's EndpointSlice watch) to its
   member being counted (in the topology's <name>-members ConfigMap, hosts.json), p50,
   p99 and max; the topology's memberCount; the operator's CPU seconds and RSS. Then, at
   the top: 50 pods turn unready, and 100 pods are deleted (latency to leaving hosts.json).
2. Singletons: --singletons Singletons on a topology of --singleton-members pods: the time
   until all are Placed and the writes that took, and each one's latency from its create
   request to its status saying Placed (p50/p99/max); a quiet minute (writes in it); the pod
   owning the most singletons is deleted (grace 0) and each of its singletons is timed to
   its new Lease holder and to its new status.owner, p50/p99/max; RSS at the end; then the
   operator is restarted (a new process lists everything afresh): the time to its first
   iteration that succeeded, its writes (none: nothing changed) and its RSS. Then the
   API server's floor for those writes on this machine: as many Leases and Singletons in a
   namespace no operator watches, each moved by a bare client (conclave's API client, the
   same merge patches, the same objects in flight) Lease first, then status, timed by the
   same watches from the first write on.
3. ProcessGroups: --groups groups (source Pods) on a KubernetesAPI topology of --group-pods
   pods. Each pod is labelled with a shard (pod i: i mod --groups, by pod name) and group g
   selects the 1 + g mod 10 shards from g on (shard In [...]): 5 to 50 members each at the
   defaults, every pod in several groups. The time from creating the groups until all are
   Populated, and until each shows exactly the members its selector implies (count
   included); a quiet 30 s; then 100 pods move to the shard half the ring away (one label
   patch each, 8 at a time) and each group whose members that changes is timed from the
   last patch that changes it to its status showing the new members, p50/p99/max; then
   one pod alone, timed the same way. Writes, CPU seconds and RSS per step (read SETTLE
   seconds after its last status); at the end, how many groups show exactly the members
   their selectors imply.

Both ends of every latency are seen by this process's watches, on one clock. The pieces
the parts share are in bench/rig.py.

    .venv/bin/python bench/scale.py [--members 1000] [--batch 100] [--singletons 10000]
        [--singleton-members 20] [--groups 200] [--group-pods 1000] [--skip-ramp]
        [--skip-singletons] [--skip-groups]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from discovery import wait_for
from kubernetes import client
from rig import GROUP, VERSION, Operator, Seen, follow, latencies, local_cluster, setup, table

from conclave.act.applying import CONCURRENCY
from conclave.adapters.apiclient import ApiClient, load_configuration
from conclave_harness.localcluster import LocalCluster
from conclave_harness.localcluster.kubelet import FakeKubelet

SETTLE = 5  # seconds from a step's last status to reading its writes: events follow statuses


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
        before: set[str] = set()
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
        rows.append(["50 turn unready", f"{n}/50", p50, p99, worst, str(member_count[0]),
                     f"{cpu - cpu0:.1f}", f"{rss:.0f}"])  # fmt: skip
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
        rows.append(["100 pods deleted", f"{n}/100", p50, p99, worst, str(member_count[0]),
                     f"{cpu - cpu0:.1f}", f"{rss:.0f}"])  # fmt: skip
    finally:
        for stop in stops:
            stop.set()
    return rows


def singletons(  # noqa: PLR0915 - one scenario, read top to bottom
    api: client.ApiClient,
    namespace: str,
    operator: Operator,
    count: int,
    members: int,
    floor: Callable[[int], list[list[str]]],
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
            seen.mark("created", body["metadata"]["name"])
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "singletons", body)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(count)))
        created = time.monotonic() - started
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: seen.count("placed") >= count, 900, "all placed")
        placed = time.monotonic() - started
        writes1, (cpu1, rss1) = operator.writes(), operator.usage()
        took = f"{placed:.1f} s (created in {created:.1f} s, the last placed {placed - created:.1f} s after)"
        rows.append(["all Placed", f"{seen.count('placed')}/{count}", took,
                     f"{writes1 - writes0:.0f}", f"{cpu1 - cpu0:.1f}", f"{rss1:.0f}"])  # fmt: skip
        n, p50, p99, worst = latencies(seen, "created", "placed", [f"s-{i:05d}" for i in range(count)])
        rows.append(
            ["each, created → Placed", f"{n}/{count}", f"p50 {p50} p99 {p99} max {worst}", "", "", ""]
        )
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
        print(
            f"failover: deleting pod {victim}, owner of {len(moving)} singletons, at {time.time():.3f}",
            file=sys.stderr,
        )
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
        time.sleep(SETTLE)  # the failover's events, and the replacement pod's arrival
        rows.append(restart(operator, count))
    finally:
        for stop in stops:
            stop.set()
    return rows + floor(len(moving))


def restart(operator: Operator, count: int) -> list[str]:
    """A new operator process over what is there: the time to its first iteration that
    succeeded (every singleton listed and planned), and what it wrote doing so."""
    started = time.monotonic()
    operator.restart()

    def reconciled() -> float:
        return operator.metric("conclave_reconcile_total", controller="topology", result="success")

    wait_for(lambda: reconciled() >= 1, 300, "the first iteration after a restart")
    took = time.monotonic() - started
    time.sleep(SETTLE)
    writes, (cpu, rss) = operator.writes(), operator.usage()
    return [
        "restarted",
        f"{count} listed",
        f"{took:.1f} s to the first full look",
        f"{writes:.0f}",
        f"{cpu:.1f}",
        f"{rss:.0f}",
    ]


def floor(api: client.ApiClient, kubeconfig: Path, namespace: str, count: int) -> list[list[str]]:
    """The failover's writes without the operator: ``count`` Leases and Singletons, each
    moved Lease first, then status, CONCURRENCY objects in flight, by a bare client."""
    seen = Seen()
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    singletons = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/singletons"

    def status(owner: str, epoch: int) -> dict[str, Any]:
        since = "2026-01-01T00:00:00Z"
        condition = {
            "type": "Placed",
            "status": "True",
            "reason": "OwnerGone",
            "message": f"Owned by {owner} at epoch {epoch}",
            "lastTransitionTime": since,
            "observedGeneration": 1,
        }
        fields = {"owner": owner, "ownerPod": owner, "epoch": epoch, "phase": "Placed", "since": since}
        return {"status": {**fields, "conditions": [condition]}}

    async def writes(moving: bool) -> None:
        async with ApiClient(load_configuration(str(kubeconfig)), "bench-floor", CONCURRENCY) as bare:
            slots = asyncio.Semaphore(CONCURRENCY)

            async def one(i: int) -> None:
                name = f"f-{i:05d}"
                async with slots:
                    if moving:
                        await bare.merge_patch(
                            f"{leases}/{name}", {"spec": {"holderIdentity": "new", "leaseTransitions": 2}}
                        )
                        await bare.merge_patch(f"{singletons}/{name}/status", status("new", 2))
                        return
                    await bare.create(
                        leases,
                        {
                            "metadata": {"name": name},
                            "spec": {"holderIdentity": "old", "leaseTransitions": 1},
                        },
                    )
                    body = {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "Singleton",
                        "metadata": {"name": name},
                        "spec": {"topology": "floor"},
                    }
                    await bare.create(singletons, body)
                    await bare.merge_patch(f"{singletons}/{name}/status", status("old", 1))

            await asyncio.gather(*(one(i) for i in range(count)))

    def moved(
        topic: str, holder: Callable[[dict[str, Any]], str | None]
    ) -> Callable[[str, dict[str, Any]], None]:
        def handle(_: str, body: dict[str, Any]) -> None:
            if holder(body) == "new":
                seen.mark(topic, body["metadata"]["name"])

        return handle

    asyncio.run(writes(moving=False))
    stops = [
        follow(
            api, leases, moved("lease-moved", lambda body: (body.get("spec") or {}).get("holderIdentity"))
        ),
        follow(api, singletons, moved("status-moved", lambda body: (body.get("status") or {}).get("owner"))),
    ]
    try:
        time.sleep(3)  # the watches are open
        names = [f"f-{i:05d}" for i in range(count)]
        started = time.monotonic()
        for name in names:
            seen.mark("started", name, started)
        asyncio.run(writes(moving=True))
        wait_for(lambda: seen.count("status-moved") >= count, 60, "the floor's writes")
    finally:
        for stop in stops:
            stop.set()
    rows = []
    for topic, label in (("lease-moved", "API floor to Lease"), ("status-moved", "API floor to status")):
        n, p50, p99, worst = latencies(seen, "started", topic, names)
        rows.append([label, f"{n}/{count}", f"p50 {p50} p99 {p99} max {worst}", f"{2 * count}", "", ""])
    return rows


def groups(  # noqa: PLR0915 - one scenario, read top to bottom
    api: client.ApiClient, namespace: str, operator: Operator, count: int, pods: int
) -> tuple[str, list[list[str]]]:
    """Part 3: each pod gets a ``shard`` label (pod i: shard i mod ``count``); group g selects
    the 1 + g mod 10 shards from g on, so it has 1 to 10 shards' pods and every shard is in
    several groups. Returns the table's title and rows."""
    seen, lock = Seen(), threading.Lock()
    running: dict[str, str] = {}  # pod name -> IP, while it runs
    wanted: dict[str, frozenset[str]] = {}  # group -> the member IPs its selector implies
    shown: dict[str, frozenset[str]] = {}  # group -> the member IPs its status shows
    phase = ["right"]

    def on_pod(kind: str, body: dict[str, Any]) -> None:
        name, ip = body["metadata"]["name"], (body.get("status") or {}).get("podIP")
        with lock:
            if kind == "DELETED" or not ip or body["metadata"].get("deletionTimestamp"):
                running.pop(name, None)
            else:
                running[name] = ip

    def on_group(_: str, body: dict[str, Any]) -> None:
        name, status = body["metadata"]["name"], body.get("status") or {}
        ips = frozenset(member.rpartition("@")[2] for member in status.get("members") or [])
        populated = any(
            c.get("type") == "Populated" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        if populated:
            seen.mark("populated", name)
        with lock:
            shown[name] = ips
            if populated and status.get("count") == len(ips) and ips == wanted.get(name):
                seen.mark(phase[0], name)

    stops = [
        follow(api, f"/api/v1/namespaces/{namespace}/pods", on_pod),
        follow(api, f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/processgroups", on_group),
    ]
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    names = [f"g-{g:03d}" for g in range(count)]
    selects = {name: {f"{(g + j) % count:03d}" for j in range(1 + g % 10)} for g, name in enumerate(names)}
    rows = []
    try:
        wait_for(lambda: len(running) >= pods, 600, f"{pods} running pods")
        with lock:
            ips = dict(sorted(running.items()))
        shard = {pod: f"{i % count:03d}" for i, pod in enumerate(ips)}

        def label(pod: str) -> float:
            sent = time.monotonic()
            core.patch_namespaced_pod(pod, namespace, {"metadata": {"labels": {"shard": shard[pod]}}})
            return sent

        def implied() -> dict[str, frozenset[str]]:
            return {n: frozenset(ips[p] for p in ips if shard[p] in selects[n]) for n in names}

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(label, ips))
        wanted.update(implied())
        sizes = [len(wanted[name]) for name in names]

        def counted() -> Any:
            body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "clustertopologies", "grp")
            return body.get("status", {}).get("memberCount")

        wait_for(lambda: counted() == pods, 300, f"memberCount {pods}")
        time.sleep(5)
        writes0, (cpu0, _) = operator.writes(), operator.usage()
        started = time.monotonic()

        def create(name: str) -> None:
            selector = {
                "matchExpressions": [{"key": "shard", "operator": "In", "values": sorted(selects[name])}]
            }
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ProcessGroup", "metadata": {"name": name},
                    "spec": {"topology": "grp", "group": name, "selector": selector}}  # fmt: skip
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "processgroups", body)

        print(f"Creating {count} ProcessGroups", file=sys.stderr)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, names))
        created = time.monotonic() - started
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: seen.count("right") >= count, 600, "all groups Populated with their members")
        time.sleep(SETTLE)
        writes1, (cpu1, rss1) = operator.writes(), operator.usage()
        for topic, step in (("populated", "created → Populated"), ("right", "created → members as labelled")):
            last = max((at - started for n in names if (at := seen.get(topic, n)) is not None), default=0.0)
            rows.append([step, f"{seen.count(topic)}/{count}", f"{last:.1f} (created in {created:.1f})",
                         f"{writes1 - writes0:.0f}", f"{cpu1 - cpu0:.1f}", f"{rss1:.0f}"])  # fmt: skip
        time.sleep(30)
        writes2, (cpu2, rss2) = operator.writes(), operator.usage()
        rows.append(["quiet 30 s", "", "30", f"{writes2 - writes1:.0f}", f"{cpu2 - cpu1:.1f}", f"{rss2:.0f}"])

        def relabel(moved: list[str], topic: str) -> list[str]:
            """Move ``moved`` half the ring of shards away; one row, timed per changed group."""
            for pod in moved:
                shard[pod] = f"{(int(shard[pod]) + count // 2) % count:03d}"
            before, after = dict(wanted), implied()
            affected = [n for n in names if before[n] != after[n]]
            writes0, (cpu0, _) = operator.writes(), operator.usage()
            with lock:
                wanted.update(after)
                phase[0] = topic
            what = f"{len(moved)} pods" if len(moved) != 1 else "1 pod"
            print(f"Relabelling {what}", file=sys.stderr)
            with ThreadPoolExecutor(8) as pool:
                sent = dict(zip(moved, pool.map(label, moved), strict=True))
            patched = time.monotonic() - min(sent.values())
            for name in affected:  # from the last patch that changes the group's members
                last = max(sent[p] for p in moved if ips[p] in before[name] ^ after[name])
                seen.mark(f"{topic} sent", name, last)
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: all(seen.get(topic, n) for n in affected), 120, "new memberships")
            time.sleep(SETTLE)
            writes1, (cpu1, rss1) = operator.writes(), operator.usage()
            n, p50, p99, worst = latencies(seen, f"{topic} sent", topic, affected)
            return [f"relabel {what} → new members", f"{n}/{len(affected)} changed",
                    f"p50 {p50} p99 {p99} max {worst} (patched in {patched:.1f})",
                    f"{writes1 - writes0:.0f}", f"{cpu1 - cpu0:.1f}", f"{rss1:.0f}"]  # fmt: skip

        rows.append(relabel(list(ips)[: min(100, pods)], "moved"))
        time.sleep(10 - SETTLE)
        rows.append(relabel(list(ips)[-1:], "moved again"))
        with lock:
            right = sum(1 for name in names if shown.get(name) == wanted[name])
        rows.append(["then: members as labelled", f"{right}/{count}", "", "", "", ""])
    finally:
        for stop in stops:
            stop.set()
    per_pod = sum(sizes) / max(1, len(ips))
    title = (f"{count} ProcessGroups over {pods} pods ({min(sizes)} to {max(sizes)} members, mean "
             f"{sum(sizes) / count:.1f}; {per_pod:.1f} groups per pod)")  # fmt: skip
    return title, rows


def part(
    cluster: LocalCluster, namespace: str, log: Path, run: Callable[[Operator], list[list[str]]]
) -> list[list[str]]:
    """``run`` against an operator of its own, watching ``namespace`` only."""
    operator = Operator(cluster.kubeconfig, [namespace], log)
    try:
        return run(operator)
    finally:
        operator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--singletons", type=int, default=10_000)
    parser.add_argument("--singleton-members", type=int, default=20)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--group-pods", type=int, default=1000)
    parser.add_argument("--skip-ramp", action="store_true")
    parser.add_argument("--skip-singletons", action="store_true")
    parser.add_argument("--skip-groups", action="store_true")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the local cluster's pod network needs root")
    with local_cluster() as (cluster, api), tempfile.TemporaryDirectory() as scratch:
        core = client.CoreV1Api(api)
        suffix = uuid.uuid4().hex[:6]
        ramp_ns, single_ns, group_ns = f"ramp-{suffix}", f"single-{suffix}", f"groups-{suffix}"
        floor_ns = f"floor-{suffix}"
        for namespace in (ramp_ns, single_ns, group_ns, floor_ns):
            core.create_namespace({"metadata": {"name": namespace}})
            wait_for(
                lambda n=namespace: core.list_namespaced_service_account(n).items,
                30,
                "the default ServiceAccount",
            )
        with FakeKubelet(api, cluster.network, namespaces=[ramp_ns, single_ns, group_ns]) as kubelet:
            if not arguments.skip_ramp:
                setup(api, ramp_ns, "chat", 0)

                def ramping(operator: Operator) -> list[list[str]]:
                    time.sleep(3)
                    return ramp(api, ramp_ns, operator, kubelet, arguments.members, arguments.batch)

                rows = part(cluster, ramp_ns, Path(scratch) / "ramp.log", ramping)
                print(
                    f"\nDiscovery ramp to {arguments.members} members "
                    "(latency in seconds, ready → counted in hosts.json)\n"
                )
                print(
                    table(["step", "counted", "p50", "p99", "max", "memberCount", "CPU s", "RSS MiB"], rows)
                )
            if not arguments.skip_singletons:
                setup(api, single_ns, "sing", arguments.singleton_members)
                rows = part(
                    cluster,
                    single_ns,
                    Path(scratch) / "singletons.log",
                    lambda operator: singletons(
                        api,
                        single_ns,
                        operator,
                        arguments.singletons,
                        arguments.singleton_members,
                        lambda count: floor(api, cluster.kubeconfig, floor_ns, count),
                    ),
                )
                print(f"\n{arguments.singletons} Singletons on {arguments.singleton_members} members\n")
                print(table(["step", "singletons", "time", "writes", "CPU s", "RSS MiB"], rows))
            if not arguments.skip_groups:
                setup(api, group_ns, "grp", arguments.group_pods)
                titled: list[str] = []

                def grouping(operator: Operator) -> list[list[str]]:
                    title, rows = groups(api, group_ns, operator, arguments.groups, arguments.group_pods)
                    titled.append(title)
                    return rows

                rows = part(cluster, group_ns, Path(scratch) / "groups.log", grouping)
                print(f"\n{titled[0]} (time in seconds)\n")
                print(table(["step", "groups", "time", "writes", "CPU s", "RSS MiB"], rows))


if __name__ == "__main__":
    main()

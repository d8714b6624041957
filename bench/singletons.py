"""Singleton placement and failover.

1. Placement, pure: 10,000 singletons over 20 members; one member added, then one
   removed. Prints the fraction of singletons that moved against the minimum possible
   (1/21 and 1/20), and the max/mean owner load, for conclave's rendezvous hashing and,
   on the same input, for a model of Horde's default ring (libring's HashRing: 128
   points per member on a 32-bit ring), and for conclave's bounded loads (loadFactor
   1.05: the planner's own functions, deciding singleton by singleton in name order as it
   does; Passive moves only what it must, Active follows the bounded choice until stable).
2. Failover, on the local control plane with the operator as its own process: the
   owner's pod is deleted (gone from the API at once, grace period 0) and the time until
   this process's watch shows the Lease granted to another member is measured, over
   50 runs.

    .venv/bin/python bench/singletons.py [--singletons 10000] [--members 20] [--runs 50]
        [--placement-only]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import hashlib
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from discovery import operator_process, percentiles, wait_for
from kubernetes import client, config, watch

from conclave.api import crdgen
from conclave.core.placement import bounded, capacity, choose
from conclave_harness.localcluster import LocalCluster
from conclave_harness.localcluster.kubelet import FakeKubelet

GROUP, VERSION = "conclave.dev", "v1alpha1"
RING_POINTS = 128


def ring_model(members: Sequence[str]) -> Callable[[str], str]:
    """Horde's UniformDistribution as libring builds it: each member hashed onto a 2^32
    ring at 128 points; a key belongs to the first point at or after its own hash."""

    def point(text: str) -> int:
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")

    ring = sorted((point(f"{member}:{i}"), member) for member in members for i in range(RING_POINTS))
    hashes = [h for h, _ in ring]

    def owner(key: str) -> str:
        index = bisect.bisect_left(hashes, point(key)) % len(ring)
        return ring[index][1]

    return owner


def rendezvous(members: Sequence[str]) -> Callable[[str], str]:
    def owner(key: str) -> str:
        chosen = choose(key, members)
        assert chosen is not None
        return chosen

    return owner


LOAD_FACTOR = 1.05


def place_bounded(
    keys: Sequence[str], members: Sequence[str], before: dict[str, str], active: bool
) -> dict[str, str]:
    """Owners as the planner decides them with bounded loads, from the owners ``before``:
    a key whose owner is no member is granted its bounded choice, in name order; Active
    also moves a key whose bounded choice is another member, pass after pass, until none does."""
    limit = capacity(len(keys), len(members), LOAD_FACTOR)
    owners = {key: owner for key, owner in before.items() if owner in members}
    loads = Counter(owners.values())
    for key in keys:
        if key not in owners:
            chosen = bounded(key, members, loads, limit)
            assert chosen is not None
            owners[key] = chosen
            loads[chosen] += 1
    changed = active
    while changed:
        changed = False
        for key in keys:
            held = owners[key]
            chosen = bounded(key, members, {**loads, held: loads[held] - 1}, limit)
            if chosen is not None and chosen != held:
                loads[held] -= 1
                loads[chosen] += 1
                owners[key] = chosen
                changed = True
    return owners


def max_over_mean(owners: Sequence[str], members: Sequence[str]) -> float:
    loads = Counter(owners)
    return max(loads.values()) / (len(owners) / len(members))


def placement_rows(singletons: int, size: int) -> list[tuple[str, str, float, float, float, float]]:
    keys = sorted(f"prod/singleton-{i}" for i in range(singletons))
    members = [f"chat@10.0.{i // 250}.{i % 250 + 1}" for i in range(size)]
    grown = [*members, f"chat@10.1.0.{size + 1}"]
    shrunk = members[1:]
    rows = []
    for label, placer in (("conclave (rendezvous)", rendezvous), ("Horde ring model", ring_model)):
        place = placer(members)
        base = [place(key) for key in keys]
        loads = Counter(base)
        load = max(loads.values()) / statistics.mean(loads.values())
        for change, others, minimum in (
            ("+1 member", grown, 1 / (size + 1)),
            ("-1 member", shrunk, 1 / size),
        ):
            place_after = placer(others)
            after = [place_after(key) for key in keys]
            moved = sum(a != b for a, b in zip(base, after, strict=True)) / singletons
            rows.append((label, change, moved, moved / minimum, load, max_over_mean(after, others)))
    for label, active in (("bounded, Passive", False), ("bounded, Active", True)):
        start = place_bounded(keys, members, {}, active)
        load = max_over_mean(list(start.values()), members)
        for change, others, minimum in (
            ("+1 member", grown, 1 / (size + 1)),
            ("-1 member", shrunk, 1 / size),
        ):
            after_owners = place_bounded(keys, others, start, active)
            moved = sum(start[key] != after_owners[key] for key in keys) / singletons
            after_load = max_over_mean(list(after_owners.values()), others)
            rows.append((label, change, moved, moved / minimum, load, after_load))
    return rows


def lease_holders(api: client.ApiClient, namespace: str, name: str, seen: list[tuple[float, str]]) -> None:
    """Record every holder the Lease names, with this process's clock, until the namespace goes."""
    stream = watch.Watch()
    with contextlib.suppress(Exception):
        for event in stream.stream(
            client.CoordinationV1Api(api).list_namespaced_lease,
            namespace,
            field_selector=f"metadata.name={name}",
            timeout_seconds=3600,
        ):
            holder = event["object"].spec.holder_identity
            if holder:
                seen.append((time.monotonic(), holder))


def failover(runs: int) -> list[float]:
    cluster = LocalCluster(name="benchsingle", pod_cidr="10.249.0.0/16", die_with_caller=True)
    cluster.up(progress=lambda line: print(line, file=sys.stderr))
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    try:
        extensions = client.ApiextensionsV1Api(api)
        for definition in crdgen.all_crds():
            with contextlib.suppress(client.exceptions.ApiException):
                extensions.create_custom_resource_definition(definition)
        core.create_namespace({"metadata": {"name": namespace}})
        wait_for(
            lambda: core.list_namespaced_service_account(namespace).items, 30, "the default ServiceAccount"
        )
        core.create_namespaced_service(
            namespace,
            {"metadata": {"name": "chat"}, "spec": {"clusterIP": "None", "selector": {"app": "chat"}}},
        )
        with FakeKubelet(api, cluster.network) as kubelet, tempfile.TemporaryDirectory() as scratch:
            pods = [f"chat-{i}" for i in range(5)]
            for pod in pods:
                create_pod(core, namespace, pod)
            for pod in pods:
                kubelet.wait_running(namespace, pod)
            custom = client.CustomObjectsApi(api)
            topology = {"strategy": "KubernetesAPI", "service": "chat", "applicationName": "chat"}
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "clustertopologies",
                {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterTopology",
                 "metadata": {"name": "chat"}, "spec": topology},
            )  # fmt: skip
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "singletons",
                {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Singleton",
                 "metadata": {"name": "failover"}, "spec": {"topology": "chat", "leaseDuration": "15s"}},
            )  # fmt: skip
            with operator_process(cluster.kubeconfig, namespace, Path(scratch) / "operator.log"):
                seen: list[tuple[float, str]] = []
                threading.Thread(
                    target=lease_holders, args=(api, namespace, "failover", seen), daemon=True
                ).start()
                wait_for(lambda: seen, 30, "the first owner")
                samples = []
                for run in range(runs):
                    owner = owner_pod(api, namespace)
                    before = len(seen)
                    core.delete_namespaced_pod(owner, namespace, grace_period_seconds=0)
                    deleted = time.monotonic()
                    wait_for(lambda n=before: len(seen) > n, 30, "the next owner")
                    samples.append(seen[before][0] - deleted)
                    create_pod(core, namespace, f"chat-r{run}")
                    kubelet.wait_running(namespace, f"chat-r{run}")
                    time.sleep(0.2)  # let the new member be discovered before the next run
                return samples
    finally:
        with contextlib.suppress(client.exceptions.ApiException):
            core.delete_namespace(namespace)
        api.close()
        cluster.down()


def create_pod(core: client.CoreV1Api, namespace: str, name: str) -> None:
    body = {
        "metadata": {"name": name, "labels": {"app": "chat"}},
        "spec": {"containers": [{"name": "beam", "image": "conclave.dev/fake:1"}]},
    }
    core.create_namespaced_pod(namespace, body)


def owner_pod(api: client.ApiClient, namespace: str) -> str:
    found = client.CoordinationV1Api(api).read_namespaced_lease("failover", namespace)
    pod: str = (found.metadata.annotations or {})["conclave.dev/owner-pod"]
    return pod


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singletons", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--placement-only", action="store_true", help="skip the failover part")
    arguments = parser.parse_args()
    print(f"\nPlacement: {arguments.singletons} singletons over {arguments.members} members\n")
    print(f"{'placement':<24}{'change':<12}{'moved':>8}{'x minimum':>11}{'max/mean':>10}{'after':>8}")
    for label, change, moved, ratio, load, after in placement_rows(arguments.singletons, arguments.members):
        print(f"{label:<24}{change:<12}{moved:>8.4f}{ratio:>11.3f}{load:>10.3f}{after:>8.3f}")
    if arguments.placement_only:
        return
    if os.geteuid() != 0:
        sys.exit("the failover part needs the local cluster's pod network, which needs root")
    samples = failover(arguments.runs)
    p50, p99, worst = percentiles(samples)
    print(f"\nFailover after a confirmed-gone owner (pod deleted, grace 0), {len(samples)} runs (seconds)\n")
    print(f"{'p50':>9}{'p99':>9}{'max':>9}")
    print(f"{p50:>9.3f}{p99:>9.3f}{worst:>9.3f}")


if __name__ == "__main__":
    main()

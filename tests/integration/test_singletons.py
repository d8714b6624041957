"""Singletons on the real control plane: fake-kubelet pods, simulated members, the operator
as its own process. Ownership is read from the Lease, the truth the app's rule reads."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from conclave.core.marks import REASON_ANNOTATION, pod_annotation, released_annotation
from conclave.core.placement import choose
from conclave_harness.localcluster.kubelet import TERMINATION_DELAY_ANNOTATION, FakeKubelet
from conclave_harness.sim import SimulatedMembers
from support import (
    GROUP,
    STABLE_AFTER,
    VERSION,
    Operators,
    create,
    custom,
    events_about,
    eventually,
    member_pod,
    partition_of,
    read,
)

pytestmark = pytest.mark.usefixtures("installed_crds")

CHURN_SEED = int(os.environ.get("CONCLAVE_CHURN_SEED", "20261125"))
"""The churn test's random history; another seed explores another history."""


@dataclasses.dataclass(frozen=True)
class Owner:
    holder: str | None
    epoch: int
    pod: str | None
    reason: str | None
    resource_version: str


def lease(api_client: client.ApiClient, namespace: str, name: str) -> Owner | None:
    try:
        found = client.CoordinationV1Api(api_client).read_namespaced_lease(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    annotations = found.metadata.annotations or {}
    return Owner(
        found.spec.holder_identity,
        found.spec.lease_transitions or 0,
        annotations.get("conclave.dev/owner-pod"),
        annotations.get(REASON_ANNOTATION),
        found.metadata.resource_version,
    )


def held(api_client: client.ApiClient, namespace: str, name: str) -> Owner | None:
    found = lease(api_client, namespace, name)
    return found if found is not None and found.holder else None


def revoked(api_client: client.ApiClient, namespace: str, name: str) -> Owner | None:
    """The Lease once it names no holder (the last owner was revoked)."""
    found = lease(api_client, namespace, name)
    return found if found is not None and not found.holder else None


def singleton(api_client: client.ApiClient, namespace: str, name: str, **spec: Any) -> None:
    body = {"kind": "Singleton", "metadata": {"name": name}, "spec": {"topology": "chat", **spec}}
    create(api_client, namespace, "singletons", body)


def pod_annotations(api_client: client.ApiClient, namespace: str, pod: str) -> dict[str, str]:
    found: dict[str, str] = (
        client.CoreV1Api(api_client).read_namespaced_pod(pod, namespace).metadata.annotations
    )
    return found or {}


def annotate(api_client: client.ApiClient, namespace: str, pod: str, annotations: dict[str, str]) -> None:
    client.CoreV1Api(api_client).patch_namespaced_pod(
        pod, namespace, {"metadata": {"annotations": annotations}}
    )


def status_of(api_client: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = read(api_client, namespace, "singletons", name).get("status", {})
    return found


def reasons(api_client: client.ApiClient, namespace: str, name: str) -> list[str]:
    return [reason for _, reason, _ in events_about(api_client, namespace, name)]


def test_a_gone_owner_is_replaced_within_a_second_and_a_terminating_one_only_once_it_is_gone(
    api_client: client.ApiClient, namespace: str, cluster_of: Callable[..., Any], kubelet: FakeKubelet
) -> None:
    cluster_of(4)
    singleton(api_client, namespace, "jobs", leaseDuration="60s")
    first = eventually(lambda: held(api_client, namespace, "jobs"))
    assert (first.epoch, first.reason) == (1, "Placed")
    assert first.pod is not None
    status = eventually(
        lambda: (s := status_of(api_client, namespace, "jobs")).get("phase") == "Placed" and s
    )
    assert (status["owner"], status["ownerPod"], status["epoch"]) == (first.holder, first.pod, 1)
    eventually(lambda: pod_annotations(api_client, namespace, first.pod).get(pod_annotation("jobs")) == "1")

    started = time.monotonic()
    client.CoreV1Api(api_client).delete_namespaced_pod(first.pod, namespace, grace_period_seconds=0)
    second = eventually(
        lambda: (o := held(api_client, namespace, "jobs")) and o.epoch == 2 and o, interval=0.01
    )
    assert time.monotonic() - started < 1.0
    assert (second.reason, second.holder != first.holder) == ("OwnerGone", True)
    assert second.pod is not None

    # terminating, not gone: it runs through its grace period, so it is only revoked
    annotate(api_client, namespace, second.pod, {TERMINATION_DELAY_ANNOTATION: "never"})
    client.CoreV1Api(api_client).delete_namespaced_pod(second.pod, namespace)
    cleared = eventually(lambda: revoked(api_client, namespace, "jobs"))
    assert (cleared.epoch, cleared.reason) == (2, "Terminating")
    assert status_of(api_client, namespace, "jobs")["phase"] in ("Placed", "Moving")  # mirrors soon after
    eventually(lambda: status_of(api_client, namespace, "jobs").get("phase") == "Moving")
    time.sleep(2.0)
    assert held(api_client, namespace, "jobs") is None, "granted while the old owner still runs"
    started = time.monotonic()
    kubelet.confirm_termination(namespace, second.pod)
    third = eventually(lambda: held(api_client, namespace, "jobs"), interval=0.01)
    assert time.monotonic() - started < 1.0
    assert (third.epoch, third.reason) == (3, "OwnerGone")
    assert {"OwnerGranted", "OwnerRevoked"} <= set(eventually(lambda: reasons(api_client, namespace, "jobs")))


def test_a_not_ready_owner_is_revoked_at_once_and_replaced_after_the_lease_or_when_it_releases(
    api_client: client.ApiClient, namespace: str, cluster_of: Callable[..., Any], kubelet: FakeKubelet
) -> None:
    cluster_of(3)
    duration = 3.0
    singleton(api_client, namespace, "jobs", leaseDuration=f"{duration:.0f}s")
    first = eventually(lambda: held(api_client, namespace, "jobs"))
    assert first.pod is not None

    kubelet.set_ready(namespace, first.pod, False)
    cleared = eventually(lambda: revoked(api_client, namespace, "jobs"), interval=0.01)
    revoked_at = time.monotonic()
    assert (cleared.epoch, cleared.reason) == (1, "NotReady")
    eventually(lambda: pod_annotation("jobs") not in pod_annotations(api_client, namespace, first.pod))
    second = eventually(lambda: held(api_client, namespace, "jobs"), timeout=duration + 5, interval=0.01)
    waited = time.monotonic() - revoked_at
    assert duration - 0.1 <= waited < duration + 1.0
    assert (second.epoch, second.reason) == (2, "LeaseExpired")
    assert second.pod is not None

    kubelet.set_ready(namespace, second.pod, False)
    eventually(lambda: revoked(api_client, namespace, "jobs"), interval=0.01)
    started = time.monotonic()
    annotate(api_client, namespace, second.pod, {released_annotation("jobs"): "2"})  # what the app does
    third = eventually(lambda: held(api_client, namespace, "jobs"), interval=0.01)
    assert time.monotonic() - started < 1.0
    assert (third.epoch, third.reason) == (3, "Released")
    assert third.pod is not None
    eventually(lambda: pod_annotations(api_client, namespace, third.pod).get(pod_annotation("jobs")) == "3")

    custom(api_client).delete_namespaced_custom_object(GROUP, VERSION, namespace, "singletons", "jobs")
    for pod in (second.pod, third.pod):  # a deleted singleton leaves no mark on any pod
        eventually(
            lambda p=pod: (
                not any(
                    k.startswith("conclave.dev/singleton.") for k in pod_annotations(api_client, namespace, p)
                )
            )
        )


def test_no_lease_is_written_while_ownership_is_unchanged(
    api_client: client.ApiClient, namespace: str, cluster_of: Callable[..., Any]
) -> None:
    cluster_of(3)
    names = [f"job-{i}" for i in range(100)]
    for name in names:
        singleton(api_client, namespace, name)

    def versions() -> dict[str, str] | None:
        leases = client.CoordinationV1Api(api_client).list_namespaced_lease(
            namespace, label_selector="conclave.dev/lease-of"
        )
        found = {
            item.metadata.name: item.metadata.resource_version
            for item in leases.items
            if item.spec.holder_identity
        }
        return found if len(found) == len(names) else None

    before = eventually(versions, timeout=60)
    time.sleep(60)  # a quiet minute: probes, resyncs and status checks keep running
    assert versions() == before


def test_fence_moves_a_minority_owner_to_the_majority_continue_keeps_it_no_majority_fences(
    api_client: client.ApiClient, namespace: str, cluster_of: Callable[..., Any]
) -> None:
    sim, names = cluster_of(5)
    minority = names[3:]
    name = next(n for n in (f"job-{i}" for i in range(200)) if choose(f"{namespace}/{n}", names) in minority)
    duration = 3.0
    singleton(api_client, namespace, name, leaseDuration=f"{duration:.0f}s", partitionPolicy="Fence")
    singleton(api_client, namespace, "steady", partitionPolicy="Continue")
    first = eventually(lambda: held(api_client, namespace, name))
    steady = eventually(lambda: held(api_client, namespace, "steady"))
    assert first.holder in minority

    sim.partition([names[:3], minority])
    eventually(
        lambda: partition_of(api_client, namespace).get("state") == "Partitioned", timeout=STABLE_AFTER + 5
    )
    cleared = eventually(lambda: revoked(api_client, namespace, name), interval=0.02)
    revoked_at = time.monotonic()
    assert cleared.reason == "MinorityFenced"
    moved = eventually(lambda: held(api_client, namespace, name), timeout=duration + 5, interval=0.02)
    assert time.monotonic() - revoked_at >= duration - 0.1
    assert (moved.holder in names[:3], moved.epoch) == (True, 2)
    assert held(api_client, namespace, "steady") == steady, "Continue keeps its owner through a split"

    sim.partition([names[:2], names[2:4], names[4:]])  # nobody holds a majority
    fenced = eventually(
        lambda: (s := status_of(api_client, namespace, name)).get("phase") == "Fenced" and s,
        timeout=STABLE_AFTER + 5,
    )
    assert "owner" not in fenced
    assert held(api_client, namespace, name) is None
    assert eventually(lambda: "SingletonFenced" in reasons(api_client, namespace, name))


def test_an_operator_killed_mid_move_resumes_from_the_lease_and_waits_afresh(
    api_client: client.ApiClient,
    namespace: str,
    cluster_of: Callable[..., Any],
    kubelet: FakeKubelet,
    start_operator: Operators,
) -> None:
    cluster_of(3)
    duration = 4.0
    singleton(api_client, namespace, "jobs", leaseDuration=f"{duration:.0f}s")
    first = eventually(lambda: held(api_client, namespace, "jobs"))
    assert first.pod is not None
    kubelet.set_ready(namespace, first.pod, False)
    eventually(lambda: revoked(api_client, namespace, "jobs"), interval=0.01)
    revoked_at = time.monotonic()
    for running in start_operator.started:
        running.process.send_signal(signal.SIGKILL)  # no chance to finish anything
        running.process.wait()
    restarted_at = time.monotonic()
    start_operator("operator-1")
    second = eventually(lambda: held(api_client, namespace, "jobs"), timeout=30, interval=0.02)
    assert time.monotonic() - restarted_at >= duration - 0.1, "the wait starts afresh after a restart"
    assert time.monotonic() - revoked_at >= duration
    assert second.epoch == 2
    assert eventually(lambda: status_of(api_client, namespace, "jobs").get("epoch") == 2)


@dataclasses.dataclass(frozen=True)
class Seen:
    """One watch event, by the watcher's clock and etcd's revision (resourceVersion)."""

    at: float
    revision: int
    kind: str
    type: str
    name: str
    uid: str
    holder: str | None = None
    epoch: int = 0
    owner_pod_uid: str | None = None
    phase: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()


class Watcher:
    """An independent observer of the Leases and pods, on watches of its own: it knows
    nothing of the operator and checks ownership only from what the API published."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.watches: list[watch.Watch] = []
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> Watcher:
        """List both kinds first (so nothing that happens next is missed), then watch on."""
        for kind in ("Lease", "Pod"):
            lister, extra = self._lister(kind)
            listed = lister(self.namespace, **extra)
            for item in listed.items:
                self._record(kind, "ADDED", item)
            thread = threading.Thread(
                target=self._follow, args=(kind, listed.metadata.resource_version), daemon=True
            )
            thread.start()
            self.threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for stream in self.watches:
            stream.stop()
        for thread in self.threads:
            thread.join(timeout=10)

    def _lister(self, kind: str) -> tuple[Any, dict[str, str]]:
        if kind == "Lease":
            lister = client.CoordinationV1Api(self.api_client).list_namespaced_lease
            return lister, {"label_selector": "conclave.dev/lease-of"}
        return client.CoreV1Api(self.api_client).list_namespaced_pod, {}

    def _follow(self, kind: str, resource_version: str) -> None:
        stream = watch.Watch()
        self.watches.append(stream)
        lister, extra = self._lister(kind)
        try:
            for event in stream.stream(
                lister, self.namespace, resource_version=resource_version, timeout_seconds=600, **extra
            ):
                self._record(kind, event["type"], event["object"])
        except Exception:
            if not self.stopping.is_set():
                raise  # a broken watch would hide events: fail loudly

    def _record(self, kind: str, type_: str, item: Any) -> None:
        metadata = item.metadata
        annotations = metadata.annotations or {}
        seen = Seen(
            at=time.monotonic(),
            revision=int(metadata.resource_version),  # etcd's revision: one order for both kinds
            kind=kind,
            type=type_,
            name=metadata.name,
            uid=metadata.uid,
            holder=item.spec.holder_identity if kind == "Lease" else None,
            epoch=(item.spec.lease_transitions or 0) if kind == "Lease" else 0,
            owner_pod_uid=annotations.get("conclave.dev/owner-pod-uid"),
            phase=item.status.phase if kind == "Pod" else None,
            annotations=tuple(sorted(annotations.items())),
        )
        with self.lock:
            self.seen.append(seen)

    def grants(self, duration: float, tolerance: float) -> Counter[str]:
        """Check every change of holder; return how each grant was justified."""
        with self.lock:
            seen = sorted(self.seen, key=lambda s: s.revision)
        pods = [s for s in seen if s.kind == "Pod"]
        justified: Counter[str] = Counter()
        last: dict[str, Seen] = {}  # per Lease: its last event with a holder
        revoked: dict[str, Seen] = {}  # per Lease: when its holder was first seen cleared
        for event in (s for s in seen if s.kind == "Lease" and s.type != "DELETED"):
            previous = last.get(event.name)
            if not event.holder:
                if previous is not None and event.name not in revoked:
                    revoked[event.name] = event
                continue
            assert event.owner_pod_uid or "conclave.dev/owner-pod" not in dict(event.annotations), (
                f"{event.name}: granted to {event.holder} without its pod's uid"
            )  # else that pod's appearance, or a predecessor's, would make it look gone
            if previous is not None and (previous.holder, previous.epoch) != (event.holder, event.epoch):
                assert event.epoch > previous.epoch, (
                    f"{event.name}: epoch went {previous.epoch} → {event.epoch}"
                )
                if (previous.holder, previous.owner_pod_uid) == (event.holder, event.owner_pod_uid):
                    justified["same member"] += 1
                else:
                    justified[
                        self._why(event, previous, revoked.get(event.name), pods, duration, tolerance)
                    ] += 1
            last[event.name] = event
            revoked.pop(event.name, None)
        return justified

    @staticmethod
    def _why(
        grant: Seen,
        previous: Seen,
        revocation: Seen | None,
        pods: list[Seen],
        duration: float,
        tolerance: float,
    ) -> str:
        before = [p for p in pods if p.uid == previous.owner_pod_uid and p.revision < grant.revision]
        if any(p.type == "DELETED" or p.phase in ("Succeeded", "Failed") for p in before):
            return "gone"
        key = released_annotation(grant.name)
        if any(dict(p.annotations).get(key) == str(previous.epoch) for p in before):
            return "released"
        assert revocation is not None, f"{grant.name}: {previous.holder} replaced without a revocation"
        waited = grant.at - revocation.at
        assert waited >= duration - tolerance, (
            f"{grant.name}: granted to {grant.holder} {waited:.2f}s after revoking {previous.holder}"
        )
        return "expired"


class App:
    """A member's app that keeps docs/singletons.md's rule for every singleton: it runs one
    only while a consistent read (a LIST without resourceVersion, like a GET) that started
    less than leaseDuration ago showed its node name and its pod's uid, and releases what
    it stops on revocation. It can be cut off from the API: then it stops when its last
    read grows too old. It records when it ran what, by the shared monotonic clock."""

    def __init__(
        self, api_client: client.ApiClient, namespace: str, pod: str, node: str, rng: random.Random
    ) -> None:
        self.api_client, self.namespace, self.pod, self.node = api_client, namespace, pod, node
        self.uid = client.CoreV1Api(api_client).read_namespaced_pod(pod, namespace).metadata.uid
        self.rng = random.Random(rng.random())
        self.lock = threading.Lock()
        self.running: dict[str, tuple[float, int]] = {}  # singleton → (since, epoch)
        self.valid_until: dict[str, float] = {}
        self.ran: list[tuple[str, str, float, float]] = []  # (singleton, pod uid, start, end)
        self.cut_off_until = 0.0
        self.alive = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        leases = client.CoordinationV1Api(self.api_client)
        while self.alive:
            time.sleep(self.rng.uniform(0.1, 0.4))
            self._expire()
            if time.monotonic() < self.cut_off_until:
                continue
            started = time.monotonic()
            try:
                found = leases.list_namespaced_lease(
                    self.namespace, label_selector="conclave.dev/lease-of"
                ).items
            except (ApiException, OSError):
                continue  # a failed read proves nothing: keep running only until valid_until
            with self.lock:
                if self.alive:
                    self._follow(found, started)
            self._expire()

    def _follow(self, found: list[Any], started: float) -> None:
        seen = time.monotonic()
        for item in found:
            name, annotations = item.metadata.name, item.metadata.annotations or {}
            mine = item.spec.holder_identity == self.node and annotations.get(
                "conclave.dev/owner-pod-uid"
            ) in (None, self.uid)
            until = started + (item.spec.lease_duration_seconds or 0)
            if mine and seen < until:
                self.valid_until[name] = until
                self.running.setdefault(name, (seen, item.spec.lease_transitions or 0))
            elif not mine and name in self.running:
                epoch = self.running[name][1]
                self._stop(name, seen)
                with contextlib.suppress(ApiException):  # its pod may be gone meanwhile
                    annotate(
                        self.api_client, self.namespace, self.pod, {released_annotation(name): str(epoch)}
                    )

    def _expire(self) -> None:
        """A timer would stop it exactly at valid_until; the record says so."""
        with self.lock:
            for name in list(self.running):
                if time.monotonic() >= self.valid_until[name]:
                    self._stop(name, self.valid_until[name])

    def _stop(self, name: str, at: float) -> None:
        since, _ = self.running.pop(name)
        self.ran.append((name, self.uid, since, min(at, self.valid_until[name])))

    def cut_off(self, seconds: float) -> None:
        self.cut_off_until = time.monotonic() + seconds

    def kill(self) -> None:
        """The container stops: whatever it ran ends now (the kubelet removes a pod only after)."""
        with self.lock:
            self.alive = False
            for name in list(self.running):
                self._stop(name, time.monotonic())
        self.thread.join(timeout=5)


def overlaps(ran: list[tuple[str, str, float, float]], tolerance: float) -> list[str]:
    """Every moment two pods ran the same singleton at once."""
    found = []
    by_singleton: dict[str, list[tuple[float, float, str]]] = {}
    for name, uid, start, end in ran:
        by_singleton.setdefault(name, []).append((start, end, uid))
    for name, intervals in by_singleton.items():
        latest: tuple[float, float, str] | None = None  # the interval that ends last so far
        for start, end, uid in sorted(intervals):
            if latest is not None and uid != latest[2] and start < latest[1] - tolerance:
                found.append(f"{name}: {uid} from {start:.3f} while {latest[2]} ran until {latest[1]:.3f}")
            if latest is None or end > latest[1]:
                latest = (start, end, uid)
    return found


@dataclasses.dataclass
class Churn:
    """Random trouble for the members: pods gone or terminating (each replaced by a new
    pod), readiness flips, splits and heals, and apps releasing what they own."""

    api_client: client.ApiClient
    namespace: str
    sim: SimulatedMembers
    kubelet: FakeKubelet
    singletons: list[str]
    members: dict[str, str]
    """pod → node name"""
    rng: random.Random
    created: int = 0
    apps: dict[str, App] = dataclasses.field(default_factory=dict)
    """Each member pod's app, which releases what it stops running on its own."""
    stopped: list[App] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        for pod, node in self.members.items():
            self.apps[pod] = App(self.api_client, self.namespace, pod, node, self.rng)

    def step(self) -> None:
        action = self.rng.choice(["gone", "terminating", "ready", "ready", "split", "heal", "cut-off"])
        pod = self.rng.choice(sorted(self.members))
        if action in ("gone", "terminating"):
            self.replace(pod, 0 if action == "gone" else None)
        elif action == "ready":
            self.kubelet.set_ready(self.namespace, pod, self.rng.random() < 0.5)
        elif action == "split":
            nodes = sorted(self.members.values())
            self.rng.shuffle(nodes)
            self.sim.partition([nodes[:3], nodes[3:]])
        elif action == "heal":
            self.sim.connect_all()
        else:  # the app can read nothing for a while: it sees no revocation, nor releases
            self.apps[pod].cut_off(self.rng.uniform(0.5, 4.0))

    def replace(self, pod: str, grace: int | None) -> None:
        core = client.CoreV1Api(self.api_client)
        if grace is None:
            annotate(self.api_client, self.namespace, pod, {TERMINATION_DELAY_ANNOTATION: "0.5"})
        # a pod is removed only once its containers stopped; a terminating one's app is told
        # to stop at once, but releases nothing: it may be cut off
        self.stopped.append(self.apps.pop(pod))
        self.stopped[-1].kill()
        core.delete_namespaced_pod(pod, self.namespace, grace_period_seconds=grace)
        self.sim.remove(self.members.pop(pod))
        self.created += 1
        fresh = f"chat-new-{self.created}"
        core.create_namespaced_pod(self.namespace, member_pod(fresh))
        ip = self.kubelet.wait_running(self.namespace, fresh).status.pod_ip
        self.members[fresh] = f"chat@{ip}"
        self.sim.add(self.members[fresh], ip)
        self.sim.connect_all()
        self.apps[fresh] = App(self.api_client, self.namespace, fresh, self.members[fresh], self.rng)

    def settle(self) -> None:
        self.sim.connect_all()
        for pod in self.members:
            self.kubelet.set_ready(self.namespace, pod, True)
            self.apps[pod].cut_off(0)

    def ran(self) -> list[tuple[str, str, float, float]]:
        """Stop every app; what each ran, and when."""
        for app in self.apps.values():
            app.kill()
        return [record for app in [*self.stopped, *self.apps.values()] for record in app.ran]


def test_churn_never_grants_while_the_previous_owner_may_still_run(
    api_client: client.ApiClient,
    namespace: str,
    cluster_of: Callable[..., Any],
    kubelet: FakeKubelet,
) -> None:
    sim, names = cluster_of(5)
    duration = 2.0
    singletons = [f"s-{i}" for i in range(20)]
    for i, name in enumerate(singletons):
        singleton(
            api_client, namespace, name,
            leaseDuration=f"{duration:.0f}s",
            distribution="UniformQuorum" if i % 4 == 0 else "Uniform",
            partitionPolicy="Continue" if i % 3 == 0 else "Fence",
            rebalance="Active" if i % 5 == 0 else "Passive",
        )  # fmt: skip
    eventually(lambda: all(held(api_client, namespace, name) for name in singletons), timeout=30)
    core = client.CoreV1Api(api_client)
    pods = [f"chat-{i}" for i in range(len(names))]
    members = {pod: f"chat@{core.read_namespaced_pod(pod, namespace).status.pod_ip}" for pod in pods}
    churn = Churn(api_client, namespace, sim, kubelet, singletons, members, random.Random(CHURN_SEED))
    with Watcher(api_client, namespace) as watcher:
        for _ in range(200):
            churn.step()
            time.sleep(churn.rng.uniform(0.0, 0.3))
        churn.settle()
        eventually(lambda: all(held(api_client, namespace, name) for name in singletons), timeout=30)
    ran = churn.ran()
    justified = watcher.grants(duration, tolerance=0.25)
    print(f"grants to a new member, by why they were safe: {dict(justified)}; {len(ran)} runs by the apps")
    assert {"gone", "released", "expired"} <= set(justified), "the churn must exercise every rule"
    assert overlaps(ran, tolerance=0.05) == [], "by the app's rule, two pods ran a singleton at once"
    assert len({uid for _, uid, _, _ in ran}) > len(names), "successor pods ran singletons too"

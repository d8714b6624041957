"""Members' apps that keep docs/singletons.md's rule, for the soak benchmark: each runs a
singleton only while a consistent read that began less than leaseDuration ago named its
node and its pod, and releases what it stops. ``overlaps`` finds two pods that ran one
singleton at once: by the documented rule, that must never happen."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import random
import threading
import time
from typing import Any

from kubernetes import client
from ownership import FAILURES, LEASE_LABEL, OWNER_POD_UID, released_key


@dataclasses.dataclass
class Run:
    """One stretch of time an app ran a singleton, by the shared monotonic clock."""

    singleton: str
    pod_uid: str
    epoch: int
    start: float
    valid_until: float
    """Its latest consistent read that showed it the owner, plus leaseDuration."""
    end: float | None = None


class App:
    """A member's app keeping docs/singletons.md's rule for every singleton: it runs one only
    while a consistent read that started less than leaseDuration ago showed its node name
    and its pod's uid; it releases what it stops on revocation. A read that fails proves
    nothing: it runs on only until its last good read is too old."""

    def __init__(
        self, api_client: client.ApiClient, namespace: str, pod: str, node: str, uid: str, seed: float
    ) -> None:
        self.api_client, self.namespace, self.pod, self.node, self.uid = api_client, namespace, pod, node, uid
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.current: dict[str, Run] = {}
        self.finished: list[Run] = []
        self.deaf_until = 0.0
        self.alive = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while self.alive:
            time.sleep(self.rng.uniform(0.1, 0.4))
            reading = self._read() if time.monotonic() >= self.deaf_until else None
            with self.lock:
                if self.alive:
                    self._end_expired(time.monotonic())
                    if reading is not None:
                        self._apply(*reading)

    def _read(self) -> tuple[float, list[Any]] | None:
        """(when the read began, the Leases), or None when the API did not answer."""
        began = time.monotonic()
        try:
            leases = client.CoordinationV1Api(self.api_client).list_namespaced_lease(
                self.namespace, label_selector=LEASE_LABEL, _request_timeout=2
            )
        except FAILURES:
            return None
        return began, leases.items

    def _apply(self, began: float, leases: list[Any]) -> None:
        now = time.monotonic()
        for lease in leases:
            name = lease.metadata.name
            owner_uid = (lease.metadata.annotations or {}).get(OWNER_POD_UID)
            valid_until = began + (lease.spec.lease_duration_seconds or 0)
            if (
                lease.spec.holder_identity == self.node
                and owner_uid in (None, self.uid)
                and now < valid_until
            ):
                run = self.current.get(name)
                if run is None:
                    self.current[name] = Run(
                        name, self.uid, lease.spec.lease_transitions or 0, now, valid_until
                    )
                else:
                    run.valid_until = valid_until
            elif name in self.current:
                self._release(self._end(name, now))

    def _release(self, run: Run) -> None:
        """Say so on its own pod, as the docs ask (unless the pod is gone meanwhile)."""
        patch = {"metadata": {"annotations": {released_key(run.singleton): str(run.epoch)}}}
        with contextlib.suppress(*FAILURES):
            client.CoreV1Api(self.api_client).patch_namespaced_pod(
                self.pod, self.namespace, patch, _request_timeout=2
            )

    def _end(self, name: str, at: float) -> Run:
        run = self.current.pop(name)
        run.end = min(at, run.valid_until)  # a timer would have stopped it at valid_until
        self.finished.append(run)
        return run

    def _end_expired(self, now: float) -> None:
        for name in [n for n, run in self.current.items() if now >= run.valid_until]:
            self._end(name, now)

    def cut_off(self, seconds: float) -> None:
        """The app can read nothing for a while: it sees no revocation, nor releases."""
        self.deaf_until = time.monotonic() + seconds

    def kill(self) -> list[Run]:
        """The container stops: whatever it ran ends now. Returns every run it made."""
        with self.lock:
            self.alive = False
            for name in list(self.current):
                self._end(name, time.monotonic())
        self.thread.join(timeout=5)
        return self.finished


def overlaps(runs: list[Run], tolerance: float) -> list[str]:
    """Every pair of runs of one singleton, by two pods, that overlapped by more than
    ``tolerance`` seconds."""
    found = []
    by_singleton: dict[str, list[Run]] = {}
    for run in runs:
        by_singleton.setdefault(run.singleton, []).append(run)
    for name, each in sorted(by_singleton.items()):
        for a, b in itertools.combinations(each, 2):
            shared = min(a.end or a.valid_until, b.end or b.valid_until) - max(a.start, b.start)
            if a.pod_uid != b.pod_uid and shared > tolerance:
                found.append(f"{name}: pods {a.pod_uid} and {b.pod_uid} both ran it for {shared:.3f}s")
    return found

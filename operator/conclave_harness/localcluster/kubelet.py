"""A fake kubelet and scheduler for the local cluster, enough to drive the real
EndpointSlice controller.

It creates Node objects, binds pending pods to them, and plays each pod's kubelet by
patching its status: phase Running, a pod IP from the pod network (added inside the
network namespace, so the IP really answers), and the Ready condition. Tests flip
readiness with ``set_ready``. A deleted pod lingers with its deletionTimestamp until the
kubelet confirms, as a real one does after the grace period: after the delay in the pod's
annotation ``fake-kubelet.conclave.dev/termination-delay`` (seconds, or ``never`` to wait
for ``confirm_termination``), else after the kubelet's default delay.

It writes only pod status, bindings, Nodes and the final confirming delete; it never
decides anything for conclave.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from conclave_harness.localcluster.podnetwork import PodNetwork

TERMINATION_DELAY_ANNOTATION = "fake-kubelet.conclave.dev/termination-delay"
NEVER = "never"
WATCH_TIMEOUT = 5

logger = logging.getLogger(__name__)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(ready: bool) -> list[dict[str, Any]]:
    now = _now()
    readiness = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": readiness, "lastTransitionTime": now},
        {"type": "Ready", "status": readiness, "lastTransitionTime": now},
    ]


def _container_statuses(pod: Any, ready: bool, started_at: str) -> list[dict[str, Any]]:
    return [
        {
            "name": container.name,
            "image": container.image or "fake",
            "imageID": "",
            "ready": ready,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": started_at}},
        }
        for container in pod.spec.containers
    ]


class FakeKubelet:
    """Plays kubelet and scheduler for every pod of the cluster (or of some namespaces)."""

    def __init__(
        self,
        api: client.ApiClient,
        network: PodNetwork,
        nodes: Iterable[str] = ("worker-a", "worker-b", "worker-c"),
        namespaces: Iterable[str] | None = None,
        termination_delay: float = 0.0,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.network = network
        self.nodes = list(nodes)
        self.namespaces = set(namespaces) if namespaces is not None else None
        self.termination_delay = termination_delay
        self._next_node = itertools.cycle(self.nodes)
        self._timers: dict[str, threading.Timer] = {}
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-kubelet", daemon=True)
        self._addresses: dict[str, str] = {}  # pod uid -> IP this kubelet added

    def start(self) -> FakeKubelet:
        for name in self.nodes:
            self._ensure_node(name)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
        self._thread.join(timeout=WATCH_TIMEOUT + 5)

    def __enter__(self) -> FakeKubelet:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # What tests call.

    def set_ready(self, namespace: str, name: str, ready: bool) -> None:
        """Flip the pod's Ready condition, as a readiness probe would."""
        pod = self.core.read_namespaced_pod(name, namespace)
        started = pod.status.start_time.strftime("%Y-%m-%dT%H:%M:%SZ") if pod.status.start_time else _now()
        self._patch_status(
            pod,
            {
                "conditions": _conditions(ready),
                "containerStatuses": _container_statuses(pod, ready, started),
            },
        )

    def confirm_termination(self, namespace: str, name: str) -> None:
        """Confirm that a terminating pod's containers stopped: the pod object goes away."""
        with contextlib.suppress(ApiException):
            pod = self.core.read_namespaced_pod(name, namespace)
            self._confirm(pod.metadata.namespace, pod.metadata.name, pod.metadata.uid)

    def wait_running(self, namespace: str, name: str, timeout: float = 10.0) -> Any:
        """Wait until the pod runs with an IP; return it. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pod = self.core.read_namespaced_pod(name, namespace)
            if pod.status.phase == "Running" and pod.status.pod_ip:
                return pod
            time.sleep(0.05)
        raise TimeoutError(f"Pod {namespace}/{name} did not run within {timeout}s")

    # The loop.

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._sync_all()
            except Exception:  # the kubelet must outlive any single API hiccup
                logger.exception("Fake kubelet's watch failed; relisting")
                self._stopped.wait(0.5)

    def _sync_all(self) -> None:
        listing = self.core.list_pod_for_all_namespaces()
        present = {pod.metadata.uid for pod in listing.items}
        with self._lock:
            vanished = [uid for uid in self._addresses if uid not in present]
        for uid in vanished:  # deleted while the watch was down
            self._forget(uid)
        for pod in listing.items:
            self._sync(pod)
        stream = watch.Watch().stream(
            self.core.list_pod_for_all_namespaces,
            resource_version=listing.metadata.resource_version,
            timeout_seconds=WATCH_TIMEOUT,
            _request_timeout=WATCH_TIMEOUT + 5,
            allow_watch_bookmarks=True,
        )
        for event in stream:
            if self._stopped.is_set():
                return
            if event["type"] == "DELETED":
                self._forget(event["object"].metadata.uid)
            elif event["type"] in ("ADDED", "MODIFIED"):
                self._sync(event["object"])

    def _sync(self, pod: Any) -> None:
        """Drive one pod one step towards what a kubelet would make of it."""
        if self.namespaces is not None and pod.metadata.namespace not in self.namespaces:
            return
        if pod.metadata.deletion_timestamp is not None:
            self._schedule_confirmation(pod)
        elif not pod.spec.node_name:
            self._bind(pod)
        elif pod.spec.node_name in self.nodes and not pod.status.pod_ip and pod.status.phase == "Pending":
            self._start_pod(pod)

    def _bind(self, pod: Any) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod.metadata.name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": next(self._next_node)},
        }
        with contextlib.suppress(ApiException):  # already bound or gone: the next event says
            self.core.create_namespaced_binding(pod.metadata.namespace, body, _preload_content=False)

    def _start_pod(self, pod: Any) -> None:
        with self._lock:
            address = self._addresses.get(pod.metadata.uid)
            if address is None:
                address = self.network.allocate()
                self._addresses[pod.metadata.uid] = address
        now = _now()
        status = {
            "phase": "Running",
            "hostIP": self.network.host_address,
            "podIP": address,
            "podIPs": [{"ip": address}],
            "startTime": now,
            "conditions": _conditions(True),
            "containerStatuses": _container_statuses(pod, True, now),
        }
        self._patch_status(pod, status)

    def _patch_status(self, pod: Any, status: dict[str, Any]) -> None:
        body = {"metadata": {"uid": pod.metadata.uid}, "status": status}
        with contextlib.suppress(ApiException):  # a pod deleted meanwhile needs no status
            self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)

    def _schedule_confirmation(self, pod: Any) -> None:
        annotations = pod.metadata.annotations or {}
        delay_text = annotations.get(TERMINATION_DELAY_ANNOTATION)
        if delay_text == NEVER:
            return
        delay = float(delay_text) if delay_text else self.termination_delay
        with self._lock:
            if pod.metadata.uid in self._timers:
                return
            timer = threading.Timer(
                delay, self._confirm, (pod.metadata.namespace, pod.metadata.name, pod.metadata.uid)
            )
            timer.daemon = True
            self._timers[pod.metadata.uid] = timer
            timer.start()

    def _confirm(self, namespace: str, name: str, uid: str) -> None:
        body = client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid))
        with contextlib.suppress(ApiException):  # already gone
            self.core.delete_namespaced_pod(name, namespace, body=body)

    def _forget(self, uid: str) -> None:
        """The pod object is gone: its IP stops answering, its timer is moot."""
        with self._lock:
            timer = self._timers.pop(uid, None)
            address = self._addresses.pop(uid, None)
        if timer is not None:
            timer.cancel()
        if address is not None:
            self.network.release(address)

    def _ensure_node(self, name: str) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        }
        with contextlib.suppress(ApiException):  # it exists already
            self.core.create_node(node)
        status = {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "fake kubelet is posting ready status",
                        "lastHeartbeatTime": _now(),
                        "lastTransitionTime": _now(),
                    }
                ],
                "addresses": [{"type": "Hostname", "address": name}],
            }
        }
        self.core.patch_node_status(name, status)

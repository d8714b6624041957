"""What the parts of bench/scale.py share: the operator as its own process (CPU, RSS and
writes), raw JSON watches, a first-seen clock and its latencies, a topology over a
Deployment of fake-kubelet pods, the tables, and the benchmark's own local control plane.
It measures and sets up; it never judges a result.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from discovery import percentiles
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

from conclave.api import crdgen
from conclave_harness.localcluster import LocalCluster
from conclave_harness.localcluster.clusters import free_port

GROUP, VERSION = "conclave.dev", "v1alpha1"
TICK = os.sysconf("SC_CLK_TCK")


class Operator:
    """`conclave run` as its own process, with its health port (metrics) and /proc."""

    def __init__(self, kubeconfig: Path, namespaces: list[str], log: Path) -> None:
        self.port = free_port()
        self.command = [
            sys.executable, "-m", "conclave", "run", "--kubeconfig", str(kubeconfig),
            *[flag for namespace in namespaces for flag in ("--namespace", namespace)],
            "--leader-election-namespace", namespaces[0], "--health-port", str(self.port),
            "--identity", "bench",
        ]  # fmt: skip
        self.log = log
        log.write_bytes(b"")
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as sink:
            return subprocess.Popen(self.command, stdout=sink, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)

    def restart(self) -> None:
        """Stop, then start again: a new process that lists everything afresh."""
        self.stop()
        self.process = self._start()

    def usage(self) -> tuple[float, float]:
        """(CPU seconds so far, RSS in MiB)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return cpu, rss / 1024

    def writes(self) -> float:
        """conclave_api_writes_total over every kind of write."""
        return self.metric("conclave_api_writes_total")

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples that carry ``labels``; NaN while nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as page:
                text = page.read().decode()
        except OSError:
            return float("nan")
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
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

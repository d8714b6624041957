"""`conclave demo` itself: a fresh local cluster, the processes behind the scenario (the
fake kubelet, the operator, one real Erlang node per pod), the scenario, and the cleanup
that leaves nothing behind (or, with --keep, everything running).

Every process it starts is recorded in the cluster's state (``LocalCluster.adopt``), so
`conclave local-cluster down` stops it by PID, as it stops the control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any

from kubernetes import config

from conclave.adapters.apiclient import ApiClient, load_configuration
from conclave.api import crdgen
from conclave.errors import ConflictError, NotFoundError
from conclave_harness.demo import nodes, splitting
from conclave_harness.demo.manifests import NAMESPACE
from conclave_harness.demo.narrating import Measurement, Narration
from conclave_harness.demo.nodes import ErlangNodes
from conclave_harness.demo.scenario import Scenario
from conclave_harness.demo.watching import POD_TIMEOUT, POLL_INTERVAL
from conclave_harness.errors import StartupError
from conclave_harness.localcluster import LocalCluster
from conclave_harness.localcluster.clusters import free_port
from conclave_harness.localcluster.kubelet import FakeKubelet


def _established(definition: Mapping[str, Any]) -> bool:
    conditions = (definition.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


async def install_crds(api: ApiClient) -> None:
    """Create or replace conclave's CRDs from the models; return once the API serves them."""
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for definition in crdgen.all_crds():
        name = definition["metadata"]["name"]
        try:
            await api.create(path, definition)
        except ConflictError:
            current = await api.get(f"{path}/{name}")
            definition["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await api.replace(f"{path}/{name}", definition)
        while not _established(await api.get(f"{path}/{name}")):
            await asyncio.sleep(POLL_INTERVAL)


async def create_namespace(api: ApiClient, name: str) -> None:
    """Create the namespace; return once its default ServiceAccount exists (pods need it)."""
    await api.create("/api/v1/namespaces", {"metadata": {"name": name}})
    deadline = time.monotonic() + POD_TIMEOUT
    while True:
        try:
            await api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default")
            return
        except NotFoundError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(POLL_INTERVAL)


def serve_kubelet(cluster: LocalCluster) -> None:
    """Play kubelet for the local cluster's pods until SIGTERM or SIGINT (`conclave
    local-cluster kubelet`, which the demo runs as a process so that it outlives --keep)."""
    stopped = threading.Event()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    with FakeKubelet(api, cluster.network):
        stopped.wait()
    api.close()


class Processes:
    """The demo's processes besides the control plane, each recorded in the cluster's state
    (``LocalCluster.adopt``), so that `conclave local-cluster down` stops them by PID too."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, argv: Sequence[str]) -> None:
        """Start ``argv`` in its own session (a Ctrl-C meant for the demo does not reach it:
        the demo stops it in order), logging to the cluster's logs directory."""
        logs = self.cluster.state_dir / "logs"
        with (logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append(process)
        self.cluster.adopt(name, process.pid)

    def stop(self) -> None:
        """TERM them all at once (each may take seconds to finish its watches), then reap."""
        for process in self.started:
            process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _conclave(*args: str) -> list[str]:
    return [sys.executable, "-m", "conclave", *args]


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Cleanup that a second Ctrl-C cannot cut short (it would leave processes behind)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _terminate_as_interrupt(_signal: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def require_tools() -> None:
    """Raise StartupError naming every tool the demo needs that this machine lacks."""
    missing = [tool for tool in (*nodes.TOOLS, *splitting.TOOLS) if shutil.which(tool) is None]
    if missing:
        raise StartupError(
            f"The demo needs {', '.join(missing)}: real Erlang nodes (Debian's erlang-base) and a "
            "network cut (Debian's iptables); `make demo` installs them"
        )


def run(
    cluster: LocalCluster, narration: Narration, report: Callable[[str], None], keep: bool
) -> Mapping[str, str] | None:
    """The whole demo on a fresh local cluster. Returns the cluster's shell exports when
    ``keep`` (cluster, kubelet, Erlang nodes and operator left running), else None after
    stopping everything it started. Raises ScenarioFailed and LocalClusterError subclasses."""
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # a TERM cleans up like a Ctrl-C
    require_tools()
    report(f"Starting a fresh local cluster {cluster.name!r} (a previous one of that name is stopped)")
    cluster.down()
    members = ErlangNodes(cluster.network, cluster.state_dir / "erlang", adopt=cluster.adopt)
    processes = Processes(cluster)
    kept = False
    try:
        cluster.up(report)
        processes.spawn(
            "fake-kubelet",
            _conclave("local-cluster", "kubelet", "--name", cluster.name, "--pod-cidr", cluster.pod_cidr),
        )
        members.prepare()
        configuration = load_configuration(str(cluster.kubeconfig))

        def start_operator() -> None:
            port = str(free_port())
            processes.spawn(
                "operator",
                _conclave(
                    "run", "--kubeconfig", str(cluster.kubeconfig), "--all-namespaces", "--identity", "demo",
                    "--leader-election-namespace", NAMESPACE, "--health-port", port,
                ),
            )  # fmt: skip

        async def play() -> list[Measurement]:
            async with ApiClient(configuration, identity="conclave-demo") as api:
                await install_crds(api)
                await create_namespace(api, NAMESPACE)
                return await Scenario(api, NAMESPACE, members, start_operator, narration).run()

        narration.table(asyncio.run(play()))
        kept = keep
        return cluster.env() if keep else None
    finally:
        if not kept:
            with _uninterrupted():
                report("Stopping everything the demo started")
                members.stop()
                processes.stop()
                cluster.down()

"""A real Kubernetes control plane on this machine: etcd, kube-apiserver and
kube-controller-manager on loopback, plus a pod network the tests and the operator reach.

Owns the processes it starts (recorded by PID and arguments in a state file, so `down`
and the next `up` after a crash can stop exactly those, and a test can kill, freeze or
restart one in place), its certificates, data and kubeconfig under one state directory.
There is no kubelet and no scheduler: ``kubelet.FakeKubelet`` plays both. It never talks
to any cluster but its own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from conclave_harness.errors import LocalClusterError, StartupError
from conclave_harness.localcluster import building, etcd, pki, processes
from conclave_harness.localcluster.podnetwork import DEFAULT_POD_CIDR, PodNetwork

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
CONTROLLERS = (
    "endpointslice-controller",
    "endpoints-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
)
"""Deliberately no node-lifecycle-controller: with no kubelet heartbeats it would mark every
node NotReady and evict every pod."""

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager")

STARTUP_TIMEOUT = 60.0

Progress = Callable[[str], None]


def state_root() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "conclave" / "clusters"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclasses.dataclass(frozen=True)
class Component:
    name: str
    binary: str
    pid: int
    args: tuple[str, ...] = ()
    """The arguments it was started with (empty for adopted processes, which cannot restart)."""


@dataclasses.dataclass(frozen=True)
class LocalCluster:
    """One named local cluster; constructing it starts nothing."""

    name: str = "conclave"
    pod_cidr: str = DEFAULT_POD_CIDR
    root: Path = dataclasses.field(default_factory=state_root)
    die_with_caller: bool = False
    """Stop the components when the process that started them dies (used by the tests)."""
    audit_policy: Path | None = None
    """An audit policy file; when given, the API server writes ``audit.log`` in the state dir."""

    @property
    def state_dir(self) -> Path:
        return self.root / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.log"

    @property
    def network(self) -> PodNetwork:
        return PodNetwork(name=self.name, cidr=self.pod_cidr, state_dir=self.state_dir)

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    def components(self) -> list[Component]:
        if not self._state_file.exists():
            return []
        state = json.loads(self._state_file.read_text())
        return [
            Component(**{**entry, "args": tuple(entry.get("args", ()))})
            for entry in state.get("components", [])
        ]

    def running(self) -> bool:
        components = self.components()
        return bool(components) and all(processes.is_ours(c.pid, c.binary) for c in components)

    def env(self) -> dict[str, str]:
        """What a shell needs to use this cluster: its kubeconfig and its pod network."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "CONCLAVE_POD_NETNS": self.network.netns,
            "CONCLAVE_POD_CIDR": self.pod_cidr,
        }

    def up(self, progress: Progress | None = None) -> None:
        """Start the cluster and return once every component answers its own health check
        (etcd /health, the API server /readyz, the controller manager /healthz) and the
        controllers run.

        A cluster of the same name whose every component runs and answers is kept; anything
        less (a crashed run's leftovers, a component killed or frozen) is stopped and
        removed first. Raises LocalClusterError subclasses.
        """
        report = progress or (lambda message: None)
        if self._serving():
            report(f"Local cluster {self.name!r} is already up")
            return
        self.down()
        binaries = building.ensure_binaries(progress)
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(json.dumps({"components": []}))
        try:
            self._start(binaries, report)
        except BaseException:
            self.down()
            raise
        report(f"Local cluster {self.name!r} ready in {time.monotonic() - started:.1f}s")

    def _start(self, binaries: building.Binaries, report: Progress) -> None:
        certs = pki.create(self.state_dir / "pki", SERVICE_IP)
        self.network.create()
        etcd_port, etcd_peer_port = free_port(), free_port()
        apiserver_port, controller_manager_port = free_port(), free_port()
        self._spawn(
            "etcd",
            binaries.etcd,
            [
                "--name=conclave",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer_port}",
                f"--initial-cluster=conclave=http://127.0.0.1:{etcd_peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        apiserver_args = [
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={apiserver_port}",
            f"--tls-cert-file={certs.apiserver.cert}",
            f"--tls-private-key-file={certs.apiserver.key}",
            f"--client-ca-file={certs.ca.cert}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={certs.service_account_public}",
            f"--service-account-signing-key-file={certs.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
        ]
        if self.audit_policy is not None:
            apiserver_args += [
                f"--audit-policy-file={self.audit_policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
            ]
        self._spawn("kube-apiserver", binaries.kube_apiserver, apiserver_args)
        server = f"https://127.0.0.1:{apiserver_port}"
        self._write_kubeconfig(self.kubeconfig, server, certs.ca.cert, certs.admin, "admin")
        controller_kubeconfig = self.state_dir / "controller-manager.kubeconfig"
        self._write_kubeconfig(
            controller_kubeconfig,
            server,
            certs.ca.cert,
            certs.controller_manager,
            "controller-manager",
        )
        report("Waiting for kube-apiserver /readyz")
        self._wait(self._ready, "kube-apiserver to answer /readyz")
        self._spawn(
            "kube-controller-manager",
            binaries.kube_controller_manager,
            [
                f"--kubeconfig={controller_kubeconfig}",
                f"--authentication-kubeconfig={controller_kubeconfig}",
                f"--authorization-kubeconfig={controller_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={controller_manager_port}",
                f"--tls-cert-file={certs.controller_manager_serving.cert}",
                f"--tls-private-key-file={certs.controller_manager_serving.key}",
                f"--controllers={','.join(CONTROLLERS)}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={certs.service_account_key}",
                f"--root-ca-file={certs.ca.cert}",
                "--leader-elect=false",
            ],
        )
        report("Waiting for kube-controller-manager")
        self._wait(self._controllers_running, "kube-controller-manager's controllers")
        self._wait(self._serving, "every component to answer its health check")

    def down(self) -> None:
        """Stop every component this cluster started, by PID, and remove its state."""
        for component in reversed(self.components()):
            processes.stop(component.pid, component.binary)
        self.network.delete()
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)

    # Faults of the control plane itself, for tests: each acts on one component, in place.

    def restart(self, name: str) -> None:
        """Stop component ``name`` (TERM, then KILL) and start it again with the same
        arguments; return once every running component answers again (the API server
        /readyz). Raises LocalClusterError."""
        component = self._component(name)
        processes.stop(component.pid, component.binary)
        self._start_again(component)

    def kill(self, name: str) -> None:
        """SIGKILL component ``name``, as a crash would end it; ``start(name)`` brings it back."""
        component = self._component(name)
        processes.kill(component.pid, component.binary)

    def start(self, name: str) -> None:
        """Start a killed component again with the arguments it had, and return once every
        running component answers. Raises LocalClusterError."""
        component = self._component(name)
        if not processes.is_ours(component.pid, component.binary):
            self._start_again(component)

    def freeze(self, name: str) -> None:
        """SIGSTOP component ``name``: its connections stay open, and nothing answers on them."""
        component = self._component(name)
        processes.send(component.pid, component.binary, signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        """SIGCONT a frozen component, and return once every running component answers."""
        component = self._component(name)
        processes.send(component.pid, component.binary, signal.SIGCONT)
        self._wait(self._answering, f"{name} to answer after it was thawed")

    def heal(self) -> None:
        """Thaw every component, start again any that was killed, and return once all answer
        (the API server /readyz): what a test of faults leaves behind for the next one."""
        for component in self.components():
            if component.args:
                processes.send(component.pid, component.binary, signal.SIGCONT)
                if not processes.is_ours(component.pid, component.binary):
                    self._start_again(component)
        self._wait(self._answering, "every component to answer")

    def compact(self) -> int:
        """Compact etcd's history to its current revision and return that revision: from now
        on, any older resourceVersion is answered 410 Gone."""
        url = self.etcd_url
        to = etcd.revision(url)
        etcd.compact(url, to)
        return to

    def _component(self, name: str) -> Component:
        found = [c for c in self.components() if c.name == name]
        if not found:
            raise LocalClusterError(f"Local cluster {self.name!r} has no component {name!r}")
        return found[-1]

    def _start_again(self, component: Component) -> None:
        if not component.args:
            raise LocalClusterError(
                f"{component.name} was not started by the cluster: it cannot be restarted"
            )
        logs = self.state_dir / "logs"
        pid = processes.spawn(
            component.binary, component.args, logs / f"{component.name}.log", self.die_with_caller
        )
        self._record(dataclasses.replace(component, pid=pid), replacing=component)
        self._wait(self._answering, f"{component.name} to answer after its restart")

    def _argument(self, name: str, flag: str) -> str:
        prefix = f"--{flag}="
        return next(a.removeprefix(prefix) for a in self._component(name).args if a.startswith(prefix))

    @property
    def etcd_url(self) -> str:
        """etcd's loopback client URL (its JSON gateway: ``localcluster.etcd``)."""
        return self._argument("etcd", "listen-client-urls").split(",")[0]

    def _serving(self) -> bool:
        """Every component of the control plane is recorded, runs unfrozen and answers its
        own health check, and so does every other component recorded (``running``).

        Each process is asked itself: right after etcd is killed, the API server's /readyz
        still says ok for a while (its etcd check is a cached probe over a connection that
        has not noticed yet), and ``/proc/<pid>/exe`` still shows etcd's binary until the
        killed process has finished exiting; trusting those two kept a crashed cluster as
        "already up".
        """
        components = self.components()
        return (
            set(CONTROL_PLANE) <= {c.name for c in components}
            and self.kubeconfig.exists()
            and self.running()
            and not any(processes.is_frozen(c.pid) for c in components)
            and self._answer(set(CONTROL_PLANE))
        )

    def _answering(self) -> bool:
        """Every running, unfrozen component answers its health check."""
        running = {
            c.name
            for c in self.components()
            if processes.is_ours(c.pid, c.binary) and not processes.is_frozen(c.pid)
        }
        return self._answer(running)

    def _answer(self, running: set[str]) -> bool:
        """Each component of ``running`` answers its health check: etcd its /health, the API
        server its /readyz while etcd runs (it cannot be ready without it), else its /livez,
        the controller manager its /healthz (its own; it needs no API server to answer)."""
        if "etcd" in running and not etcd.healthy(self.etcd_url):
            return False
        health = "/readyz" if "etcd" in running else "/livez"
        if "kube-apiserver" in running and self._request(health) != "ok":
            return False
        return "kube-controller-manager" not in running or self._controller_manager_healthy()

    def _controller_manager_healthy(self) -> bool:
        """The controller manager answers ok on its /healthz, verified by the cluster's CA."""
        port = self._argument("kube-controller-manager", "secure-port")
        context = ssl.create_default_context(cafile=self._argument("kube-controller-manager", "root-ca-file"))
        return bool(_get(f"https://127.0.0.1:{port}/healthz", context) == "ok")

    def _spawn(self, name: str, binary: Path, args: Sequence[str]) -> None:
        logs = self.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        pid = processes.spawn(str(binary), args, logs / f"{name}.log", self.die_with_caller)
        self._record(Component(name, str(binary), pid, tuple(args)))

    def adopt(self, name: str, pid: int) -> None:
        """Record a running process started for this cluster (the demo's fake kubelet,
        operator and simulated members) so that `down` stops it too, before the control plane."""
        self._record(Component(name, os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)"), pid))

    def _record(self, component: Component, replacing: Component | None = None) -> None:
        """Add ``component`` to the state file, in place of ``replacing`` (a restart)."""
        state = json.loads(self._state_file.read_text())
        entry = dataclasses.asdict(component)
        if not entry["args"]:
            del entry["args"]
        entries = [Component(**{**e, "args": tuple(e.get("args", ()))}) for e in state["components"]]
        if replacing is not None and replacing in entries:
            state["components"][entries.index(replacing)] = entry
        else:
            state["components"].append(entry)
        self._state_file.write_text(json.dumps(state, indent=2))

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            dead = [c for c in self.components() if not processes.is_ours(c.pid, c.binary)]
            if dead:
                log = self.state_dir / "logs" / f"{dead[0].name}.log"
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                raise StartupError(f"{dead[0].name} exited while waiting for {what}; its log ends:\n{tail}")
            if condition():
                return
            time.sleep(0.1)
        raise StartupError(f"Timed out after {STARTUP_TIMEOUT:.0f}s waiting for {what}")

    def _request(self, path: str) -> Any:
        """GET a path of this cluster's API as admin; None when it does not answer 200."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        server = config["clusters"][0]["cluster"]["server"]
        user = config["users"][0]["user"]
        context = ssl.create_default_context(cafile=config["clusters"][0]["cluster"]["certificate-authority"])
        context.load_cert_chain(user["client-certificate"], user["client-key"])
        return _get(f"{server}{path}", context)

    def _ready(self) -> bool:
        return self.kubeconfig.exists() and self._request("/readyz") == "ok"

    def _controllers_running(self) -> bool:
        """The serviceaccount controller has made the default namespace's ServiceAccount."""
        return self._request("/api/v1/namespaces/default/serviceaccounts/default") is not None

    @staticmethod
    def _write_kubeconfig(path: Path, server: str, ca: Path, user: pki.KeyPair, name: str) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "conclave-local",
                    "cluster": {"server": server, "certificate-authority": str(ca)},
                }
            ],
            "users": [
                {
                    "name": name,
                    "user": {"client-certificate": str(user.cert), "client-key": str(user.key)},
                }
            ],
            "contexts": [{"name": "conclave-local", "context": {"cluster": "conclave-local", "user": name}}],
            "current-context": "conclave-local",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))


def _get(url: str, context: ssl.SSLContext) -> Any:
    """GET ``url``: its JSON, or its text; None when it does not answer 200."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:
            body = response.read()
            return json.loads(body) if body.startswith(b"{") else body.decode()
    except (urllib.error.URLError, OSError, ValueError):
        return None

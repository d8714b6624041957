"""A real Kubernetes control plane on this machine: etcd, kube-apiserver and
kube-controller-manager on loopback, plus a pod network the tests and the operator reach.

Owns the processes it starts (recorded by PID in a state file, so `down` and the next
`up` after a crash can stop exactly those), its certificates, data and kubeconfig under
one state directory. There is no kubelet and no scheduler: ``kubelet.FakeKubelet`` plays
both. It never talks to any cluster but its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import yaml

from conclave_harness.errors import StartupError
from conclave_harness.localcluster import building, pki
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

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

Progress = Callable[[str], None]

_children: dict[int, subprocess.Popen[bytes]] = {}
"""Components started by this process, kept so that stopping one also reaps it."""


def state_root() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "conclave" / "clusters"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _is_ours(pid: int, binary: str) -> bool:
    """True when ``pid`` is alive and runs ``binary`` (a recycled PID is not ours)."""
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)") == binary
    except OSError:
        return False


def _stop(pid: int, binary: str) -> None:
    """Stop a component by PID (TERM, then KILL) and reap it if this process started it."""
    child = _children.pop(pid, None)
    if _is_ours(pid, binary):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _is_ours(pid, binary) and time.monotonic() < deadline:
            time.sleep(0.05)
            if child is not None:
                child.poll()  # reap it, or it lingers as a zombie that still looks alive
        if _is_ours(pid, binary):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if child is not None:
        child.wait()  # a component that died on its own is reaped here too


@dataclasses.dataclass(frozen=True)
class Component:
    name: str
    binary: str
    pid: int


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
        return [Component(**entry) for entry in state.get("components", [])]

    def running(self) -> bool:
        components = self.components()
        return bool(components) and all(_is_ours(c.pid, c.binary) for c in components)

    def env(self) -> dict[str, str]:
        """What a shell needs to use this cluster: its kubeconfig and its pod network."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "CONCLAVE_POD_NETNS": self.network.netns,
            "CONCLAVE_POD_CIDR": self.pod_cidr,
        }

    def up(self, progress: Progress | None = None) -> None:
        """Start the cluster and return once the API answers /readyz and controllers run.

        A cluster of the same name that is already running and ready is kept; leftovers of
        a crashed run are stopped and removed first. Raises LocalClusterError subclasses.
        """
        report = progress or (lambda message: None)
        if self.running() and self._ready():
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
                f"--controllers={','.join(CONTROLLERS)}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={certs.service_account_key}",
                f"--root-ca-file={certs.ca.cert}",
                "--leader-elect=false",
            ],
        )
        report("Waiting for kube-controller-manager")
        self._wait(self._controllers_running, "kube-controller-manager's controllers")

    def down(self) -> None:
        """Stop every component this cluster started, by PID, and remove its state."""
        for component in reversed(self.components()):
            _stop(component.pid, component.binary)
        self.network.delete()
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)

    def _spawn(self, name: str, binary: Path, args: Sequence[str]) -> None:
        logs = self.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        log: IO[bytes]
        # setpriv (util-linux) arranges the death signal before exec, without preexec_fn,
        # which is unsafe in a process that runs threads.
        guard = ["setpriv", "--pdeathsig", "TERM", "--"] if self.die_with_caller else []
        with (logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [*guard, str(binary), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _children[process.pid] = process
        while guard and not _is_ours(process.pid, str(binary)) and process.poll() is None:
            time.sleep(0.005)  # setpriv has not exec'd the component yet
        self._record(name, str(binary), process.pid)

    def adopt(self, name: str, pid: int) -> None:
        """Record a running process started for this cluster (the demo's fake kubelet,
        operator and simulated members) so that `down` stops it too, before the control plane."""
        self._record(name, os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)"), pid)

    def _record(self, name: str, binary: str, pid: int) -> None:
        state = json.loads(self._state_file.read_text())
        state["components"].append({"name": name, "binary": binary, "pid": pid})
        self._state_file.write_text(json.dumps(state, indent=2))

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            dead = [c for c in self.components() if not _is_ours(c.pid, c.binary)]
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
        try:
            with urllib.request.urlopen(f"{server}{path}", context=context, timeout=2) as response:
                body = response.read()
                return json.loads(body) if body.startswith(b"{") else body.decode()
        except (urllib.error.URLError, OSError, ValueError):
            return None

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

"""Real BEAM nodes as a topology's members, for the test_beam_* tests (this module holds
only what they share; it has no tests of its own).

Each member is a pod the fake kubelet runs and a real node of Debian's OTP 25 (or Elixir)
named as conclave names it, ``chat@<pod ip>``, started inside the pod network on that IP.
One EPMD per network namespace would refuse a second ``chat@`` name (PITFALLS §6), so the
nodes run without EPMD, each listening on ``DIST_PORT`` at its own IP
(``-start_epmd false -erl_epmd_port 4370``), and the topologies say
``probe.distributionPort: 4370``; ``epmd_in_pod_network`` is for the single-node EPMD tests.

A test asks a node itself through the evaluator on its stdin (``Node.ask``, the one
test_erlang_client.py uses), never through conclave's client: what a node answers is the
truth the operator's status is held against.
"""

from __future__ import annotations

import base64
import contextlib
import queue
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from kubernetes import client
from test_erlang_client import ANSWER, ELIXIR_EVALUATOR, ERLANG_EVALUATOR, NO_EPMD_PORT

from conclave.adapters.erlang import terms
from conclave_harness.localcluster import PodNetwork
from conclave_harness.localcluster.kubelet import TERMINATION_DELAY_ANNOTATION, FakeKubelet
from support import create, eventually, member_pod, read

COOKIE = "conclave-beam-test"
SECRET, SECRET_KEY = "chat-cookie", "cookie"
DIST_PORT = 4370
EPMD_PORT = 4369
APP = "chat"

needs_erlang = pytest.mark.skipif(shutil.which("erl") is None, reason="needs Erlang (make test installs it)")

ISOLATED = ("-kernel", "dist_auto_connect", "never", "-kernel", "prevent_overlapping_partitions", "false")
"""Flags of nodes whose links only the test makes and cuts: no connection is set up behind
its back (dist_auto_connect never: not even by a message to a node), and a cut link stays
one cut link (global's prevent_overlapping_partitions, on by default since OTP 25, would
otherwise disconnect more nodes to keep partitions apart, differently from run to run)."""

_CLOSED = object()


class Node:
    """A running Erlang or Elixir node, asked through its own evaluator."""

    def __init__(self, name: str, ip: str, pod: str, process: subprocess.Popen[bytes], elixir: bool) -> None:
        self.name, self.ip, self.pod, self.process, self.elixir = name, ip, pod, process, elixir
        self.output: list[str] = []
        self._answers: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, name=f"beam {name}", daemon=True).start()

    def __repr__(self) -> str:
        return f"<Node {self.name}>"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace")
            if line.startswith(ANSWER):
                self._answers.put(terms.decode(bytes.fromhex(line[len(ANSWER) :].strip())))
            else:
                self.output.append(line)
        self._answers.put(_CLOSED)

    def answer(self, timeout: float = 30.0) -> Any:
        try:
            value = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"{self.name} gave no answer in {timeout}s:\n{''.join(self.output)}"
            ) from None
        if value is _CLOSED:
            raise AssertionError(f"{self.name} exited; its output:\n{''.join(self.output)}")
        failed = isinstance(value, tuple) and value and terms.atom_text(value[0]) == "evaluator_error"
        assert not failed, value
        return value

    def ask(self, expression: str, timeout: float = 30.0) -> Any:
        """The node's own answer to one expression (Erlang, ending with a dot; or Elixir)."""
        assert self.process.stdin is not None
        with self._lock:
            self.process.stdin.write(expression.encode() + b"\n")
            self.process.stdin.flush()
            return self.answer(timeout)

    def call(self, module: str, function: str, *atoms: str) -> Any:
        """``module:function(atoms...)`` on the node, in its own language."""
        if self.elixir:
            quoted = ", ".join(f':"{atom}"' for atom in atoms)
            return self.ask(f":{module}.{function}({quoted})")
        quoted = ", ".join(f"'{atom}'" for atom in atoms)
        return self.ask(f"{module}:{function}({quoted}).")

    def nodes(self, *kind: str) -> frozenset[str]:
        """``erlang:nodes()`` as the node itself answers (``nodes(hidden)`` with "hidden")."""
        return frozenset(terms.atom_text(node) or "?" for node in self.call("erlang", "nodes", *kind))

    def connect(self, *others: Node) -> None:
        for other in others:
            assert self.call("net_kernel", "connect_node", other.name) is True, (self, other)

    def disconnect(self, *others: Node) -> None:
        for other in others:
            self.call("erlang", "disconnect_node", other.name)

    def freeze(self) -> None:
        """SIGSTOP: its sockets still accept (the kernel's backlog) and nothing answers."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.thaw()
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def members_fixture(flags: Sequence[str] = ()) -> Any:
    """A test module's ``members`` fixture (``members = members_fixture()``): its nodes
    started with ``flags``, stopped at the end of each test."""

    @pytest.fixture
    def members(
        api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, pod_network: PodNetwork
    ) -> Iterator[Members]:
        made = Members(api_client, namespace, kubelet, pod_network, flags)
        yield made
        made.close()

    return members


def connect_all(nodes: Sequence[Node]) -> None:
    for index, node in enumerate(nodes):
        node.connect(*nodes[index + 1 :])


def views_are(nodes: Sequence[Node], components: Sequence[Sequence[Node]]) -> bool:
    """Whether each node's own nodes() is exactly the rest of its component."""
    return all(
        node.nodes() == {peer.name for peer in component} - {node.name}
        for component in components
        for node in component
        if node in nodes
    )


class Members:
    """A namespace's headless Service ``chat``, the cookie Secret, and member pods running
    real nodes; ``close`` stops the nodes (their pods go with the namespace)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        kubelet: FakeKubelet,
        pod_network: PodNetwork,
        flags: Sequence[str] = (),
    ) -> None:
        self.namespace, self.kubelet, self.pod_network = namespace, kubelet, pod_network
        self.core = client.CoreV1Api(api_client)
        self.flags = tuple(flags)
        self.nodes: list[Node] = []
        self.pods = 0
        self.core.create_namespaced_service(
            namespace, {"metadata": {"name": APP}, "spec": {"clusterIP": "None", "selector": {"app": APP}}}
        )
        self.secret(SECRET, COOKIE)

    def secret(self, name: str, cookie: str) -> None:
        data = {SECRET_KEY: base64.b64encode(cookie.encode()).decode()}
        self.core.create_namespaced_secret(self.namespace, {"metadata": {"name": name}, "data": data})

    def pod(self, annotations: Mapping[str, str] | None = None) -> tuple[str, str]:
        """A new member pod, running: (its name, its IP)."""
        name = f"{APP}-{self.pods}"
        self.pods += 1
        body = member_pod(name)
        body["metadata"]["annotations"] = dict(annotations or {})
        self.core.create_namespaced_pod(self.namespace, body)
        return name, self.kubelet.wait_running(self.namespace, name).status.pod_ip

    def add(
        self,
        count: int = 1,
        *,
        elixir: bool = False,
        flags: Sequence[str] = (),
        draining: float | None = None,
    ) -> list[Node]:
        """``count`` new pods, each with its node started; ``draining``: the seconds its pod
        takes to terminate once deleted (the fake kubelet's termination delay)."""
        annotations = {TERMINATION_DELAY_ANNOTATION: f"{draining:g}"} if draining is not None else {}
        return [self.start(*self.pod(annotations), elixir=elixir, flags=flags) for _ in range(count)]

    def start(
        self, pod: str, ip: str, *, elixir: bool = False, flags: Sequence[str] = (), epmd: bool = False
    ) -> Node:
        """Start ``chat@<ip>`` on the pod's IP, on DIST_PORT (with ``epmd``: registered
        with the pod network's EPMD instead); return once its distribution is up."""
        name = f"{APP}@{ip}"
        erl = ["-kernel", "inet_dist_use_interface", "{" + ip.replace(".", ",") + "}", "-start_epmd", "false"]
        erl += [] if epmd else ["-erl_epmd_port", str(DIST_PORT)]
        erl += [*self.flags, *flags]
        # Without EPMD, never register with one that another test left running.
        environment = [] if epmd else ["env", f"ERL_EPMD_PORT={NO_EPMD_PORT}"]
        if elixir:
            if shutil.which("elixir") is None:
                pytest.skip("needs Elixir (Debian's elixir; make test installs it)")
            argv = ["elixir", "--name", name, "--cookie", COOKIE, "--erl", " ".join(erl)]
            argv += ["-e", ELIXIR_EVALUATOR]
        else:
            argv = ["erl", "-noshell", "-name", name, "-setcookie", COOKIE, *erl, "-eval", ERLANG_EVALUATOR]
        process = subprocess.Popen(
            self.pod_network.command([*environment, *argv]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        node = Node(name, ip, pod, process, elixir)
        self.nodes.append(node)
        assert terms.atom_text(node.answer()) == name  # its distribution is up
        return node

    def close(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def epmd_in_pod_network(pod_network: PodNetwork) -> Iterator[None]:
    """An EPMD answering on every pod IP: one that runs already, or ours, stopped by PID."""
    if _answers(pod_network.namespace_address, EPMD_PORT):
        yield
        return
    process = subprocess.Popen(
        pod_network.command(["epmd"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        eventually(lambda: process.poll() is None and _answers(pod_network.namespace_address, EPMD_PORT), 10)
        yield
    finally:
        process.kill()
        process.wait()


def _answers(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((address, port)) == 0


def topology(
    api_client: client.ApiClient,
    namespace: str,
    name: str = APP,
    *,
    secret: str = SECRET,
    port: int | None = DIST_PORT,
    **spec: Any,
) -> None:
    """A ClusterTopology over the ``chat`` Service, probing over Erlang distribution."""
    probe = {"type": "erlang", "cookieSecretRef": {"name": secret, "key": SECRET_KEY}}
    probe |= {"distributionPort": port} if port else {}
    probe |= {"interval": "500ms", "timeout": "300ms"}
    body = {
        "strategy": "KubernetesAPI",
        "service": APP,
        "applicationName": APP,
        "probe": probe,
        "partition": {"stableAfter": "1s"},
        **spec,
    }
    create(
        api_client,
        namespace,
        "clustertopologies",
        {"kind": "ClusterTopology", "metadata": {"name": name}, "spec": body},
    )


def partition(api_client: client.ApiClient, namespace: str, name: str = APP) -> dict[str, Any]:
    found: dict[str, Any] = (
        read(api_client, namespace, "clustertopologies", name).get("status", {}).get("partition", {})
    )
    return found


def reasons(found: Mapping[str, Any]) -> dict[str, str | None]:
    """Each member's view: None when known, else why not."""
    return {view["member"]: None if view["known"] else view.get("reason") for view in found.get("views", [])}


def components_are(
    api_client: client.ApiClient, namespace: str, components: Sequence[Sequence[Node]], name: str = APP
) -> dict[str, Any] | None:
    """The published partition, once it shows exactly these components and every view known."""
    found = partition(api_client, namespace, name)
    wanted = sorted((sorted(node.name for node in part) for part in components), key=lambda p: (-len(p), p))
    everyone = {node.name for part in components for node in part}
    known = reasons(found)
    if found.get("components") == wanted and set(known) == everyone and not any(known.values()):
        return found
    return None

"""The Erlang handler in docs/member-view.md, pasted as is into real Erlang nodes in the
pod network, answers conclave's probe with the node's real view."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from conclave.observe import probing
from conclave_harness.localcluster import PodNetwork
from conclave_harness.localcluster.kubelet import FakeKubelet
from support import eventually

DOCS = Path(__file__).parents[2] / "docs" / "member-view.md"
COOKIE = "conclave-test"

pytestmark = pytest.mark.skipif(shutil.which("erlc") is None, reason="needs Erlang (make test installs it)")


def erlang_handler() -> str:
    """The ```erlang block of the docs, exactly as a user would paste it."""
    match = re.search(r"```erlang\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert match, "docs/member-view.md has no erlang block"
    return match.group(1)


@pytest.fixture
def erlang_nodes(
    api_client: client.ApiClient,
    namespace: str,
    kubelet: FakeKubelet,
    pod_network: PodNetwork,
    tmp_path: Path,
) -> Iterator[list[str]]:
    (tmp_path / "cluster_view.erl").write_text(erlang_handler())
    subprocess.run(["erlc", "-o", str(tmp_path), str(tmp_path / "cluster_view.erl")], check=True)
    core = client.CoreV1Api(api_client)
    ips = []
    for index in range(2):
        core.create_namespaced_pod(
            namespace,
            {"metadata": {"name": f"beam-{index}"}, "spec": {"containers": [{"name": "b", "image": "x"}]}},
        )
        ips.append(kubelet.wait_running(namespace, f"beam-{index}").status.pod_ip)
    epmd = subprocess.Popen(pod_network.command(["epmd"]))
    nodes = []
    try:
        time.sleep(0.3)
        for index, ip in enumerate(ips):
            # one epmd serves the whole pod network here, so the names before @ must differ
            command = [
                "erl", "-noshell", "-name", f"beam{index}@{ip}", "-setcookie", COOKIE, "-pa", str(tmp_path),
                "-kernel", "inet_dist_use_interface", f"{{{ip.replace('.', ',')}}}",
                "-eval", f"cluster_view:start(4000, {{{ip.replace('.', ',')}}})",
            ]  # fmt: skip
            nodes.append(subprocess.Popen(pod_network.command(command), stdin=subprocess.DEVNULL))
        yield [f"beam{index}@{ip}" for index, ip in enumerate(ips)]
    finally:
        for process in [*nodes, epmd]:
            process.kill()
            process.wait()


def test_the_documented_erlang_handler_reports_the_nodes_real_view(
    erlang_nodes: list[str], pod_network: PodNetwork, tmp_path: Path
) -> None:
    targets = [probing.Target(node, node.split("@")[1]) for node in erlang_nodes]

    def probe() -> dict[str, probing.View]:
        return asyncio.run(probing.probe("http", targets, 4000, "/cluster", 1.0))

    alone = eventually(
        lambda: (views := probe()) and all(v.connected is not None for v in views.values()) and views
    )
    assert alone == {node: probing.View(node, frozenset()) for node in erlang_nodes}

    a, b = erlang_nodes
    connect = [
        "erl", "-noshell", "-name", f"connector@{pod_network.namespace_address}", "-setcookie", COOKIE,
        "-eval", f"true = net_kernel:connect_node('{a}'), ok = rpc:call('{a}', erlang, apply, "
        f"[fun() -> true = net_kernel:connect_node('{b}'), ok end, []]), init:stop().",
    ]  # fmt: skip
    subprocess.run(pod_network.command(connect), check=True, timeout=30)
    views = eventually(lambda: (v := probe()) and b in (v[a].connected or ()) and v)
    assert views[a].connected == frozenset({b})  # the connector node left; `nodes()` is the real view
    assert views[b].connected == frozenset({a})

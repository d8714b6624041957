"""The scenario `conclave demo` narrates, run as is against the session's cluster with real
Erlang nodes: every step must reach its outcome (the scenario raises otherwise), in the time
the design allows, with the Lease and the events agreeing with what status says."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from conclave.adapters.apiclient import ApiClient
from conclave_harness import demo
from conclave_harness.demo import manifests
from conclave_harness.localcluster import LocalCluster, PodNetwork
from conclave_harness.localcluster.kubelet import FakeKubelet
from support import events_about, eventually, read

STABLE_AFTER, LEASE_DURATION = 2.0, 3.0
POLL = 0.2
"""Slack for the probe interval, the operator's write and the scenario's read."""

pytestmark = pytest.mark.skipif(shutil.which("erl") is None, reason="needs Erlang (make test installs it)")


async def test_the_demo_scenario_reaches_every_outcome_in_time(
    api_client: client.ApiClient,
    namespace: str,
    kubelet: FakeKubelet,
    pod_network: PodNetwork,
    start_operator: Callable[..., Any],
    tmp_path: Path,
) -> None:
    async with ApiClient(api_client.configuration, identity="e2e-demo") as api:
        await demo.install_crds(api)
        with demo.ErlangNodes(pod_network, tmp_path / "erlang") as nodes:
            narration = demo.Narration(sys.stdout.write)  # shown when the test fails
            measurements = await demo.Scenario(api, namespace, nodes, start_operator, narration).run()
            narration.table(measurements)

    outcomes: dict[str, set[str]] = {}
    for measurement in measurements:
        outcomes.setdefault(measurement.step, set()).add(measurement.name)
    outcomes["4. failover"].discard("elsewhere")  # as placement fell: nothing else on the deleted pod
    expected = {
        "1. discovery": {"alone", "discovered", "meshed", "healthy"},
        "2. placement": {"placed"},
        "3. scale to 7": {"joined", "meshed", "grown"},
        "4. failover": {"dropped", "moved"},
        "5. rejoin": {"back", "passive"},
        "6. split 4/3": {"cut", "held", "declared", "fenced", "quorum", "kept"},
        "7. heal": {"reconnected", "healed", "passive"},
        "8. empty a group": {"killed", "emptied"},
    }
    assert outcomes == expected
    assert list(outcomes) == list(expected), "the steps ran in this order"
    took = {(m.step[0], m.name): m.seconds for m in measurements if m.seconds is not None}
    assert took["4", "dropped"] < 1.5, "a vanished node's pod is gone: every member drops it at once"
    assert took["4", "moved"] < 2.0, (
        "a deleted owner pod is confirmed gone: the next owner is granted at once"
    )
    assert STABLE_AFTER <= took["6", "declared"] < STABLE_AFTER + 1.0 + POLL
    for moved in ("fenced", "quorum"):  # both owners were on the minority side
        assert took["6", moved] - took["6", "declared"] >= LEASE_DURATION - POLL, (
            "no grant before the lease ran out"
        )
    assert took["7", "healed"] < 20.0, "the mesh's backoff per pair is at most 30s, and the split was short"
    assert took["8", "emptied"] < 1.5

    for name in manifests.SINGLETONS:
        singleton = read(api_client, namespace, "singletons", name)["status"]
        lease = client.CoordinationV1Api(api_client).read_namespaced_lease(name, namespace).spec
        assert (lease.holder_identity, lease.lease_transitions) == (singleton["owner"], singleton["epoch"])
    # The event follows the status the scenario waited for.
    assert eventually(
        lambda: (
            "GroupEmpty"
            in [reason for _, reason, _ in events_about(api_client, namespace, manifests.EMPTIED)]
        )
    )


def _processes_mentioning(marker: str) -> list[tuple[int, str]]:
    """Every live process whose command line mentions ``marker`` (this one excepted)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile
        if marker in command and state != "Z":
            found.append((int(entry.name), command))
    return found


@pytest.mark.parametrize(
    "moment",
    ["Waiting for kube-apiserver", "── 4. "],
    ids=["while the control plane starts", "in the middle of the scenario"],
)
def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path, moment: str) -> None:
    name, cidr = "interrupted", "10.251.0.0/16"
    state = tmp_path / "state"
    # A shell without job control starts background jobs with SIGINT ignored, which a
    # child inherits (Python then installs no KeyboardInterrupt handler): a handler here
    # makes the demo start with the default, as from a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        demo_process = subprocess.Popen(
            [sys.executable, "-m", "conclave", "demo", "--name", name, "--pod-cidr", cidr],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "XDG_STATE_HOME": str(state), "PYTHONUNBUFFERED": "1"},
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert demo_process.stdout is not None
    output = []
    try:
        for line in iter(demo_process.stdout.readline, b""):
            output.append(line.decode(errors="replace"))
            if moment in output[-1]:
                break
        else:
            pytest.fail("the demo ended before the moment to interrupt it:\n" + "".join(output))
        cluster = LocalCluster(name=name, pod_cidr=cidr, root=state / "conclave" / "clusters")
        started = [c.pid for c in cluster.components()]
        assert started, "the demo records what it starts"
        demo_process.send_signal(signal.SIGINT)
        rest, _ = demo_process.communicate(timeout=60)
    finally:
        if demo_process.poll() is None:
            demo_process.kill()
            demo_process.wait()
    log = "".join(output) + rest.decode(errors="replace")
    assert demo_process.returncode == 130, log
    assert "everything the demo started is stopped" in log
    assert not [pid for pid in started if Path(f"/proc/{pid}").exists()], log
    assert _processes_mentioning(str(state)) == [], log
    assert not cluster.network.exists()
    assert not cluster.state_dir.exists()

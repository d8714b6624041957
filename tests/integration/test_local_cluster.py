"""The local cluster's life cycle: up, a crash, up again, down leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conclave_harness.localcluster import LocalCluster, etcd
from conclave_harness.localcluster.clusters import Component


def alive(component: Component) -> bool:
    try:
        return os.readlink(f"/proc/{component.pid}/exe") == component.binary
    except OSError:
        return False


@pytest.fixture
def helper() -> Iterator[subprocess.Popen[bytes]]:
    """A process the cluster's user starts for it; reaped even when the test fails early."""
    process = subprocess.Popen(["sleep", "600"])
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_a_crashed_run_does_not_block_the_next_and_down_leaves_nothing(
    tmp_path: Path, helper: subprocess.Popen[bytes]
) -> None:
    cluster = LocalCluster(name="lifecycle", pod_cidr="10.246.0.0/16", root=tmp_path, die_with_caller=True)
    cluster.up()
    try:
        crashed = cluster.components()
        assert [c.name for c in crashed] == ["etcd", "kube-apiserver", "kube-controller-manager"]
        os.kill(crashed[0].pid, signal.SIGKILL)  # etcd dies; the rest of the run is left behind

        # At once: for a moment the API server still says ready and etcd's PID still shows
        # its binary, and neither makes this a running cluster.
        cluster.up()

        restarted = cluster.components()
        assert all(alive(c) for c in restarted)
        assert etcd.healthy(cluster.etcd_url)
        assert {c.pid for c in restarted}.isdisjoint(c.pid for c in crashed)
        assert not any(alive(c) for c in crashed)
        assert cluster.running()
        assert cluster.network.exists()
        cluster.adopt("helper", helper.pid)
        assert cluster.components()[-1] == Component(
            "helper", os.readlink(f"/proc/{helper.pid}/exe"), helper.pid
        )
    finally:
        cluster.down()
    assert helper.wait(timeout=5) is not None, "down stops adopted processes too"
    assert not any(alive(c) for c in restarted)
    assert not cluster.network.exists()
    assert not cluster.state_dir.exists()

"""Probing simulated members over the real pod network: views, and every way to fail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from conclave.observe import probing
from conclave_harness.localcluster import PodNetwork
from conclave_harness.localcluster.kubelet import FakeKubelet
from conclave_harness.sim import SimulatedMembers


@pytest.fixture
def members(
    api_client: client.ApiClient, namespace: str, kubelet: FakeKubelet, pod_network: PodNetwork
) -> Iterator[tuple[SimulatedMembers, list[probing.Target]]]:
    core = client.CoreV1Api(api_client)
    for index in range(5):
        core.create_namespaced_pod(
            namespace,
            {"metadata": {"name": f"chat-{index}"}, "spec": {"containers": [{"name": "beam", "image": "x"}]}},
        )
    ips = [kubelet.wait_running(namespace, f"chat-{index}").status.pod_ip for index in range(5)]
    targets = [probing.Target(member=f"chat@{ip}", ip=ip) for ip in ips]
    with SimulatedMembers(pod_network) as sim:
        for target in targets:
            sim.add(target.member, target.ip)
        sim.connect_all()
        yield sim, targets


def probe(targets: list[probing.Target], timeout: float = 1.0) -> dict[str, probing.View]:
    return asyncio.run(probing.probe("http", targets, 4000, "/cluster", timeout))


def test_connected_members_report_each_other(members: tuple[SimulatedMembers, list[probing.Target]]) -> None:
    _, targets = members
    names = {t.member for t in targets}
    assert probe(targets) == {name: probing.View(name, frozenset(names - {name})) for name in names}


def test_a_hung_member_times_out_without_delaying_the_others(
    members: tuple[SimulatedMembers, list[probing.Target]],
) -> None:
    sim, targets = members
    hung = targets[0].member
    sim.set_mode(hung, "hang")
    started = time.monotonic()
    views = probe(targets, timeout=1.0)
    assert time.monotonic() - started < 1.5
    assert views[hung] == probing.View(hung, None, "Timeout")
    assert all(views[t.member].connected is not None for t in targets[1:])


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("garbage", "MalformedView"), ("error", "HTTP500"), ("impostor", "WrongNode")],
    ids=["garbage JSON", "a server error", "another node's name"],
)
def test_a_member_that_answers_nonsense_has_an_unknown_view_with_the_reason(
    members: tuple[SimulatedMembers, list[probing.Target]], mode: str, reason: str
) -> None:
    sim, targets = members
    odd = targets[1].member
    sim.set_mode(odd, mode, claims=targets[2].member)  # type: ignore[arg-type]
    views = probe(targets)
    assert views[odd] == probing.View(odd, None, reason)
    assert views[targets[2].member].connected is not None


def test_a_member_with_nothing_listening_is_refused(
    members: tuple[SimulatedMembers, list[probing.Target]],
) -> None:
    sim, targets = members
    sim.remove(targets[3].member)
    assert probe(targets)[targets[3].member] == probing.View(targets[3].member, None, "ConnectionRefused")


def test_a_netsplit_shows_in_the_views(members: tuple[SimulatedMembers, list[probing.Target]]) -> None:
    sim, targets = members
    names = [t.member for t in targets]
    sim.partition([names[:3], names[3:]])
    views = probe(targets)
    assert views[names[0]].connected == frozenset(names[1:3])
    assert views[names[4]].connected == frozenset([names[3]])

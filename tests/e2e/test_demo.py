"""The scenario `conclave demo` narrates, run as is against the session's cluster: every
step must reach its outcome (the scenario raises otherwise), in the time the design allows,
with the Lease and the events agreeing with what status says."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from kubernetes import client

from conclave import demo
from conclave.adapters.apiclient import ApiClient
from conclave.demo import manifests
from conclave.localcluster import PodNetwork
from conclave.localcluster.kubelet import FakeKubelet
from conclave.sim import SimulatedMembers
from support import events_about, read

STABLE_AFTER, LEASE_DURATION = 2.0, 3.0
POLL = 0.2
"""Slack for the probe interval, the operator's write and the scenario's read."""


async def test_the_demo_scenario_reaches_every_outcome_in_time(
    api_client: client.ApiClient,
    namespace: str,
    kubelet: FakeKubelet,
    pod_network: PodNetwork,
    start_operator: Callable[..., Any],
) -> None:
    api = ApiClient(api_client.configuration, identity="e2e-demo")
    try:
        await demo.install_crds(api)
        with SimulatedMembers(pod_network) as members:
            narration = demo.Narration(sys.stdout.write)  # shown when the test fails
            measurements = await demo.Scenario(api, namespace, members, start_operator, narration).run()
            narration.table(measurements)
    finally:
        api.close()

    split = "6. split 4/3"
    steps = [(m.step, m.name) for m in measurements if m.name != "elsewhere"]  # as placement fell
    assert [(step, name) for step, name in steps if step != split] == [
        ("1. discovery", "discovered"),
        ("2. placement", "placed"),
        ("3. scale to 7", "joined"),
        ("3. scale to 7", "grown"),
        ("4. failover", "moved"),
        ("5. rejoin", "back"),
        ("5. rejoin", "passive"),
        ("7. heal", "healed"),
        ("7. heal", "passive"),
        ("8. empty a group", "emptied"),
    ]
    assert sorted(name for step, name in steps if step == split) == ["declared", "fenced", "kept", "quorum"]
    took = {m.name: m.seconds for m in measurements if m.seconds is not None}
    assert took["moved"] < 2.0, "a deleted owner pod is confirmed gone: the next owner is granted at once"
    assert STABLE_AFTER <= took["declared"] < STABLE_AFTER + 1.0 + POLL
    for moved in ("fenced", "quorum"):  # both owners were on the minority side
        assert took[moved] - took["declared"] >= LEASE_DURATION - POLL, "no grant before the lease ran out"
    assert took["emptied"] < 1.0

    for name in manifests.SINGLETONS:
        singleton = read(api_client, namespace, "singletons", name)["status"]
        lease = client.CoordinationV1Api(api_client).read_namespaced_lease(name, namespace).spec
        assert (lease.holder_identity, lease.lease_transitions) == (singleton["owner"], singleton["epoch"])
    assert "GroupEmpty" in [reason for _, reason, _ in events_about(api_client, namespace, manifests.EMPTIED)]

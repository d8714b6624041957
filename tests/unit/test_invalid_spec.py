"""A spec that passed the CRD but not the models (the cluster's CRD is another version's)
is that object's InvalidSpec, with every refused field named; the rest of its topology
goes on. Observed from a cache as the watches fill it, then planned."""

from __future__ import annotations

import datetime
from typing import Any

from conclave.adapters.cache import Cache
from conclave.core import patches, planning
from conclave.core.facts import Moment
from conclave.core.keys import Key
from conclave.core.memory import Remembered
from conclave.core.plans import ObjectPlan, Plan
from conclave.observe import reading

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
HOSTS = ["chat@10.0.0.1", "chat@10.0.0.2", "chat@10.0.0.3"]


def body(kind: str, name: str, spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata = {
        "name": name,
        "namespace": "prod",
        "uid": f"uid-{name}",
        "resourceVersion": "1",
        "generation": 1,
    }
    return {
        "apiVersion": "conclave.dev/v1alpha1",
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
        "status": status,
    }


def cache_of(*bodies: dict[str, Any]) -> Cache:
    cache = Cache()
    for item in bodies:
        cache.put(item["kind"], item)
    return cache


def planned(cache: Cache) -> Plan:
    observation = reading.observe(
        cache,
        Key("prod", "chat"),
        moment=Moment(NOW, 0.0),
        cluster_domain="cluster.local",
        lookups=reading.Lookups(),
        memory=Remembered(),
    )
    return planning.plan(observation)


def of(plan: Plan, name: str) -> ObjectPlan:
    return next(item for item in plan.objects if item.target.name == name)


def conditions(item: ObjectPlan) -> dict[str, tuple[str, str, str]]:
    assert item.status is not None
    wire = item.status.desired.wire()
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in wire["conditions"]}


TOPOLOGY = body("ClusterTopology", "chat", {"strategy": "Static", "hosts": HOSTS})
VALID = body("Singleton", "billing", {"topology": "chat"})
INVALID = body("Singleton", "reports", {"topology": "chat", "distribution": "Random", "leaseDuration": "-5s"})


def test_an_invalid_singleton_says_which_fields_and_the_others_are_placed() -> None:
    plan = planned(cache_of(TOPOLOGY, VALID, INVALID))
    invalid = of(plan, "reports")
    assert conditions(invalid)["Placed"] == (
        "False",
        "InvalidSpec",
        "spec.distribution: \"Random\" should be 'Uniform', 'UniformQuorum' or 'Pinned'; "
        "spec.leaseDuration: \"-5s\" should match pattern '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$'",
    )
    assert [(e.type, e.reason) for e in invalid.events] == [("Warning", "InvalidSpec")]
    assert invalid.owned == ()  # nothing is decided about its ownership
    valid = of(plan, "billing")
    assert [o.kind for o in valid.owned] == ["Lease"]
    assert conditions(valid)["Placed"][:2] == ("True", "Placed")
    assert conditions(of(plan, "chat"))["Ready"][:2] == ("True", "Reconciled")


def test_the_invalid_spec_event_is_posted_once() -> None:
    first = of(planned(cache_of(TOPOLOGY, INVALID)), "reports")
    assert first.status is not None
    wire = patches.apply(first.status.current, first.status.desired.wire())
    again = of(planned(cache_of(TOPOLOGY, {**INVALID, "status": wire})), "reports")
    assert again.events == ()
    assert again.status is not None
    desired = patches.desired(again.status.current, again.status.desired.wire())
    assert patches.diff(again.status.current, desired) == {}


def test_an_invalid_topology_is_not_ready_and_its_dependents_decide_nothing() -> None:
    topology = body(
        "ClusterTopology", "chat", {"strategy": "Static", "hosts": HOSTS, "probe": {"port": 99999}}
    )
    group = body("ProcessGroup", "orders", {"topology": "chat", "group": "orders", "selector": {}})
    plan = planned(cache_of(topology, VALID, group))
    assert conditions(of(plan, "chat"))["Ready"] == (
        "False",
        "InvalidSpec",
        "spec.probe.port: 99999 should be less than or equal to 65535",
    )
    for name in ("billing", "orders"):
        assert conditions(of(plan, name))["TopologyFound"] == (
            "False",
            "TopologyInvalid",
            "ClusterTopology 'chat': spec.probe.port: 99999 should be less than or equal to 65535",
        )
    assert of(plan, "billing").owned == ()  # ownership stays as the Leases say


def test_a_missing_required_field_is_named() -> None:
    group = body("ProcessGroup", "orders", {"topology": "chat", "selector": {}})
    plan = planned(cache_of(TOPOLOGY, group))
    assert conditions(of(plan, "orders"))["Populated"] == ("False", "InvalidSpec", "spec.group: is required")

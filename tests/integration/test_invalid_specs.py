"""A spec that the CRD in the cluster admits but the operator's models refuse is reported on
that object alone, and the rest of its topology goes on (issue #13). The realistic cause:
the CRDs in the cluster are from another conclave version, since Helm never upgrades crds/.

Each test relaxes one CRD as an older one would be (a keyword of one field's schema
dropped), and always restores it: the cluster is shared by the whole test session.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from support import (
    GROUP,
    STABLE_AFTER,
    VERSION,
    Operators,
    condition,
    create,
    custom,
    events_about,
    eventually,
    partition_of,
    read,
)

pytestmark = pytest.mark.usefixtures("installed_crds")

T = TypeVar("T")

CRDS = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")

Relax = Callable[[str, Sequence[str], str, dict[str, Any]], None]


def reaches(probe: Callable[[], T], expected: T, timeout: float = 30.0) -> None:
    """Wait until ``probe()`` equals ``expected``; else fail, showing the last value against it."""
    with contextlib.suppress(AssertionError):
        eventually(lambda: probe() == expected, timeout)
    assert probe() == expected


def admitted(api_client: client.ApiClient, namespace: str, plural: str, body: dict[str, Any]) -> bool:
    """Whether the API server would create ``body`` now (a dry run: nothing is stored)."""
    try:
        custom(api_client).create_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, {"apiVersion": f"{GROUP}/{VERSION}", **body}, dry_run="All"
        )
    except ApiException as error:
        if error.status == 422:
            return False
        raise
    return True


def replace_spec(api_client: client.ApiClient, name: str, spec: dict[str, Any]) -> None:
    """Give the CRD ``spec``, re-reading it after a 409 (its status changes too)."""

    def attempt() -> bool:
        current = custom(api_client).get_cluster_custom_object(*CRDS, name)
        current["spec"] = spec
        try:
            custom(api_client).replace_cluster_custom_object(*CRDS, name, current)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    eventually(attempt)


@contextlib.contextmanager
def relaxed(
    api_client: client.ApiClient,
    namespace: str,
    plural: str,
    field: Sequence[str],
    keyword: str,
    invalid: dict[str, Any],
) -> Iterator[None]:
    """The CRD of ``plural`` without ``keyword`` in the schema of ``field`` (a path of
    property names), as served: ``invalid`` is admitted. Restored on exit, as served again:
    ``invalid`` is refused again."""
    name = f"{plural}.{GROUP}"
    original = custom(api_client).get_cluster_custom_object(*CRDS, name)["spec"]
    spec = copy.deepcopy(original)
    for version in spec["versions"]:
        node = version["schema"]["openAPIV3Schema"]
        for part in field:
            node = node["properties"][part]
        del node[keyword]
    assert not admitted(api_client, namespace, plural, invalid), "the CRD refuses it to begin with"
    try:
        replace_spec(api_client, name, spec)
        eventually(lambda: admitted(api_client, namespace, plural, invalid))
        yield
    finally:
        replace_spec(api_client, name, original)
        eventually(lambda: not admitted(api_client, namespace, plural, invalid))


@pytest.fixture
def relax(api_client: client.ApiClient, namespace: str) -> Iterator[Relax]:
    """Relax a CRD for the test (see ``relaxed``); every one is restored at teardown."""
    with contextlib.ExitStack() as stack:

        def apply(plural: str, field: Sequence[str], keyword: str, invalid: dict[str, Any]) -> None:
            stack.enter_context(relaxed(api_client, namespace, plural, field, keyword, invalid))

        yield apply


def singleton(name: str, topology: str = "chat", **spec: Any) -> dict[str, Any]:
    return {"kind": "Singleton", "metadata": {"name": name}, "spec": {"topology": topology, **spec}}


def group(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "ProcessGroup",
        "metadata": {"name": name},
        "spec": {"topology": "chat", "group": name, "selector": {"matchLabels": {"app": "chat"}}, **spec},
    }


def refused(
    api_client: client.ApiClient, namespace: str, plural: str, name: str, kind: str
) -> dict[str, Any]:
    """The object's ``kind`` condition, once its reason is InvalidSpec."""
    return eventually(
        lambda: (
            (found := condition(read(api_client, namespace, plural, name), kind))
            and found["reason"] == "InvalidSpec"
            and found
        )
    )


def holds(api_client: client.ApiClient, namespace: str, plural: str, name: str, kind: str) -> dict[str, Any]:
    """The object's ``kind`` condition, once it is True."""
    return eventually(
        lambda: (
            (found := condition(read(api_client, namespace, plural, name), kind))
            and found["status"] == "True"
            and found
        ),
        STABLE_AFTER + 20,
    )


def invalid_spec_events(api_client: client.ApiClient, namespace: str, name: str) -> list[tuple[str, str]]:
    """(type, reason) of the InvalidSpec events about ``name``."""
    return [
        (kind, reason)
        for kind, reason, _ in events_about(api_client, namespace, name)
        if reason == "InvalidSpec"
    ]


ONE_WARNING = [("Warning", "InvalidSpec")]


def reconciled(operators: Operators) -> float:
    """How many supervisor iterations of the (only) operator have succeeded."""
    metric = operators.started[0].metric("conclave_reconcile_total", controller="topology", result="success")
    return metric or 0.0


def after_two_iterations(operators: Operators) -> None:
    later = reconciled(operators) + 2
    eventually(lambda: reconciled(operators) >= later)


def patch_spec(api_client: client.ApiClient, namespace: str, plural: str, name: str, **spec: Any) -> None:
    custom(api_client).patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, {"spec": spec})


def test_a_singleton_the_models_refuse_gets_invalid_spec_and_its_topology_goes_on(
    api_client: client.ApiClient,
    namespace: str,
    relax: Relax,
    cluster_of: Callable[..., Any],
    start_operator: Operators,
) -> None:
    relax("singletons", ("spec", "distribution"), "enum", singleton("probe", distribution="Random"))
    cluster_of(3)
    create(api_client, namespace, "singletons", singleton("random", distribution="Random"))
    create(api_client, namespace, "singletons", singleton("uniform", distribution="Uniform"))

    holds(api_client, namespace, "singletons", "uniform", "Placed")
    placed = refused(api_client, namespace, "singletons", "random", "Placed")
    assert (placed["status"], placed["message"].startswith("spec.distribution")) == ("False", True), placed
    reaches(lambda: invalid_spec_events(api_client, namespace, "random"), ONE_WARNING)
    after_two_iterations(start_operator)  # reported once, not on every iteration
    assert invalid_spec_events(api_client, namespace, "random") == ONE_WARNING

    patch_spec(api_client, namespace, "singletons", "random", distribution="Uniform")
    holds(api_client, namespace, "singletons", "random", "Placed")
    assert read(api_client, namespace, "singletons", "random")["status"]["phase"] == "Placed"
    assert invalid_spec_events(api_client, namespace, "random") == ONE_WARNING


def test_a_process_group_the_models_refuse_gets_invalid_spec_and_its_topology_goes_on(
    api_client: client.ApiClient,
    namespace: str,
    relax: Relax,
    cluster_of: Callable[..., Any],
    start_operator: Operators,
) -> None:
    relax("processgroups", ("spec", "minMembers"), "maximum", group("probe", minMembers=200000))
    cluster_of(3)
    create(api_client, namespace, "processgroups", group("huge", minMembers=200000))
    create(api_client, namespace, "processgroups", group("small", minMembers=1))
    create(api_client, namespace, "singletons", singleton("jobs"))

    holds(api_client, namespace, "processgroups", "small", "Populated")
    holds(api_client, namespace, "singletons", "jobs", "Placed")
    populated = refused(api_client, namespace, "processgroups", "huge", "Populated")
    assert (populated["status"], populated["message"].startswith("spec.minMembers")) == ("False", True), (
        populated
    )
    reaches(lambda: invalid_spec_events(api_client, namespace, "huge"), ONE_WARNING)
    after_two_iterations(start_operator)
    assert invalid_spec_events(api_client, namespace, "huge") == ONE_WARNING

    patch_spec(api_client, namespace, "processgroups", "huge", minMembers=2)
    holds(api_client, namespace, "processgroups", "huge", "Populated")
    assert read(api_client, namespace, "processgroups", "huge")["status"]["count"] == 3
    assert invalid_spec_events(api_client, namespace, "huge") == ONE_WARNING


def test_a_topology_the_models_refuse_is_not_ready_and_its_dependents_say_so(
    api_client: client.ApiClient,
    namespace: str,
    relax: Relax,
    cluster_of: Callable[..., Any],
    start_operator: Operators,
) -> None:
    def topology(name: str, **spec: Any) -> dict[str, Any]:
        probe = {"type": "http", "port": 4000, "interval": "500ms", "timeout": "300ms"}
        full = {"strategy": "KubernetesAPI", "service": "chat", "applicationName": "chat", "probe": probe}
        return {"kind": "ClusterTopology", "metadata": {"name": name}, "spec": {**full, **spec}}

    relax("clustertopologies", ("spec", "memberReadiness"), "enum", topology("probe", memberReadiness="Some"))
    cluster_of(3)  # chat, a valid topology of the same members, is Healthy
    create(api_client, namespace, "clustertopologies", topology("legacy", memberReadiness="Some"))
    create(api_client, namespace, "singletons", singleton("jobs", topology="legacy"))
    create(api_client, namespace, "singletons", singleton("steady"))

    ready = refused(api_client, namespace, "clustertopologies", "legacy", "Ready")
    assert (ready["status"], ready["message"].startswith("spec.memberReadiness")) == ("False", True), ready
    found = eventually(
        lambda: (
            (c := condition(read(api_client, namespace, "singletons", "jobs"), "TopologyFound"))
            and c["reason"] == "TopologyInvalid"
            and c
        )
    )
    assert found["status"] == "False"
    reaches(lambda: invalid_spec_events(api_client, namespace, "legacy"), ONE_WARNING)
    holds(api_client, namespace, "singletons", "steady", "Placed")
    assert partition_of(api_client, namespace)["state"] == "Healthy"
    after_two_iterations(start_operator)
    assert invalid_spec_events(api_client, namespace, "legacy") == ONE_WARNING

    patch_spec(api_client, namespace, "clustertopologies", "legacy", memberReadiness="Ready")
    holds(api_client, namespace, "clustertopologies", "legacy", "Ready")
    holds(api_client, namespace, "singletons", "jobs", "TopologyFound")
    holds(api_client, namespace, "singletons", "jobs", "Placed")
    assert invalid_spec_events(api_client, namespace, "legacy") == ONE_WARNING

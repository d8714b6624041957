"""What the demo applies: the cookie Secret, the pods, the topology, the groups and the
singletons, as a user would write them, and the names the scenario and its test refer to."""

from __future__ import annotations

import base64
from typing import Any

from conclave_harness.demo.nodes import DISTRIBUTION_PORT, Groups

NAMESPACE = "conclave-demo"
TOPOLOGY = "chat"
COOKIE_SECRET, COOKIE_KEY = "chat-cookie", "cookie"
FIRST_SIZE, SCALED_SIZE = 5, 7
MINORITY = SCALED_SIZE // 2
LEASE_DURATION = "3s"
STABLE_AFTER = "2s"
SINGLETONS = {
    "billing": ("Uniform", "Fence"),
    "ledger": ("UniformQuorum", "Fence"),
    "presence": ("Uniform", "Continue"),
}
"""name: (distribution, partitionPolicy)."""
GROUPS = {
    "subscribers": ("pubsub", '{subscribers, <<"orders">>}', dict.fromkeys(range(SCALED_SIZE), 1)),
    "reports": ("workers", "reports", {0: 2, 1: 1}),
}
"""name: (pg scope, pg group, both Erlang literals; pod index → its node's processes in it)."""
EMPTIED = "reports"


def node_groups(index: int) -> Groups:
    """The pg groups the node of pod ``index`` starts processes in, and how many."""
    return {(scope, group): counts.get(index, 0) for scope, group, counts in GROUPS.values()}


def processes(name: str, indexes: range | list[int]) -> int:
    """How many processes group ``name`` has on the nodes of these pods."""
    return sum(GROUPS[name][2].get(index, 0) for index in indexes)


def cookie_secret(cookie: str) -> dict[str, Any]:
    """The Secret the operator reads the nodes' cookie from."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": COOKIE_SECRET},
        "data": {COOKIE_KEY: base64.b64encode(cookie.encode()).decode()},
    }


def pod(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{TOPOLOGY}-{index}", "labels": {"app": TOPOLOGY}},
        "spec": {"containers": [{"name": "beam", "image": "erlang:25"}]},
    }


def resources() -> list[tuple[str, dict[str, Any]]]:
    """The topology and the groups, as a user would apply them."""
    topology = {
        "kind": "ClusterTopology",
        "metadata": {"name": TOPOLOGY},
        "spec": {
            "strategy": "KubernetesAPI",
            "service": TOPOLOGY,
            "applicationName": TOPOLOGY,
            "memberReadiness": "Ready",
            "probe": {
                "type": "erlang",
                "cookieSecretRef": {"name": COOKIE_SECRET, "key": COOKIE_KEY},
                "distributionPort": DISTRIBUTION_PORT,
                "interval": "500ms",
                "timeout": "300ms",
            },
            "connect": "Mesh",
            "partition": {"stableAfter": STABLE_AFTER},
        },
    }
    groups = [
        {
            "kind": "ProcessGroup",
            "metadata": {"name": name},
            "spec": {"topology": TOPOLOGY, "source": "Erlang", "scope": scope, "group": group},
        }
        for name, (scope, group, _) in GROUPS.items()
    ]
    return [("clustertopologies", topology), *(("processgroups", group) for group in groups)]


def singletons() -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "singletons",
            {
                "kind": "Singleton",
                "metadata": {"name": name},
                "spec": {
                    "topology": TOPOLOGY,
                    "distribution": distribution,
                    "partitionPolicy": policy,
                    "leaseDuration": LEASE_DURATION,
                },
            },
        )
        for name, (distribution, policy) in SINGLETONS.items()
    ]

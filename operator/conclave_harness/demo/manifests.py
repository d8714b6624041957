"""What the demo applies: the pods, the topology, the groups and the singletons, as a user
would write them, and the names the scenario and its test refer to."""

from __future__ import annotations

from typing import Any

NAMESPACE = "conclave-demo"
TOPOLOGY = "chat"
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
    "subscribers": ("pubsub", "subscribers:orders", range(SCALED_SIZE)),
    "reports": ("workers", "reports", range(2)),
}
"""name: (scope, group, the pod indexes that carry its label)."""
GROUP_LABEL = "demo.conclave.dev/{}"
EMPTIED = "reports"


def pod(index: int) -> dict[str, Any]:
    labels = {"app": TOPOLOGY}
    labels |= {GROUP_LABEL.format(name): "true" for name, (_, _, pods) in GROUPS.items() if index in pods}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{TOPOLOGY}-{index}", "labels": labels},
        "spec": {"containers": [{"name": "beam", "image": "conclave.dev/simulated-member:1"}]},
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
            "probe": {
                "type": "http",
                "port": 4000,
                "path": "/cluster",
                "interval": "500ms",
                "timeout": "300ms",
            },
            "partition": {"stableAfter": STABLE_AFTER},
        },
    }
    groups = [
        {
            "kind": "ProcessGroup",
            "metadata": {"name": name},
            "spec": {
                "topology": TOPOLOGY,
                "scope": scope,
                "group": group,
                "selector": {"matchLabels": {GROUP_LABEL.format(name): "true"}},
            },
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

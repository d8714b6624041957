"""Names as long as Kubernetes allows: a Singleton named with all 253 characters is placed,
and its events are posted (their names are derived to fit, act/announcing.event_name)."""

from __future__ import annotations

import pytest
from kubernetes import client

from support import Operators, create, events_about, eventually, read

pytestmark = pytest.mark.usefixtures("installed_crds")

LONGEST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])


def test_a_singleton_with_the_longest_name_is_placed_and_its_events_are_posted(
    api_client: client.ApiClient, namespace: str, start_operator: Operators
) -> None:
    assert len(LONGEST) == 253
    spec = {"strategy": "Static", "applicationName": "chat", "hosts": ["chat@10.0.0.1"]}
    create(
        api_client,
        namespace,
        "clustertopologies",
        {"kind": "ClusterTopology", "metadata": {"name": "chat"}, "spec": spec},
    )
    create(
        api_client,
        namespace,
        "singletons",
        {"kind": "Singleton", "metadata": {"name": LONGEST}, "spec": {"topology": "chat"}},
    )
    operator = start_operator()
    eventually(
        lambda: read(api_client, namespace, "singletons", LONGEST).get("status", {}).get("phase") == "Placed"
    )
    granted = eventually(
        lambda: [e for e in events_about(api_client, namespace, LONGEST) if e[1] == "OwnerGranted"]
    )
    assert granted[0][0] == "Normal"
    assert "Failed to post event" not in operator.output()

"""ProcessGroup source Erlang with real BEAM nodes: the group's members, count and
membersByNode are each node's own ``pg:get_local_members(Scope, Group)``, so the status
follows the real processes, down to none (Populated False, Empty; a GroupEmpty event)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from test_beam_nodes import Members, Node, members_fixture, needs_erlang, topology

from conclave.adapters.erlang import terms
from support import condition, create, events_about, eventually, read

pytestmark = [pytest.mark.usefixtures("installed_crds"), needs_erlang]
members = members_fixture()
SCOPE, GROUP = "chat_pg", '{subscribers, <<"orders">>}'


def join(node: Node, processes: int) -> None:
    """Start the pg scope on the node and ``processes`` processes in the group there."""
    joined = node.ask(
        f"begin {{ok, _}} = pg:start({SCOPE}), Ps = [spawn(fun() -> receive stop -> ok end end) "
        f"|| _ <- lists:seq(1, {processes})], pg:join({SCOPE}, {GROUP}, Ps) end."
    )
    assert terms.atom_text(joined) == "ok"


def kill(node: Node, processes: int) -> None:
    """Kill that many of the group's processes on the node; pg drops them as they die."""
    node.ask(f"[exit(P, kill) || P <- lists:sublist(pg:get_local_members({SCOPE}, {GROUP}), {processes})].")


def test_a_pg_group_follows_its_processes_being_killed_down_to_none(
    api_client: client.ApiClient, namespace: str, members: Members, start_operator: Callable[..., Any]
) -> None:
    first, second = members.add(2)
    join(first, 2)
    join(second, 1)
    topology(api_client, namespace)
    spec = {"topology": "chat", "source": "Erlang", "scope": SCOPE, "group": GROUP}
    create(
        api_client,
        namespace,
        "processgroups",
        {"kind": "ProcessGroup", "metadata": {"name": "orders"}, "spec": spec},
    )
    start_operator()

    def status(count: int) -> dict[str, Any] | None:
        found: dict[str, Any] = read(api_client, namespace, "processgroups", "orders")
        return found if found.get("status", {}).get("count") == count else None

    three = eventually(lambda: status(3))
    nodes_of = {
        m["name"]: m["nodeName"]
        for m in read(api_client, namespace, "clustertopologies", "chat")["status"]["members"]
    }
    by_node = {nodes_of[first.name]: 2, nodes_of[second.name]: 1}
    assert (three["status"]["members"], three["status"]["membersByNode"]) == (
        sorted([first.name, second.name]),
        by_node,
    )
    assert condition(three, "Populated")["status"] == "True"  # type: ignore[index]

    kill(first, 1)
    two = eventually(lambda: status(2))
    assert two["status"]["membersByNode"] == {nodes_of[first.name]: 1, nodes_of[second.name]: 1}
    kill(first, 1)
    kill(second, 1)
    empty = eventually(lambda: status(0))
    assert empty["status"]["members"] == []
    populated = condition(empty, "Populated")
    assert (populated["status"], populated["reason"]) == ("False", "Empty")  # type: ignore[index]
    eventually(
        lambda: (
            ("Warning", "GroupEmpty")
            in {(kind, reason) for kind, reason, _ in events_about(api_client, namespace, "orders")}
        )
    )

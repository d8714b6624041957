"""The `conclave` command's flags as it parses them: Go-style durations, the leader Lease's
name from the release, kubeconfig contexts, and `status -o json|yaml` as data."""

from __future__ import annotations

import json
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from conclave import cli, summarizing
from conclave.api import ClusterTopology, ProcessGroup, Singleton


def parsed(*args: str) -> dict[str, Any]:
    """The values `conclave run` would start with, as click converts them."""
    with cli.run.make_context("run", list(args)) as ctx:
        return dict(ctx.params)


@pytest.mark.parametrize(
    ("flags", "seconds"),
    [
        ((), (15.0, 10.0, 2.0)),
        (("--lease-duration", "1m", "--renew-deadline", "45s", "--retry-period", "500ms"), (60.0, 45.0, 0.5)),
        (("--lease-duration", "1m30s"), (90.0, 10.0, 2.0)),
    ],
    ids=["the defaults are client-go's", "each unit of the CRDs' durations", "a compound duration"],
)
def test_timing_flags_read_go_style_durations(flags: tuple[str, ...], seconds: tuple[float, ...]) -> None:
    params = parsed(*flags)
    assert (params["lease_duration"], params["renew_deadline"], params["retry_period"]) == seconds


@pytest.mark.parametrize(
    ("flag", "value", "complaint"),
    [
        ("--lease-duration", "15", "'15' is not a duration like 500ms, 5s, 1m30s or 1h"),
        ("--renew-deadline", "ten", "'ten' is not a duration like 500ms, 5s, 1m30s or 1h"),
        ("--retry-period", "0s", "'0s' is not a positive duration"),
    ],
    ids=["a bare number, whose unit would be a guess", "a word", "zero"],
)
def test_a_bad_duration_is_refused_naming_the_flag(flag: str, value: str, complaint: str) -> None:
    result = CliRunner().invoke(cli.main, ["run", flag, value])
    assert result.exit_code == 2
    assert f"Invalid value for '{flag}': {complaint}" in result.output


def test_the_leader_lease_is_named_by_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parsed()["leader_election_id"] == "conclave-operator"
    assert parsed("--leader-election-id", "team-a-conclave")["leader_election_id"] == "team-a-conclave"
    monkeypatch.setenv("CONCLAVE_LEADER_ELECTION_ID", "from-env")
    assert parsed()["leader_election_id"] == "from-env"


def test_a_kubeconfig_context_is_a_flag_of_run_and_status() -> None:
    assert parsed("--context", "staging")["context"] == "staging"
    with cli.status_command.make_context("status", ["--context", "staging", "-o", "yaml"]) as ctx:
        assert (ctx.params["context"], ctx.params["output"]) == ("staging", "yaml")


def test_an_unknown_context_is_a_clear_error(tmp_path: Any) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "here",
            }
        )
    )
    result = CliRunner().invoke(cli.main, ["status", "--kubeconfig", str(kubeconfig), "--context", "there"])
    assert result.exit_code == 1
    assert "no usable kubeconfig" in result.output
    assert "there" in result.output


def test_status_output_is_one_of_text_json_and_yaml() -> None:
    result = CliRunner().invoke(cli.main, ["status", "-o", "xml"])
    assert result.exit_code == 2
    assert "'xml' is not one of 'text', 'json', 'yaml'" in result.output


SNAPSHOT = summarizing.Snapshot(
    topologies=(
        ClusterTopology.from_api(
            {
                "metadata": {"name": "chat", "namespace": "prod"},
                "spec": {"strategy": "Static", "hosts": ["chat@10.0.0.1"]},
                "status": {"memberCount": 1, "readyMembers": 1, "partition": {"state": "Unknown"}},
            }
        ),
    ),
    singletons=(
        Singleton.from_api(
            {
                "metadata": {"name": "billing", "namespace": "prod"},
                "spec": {"topology": "chat"},
                "status": {"owner": "chat@10.0.0.1", "epoch": 2, "phase": "Placed"},
            }
        ),
    ),
    groups=(
        ProcessGroup.from_api(
            {
                "metadata": {"name": "orders", "namespace": "prod"},
                "spec": {
                    "topology": "game",
                    "scope": "pubsub",
                    "group": "orders",
                    "selector": {"matchLabels": {"role": "orders"}},
                },
            }
        ),
    ),
)


def test_the_summary_as_data_names_every_topology_with_its_singletons_and_groups() -> None:
    """Statuses as the API spells them; a topology that only singletons or groups name is there
    too, not found."""
    (topology,), (singleton,), (group,) = SNAPSHOT.topologies, SNAPSHOT.singletons, SNAPSHOT.groups
    assert summarizing.document(SNAPSHOT) == {
        "topologies": [
            {
                "namespace": "prod",
                "name": "chat",
                "found": True,
                "strategy": "Static",
                "status": topology.status.model_dump(mode="json", by_alias=True, exclude_none=True),
                "singletons": [
                    {
                        "name": "billing",
                        "distribution": "Uniform",
                        "partitionPolicy": "Fence",
                        "status": {"owner": "chat@10.0.0.1", "epoch": 2, "phase": "Placed", "conditions": []},
                    }
                ],
                "processGroups": [],
            },
            {
                "namespace": "prod",
                "name": "game",
                "found": False,
                "singletons": [],
                "processGroups": [
                    {
                        "name": "orders",
                        "scope": "pubsub",
                        "group": "orders",
                        "minMembers": 1,
                        "status": group.status.model_dump(mode="json", by_alias=True, exclude_none=True),
                    }
                ],
            },
        ]
    }
    chat = summarizing.document(SNAPSHOT)["topologies"][0]["status"]
    assert (chat["memberCount"], chat["readyMembers"], chat["partition"]["state"]) == (1, 1, "Unknown")
    assert "stale" not in chat  # unset fields are left out, not null
    assert singleton.metadata.name == "billing"


def test_the_summary_as_data_survives_json_and_yaml_unchanged() -> None:
    document = summarizing.document(SNAPSHOT)
    assert json.loads(json.dumps(document)) == document
    assert yaml.safe_load(yaml.safe_dump(document)) == document


def test_duration_type_converts_once() -> None:
    """click converts a default and then may pass the value through again."""
    assert cli.DURATION.convert(2.0, None, None) == 2.0
    with pytest.raises(click.BadParameter):
        cli.DURATION.convert("2", None, None)

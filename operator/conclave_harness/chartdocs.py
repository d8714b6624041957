"""The chart's README, generated from its values: ``conclave chart-docs`` (``make chart-docs``)
writes charts/conclave/README.md, and a unit test fails when it is stale.

The documentation of a value is the ``# --`` comment above it in values.yaml (helm-docs'
convention, so the file reads the same to people who know that tool), continued by the
``#`` lines that follow; its type comes from values.schema.json and its default from the
value itself. A documented key whose value is a map is one row (``resources``); its keys
are documented only if they have comments of their own.

This module reads the chart's files and writes one; it runs nothing.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import click
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "conclave"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][\w.-]*):(?:\s|$)")
_DOC = re.compile(r"^ *# -- ?(?P<text>.*)$")
_MORE = re.compile(r"^ *# ?(?P<text>.*)$")


@dataclasses.dataclass(frozen=True)
class Row:
    path: tuple[str, ...]
    type: str
    default: str
    description: str

    @property
    def key(self) -> str:
        return ".".join(self.path)


def documented(values_text: str) -> dict[tuple[str, ...], str]:
    """Each documented key's path and its text, in file order."""
    found: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in values_text.splitlines():
        if (doc := _DOC.match(line)) is not None:
            pending = [doc["text"]]
            continue
        if pending is not None and (more := _MORE.match(line)) is not None:
            pending.append(more["text"])
            continue
        if (key := _KEY.match(line)) is not None:
            indent = len(key["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, key["key"]))
            if pending is not None:
                found[tuple(name for _, name in stack)] = " ".join(pending).strip()
        if line.strip():  # a blank line keeps a comment block open for the key below it
            pending = None
    return found


def _schema_type(schema: dict[str, Any], path: tuple[str, ...]) -> str:
    node: dict[str, Any] = schema
    for name in path:
        node = node.get("properties", {}).get(name, {})
    if "enum" in node:
        return " \\| ".join(json.dumps(value) for value in node["enum"])
    kind = node.get("type")
    return " or ".join(kind) if isinstance(kind, list) else str(kind or "")


def _value(values: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = values
    for name in path:
        node = node[name]
    return node


def rows(chart: Path = CHART) -> list[Row]:
    """Every documented value of the chart, in the order of values.yaml."""
    text = (chart / "values.yaml").read_text()
    values = yaml.safe_load(text)
    schema = json.loads((chart / "values.schema.json").read_text())
    return [
        Row(
            path=path,
            type=_schema_type(schema, path) or type(_value(values, path)).__name__,
            default=json.dumps(_value(values, path), separators=(", ", ": ")),
            description=description,
        )
        for path, description in documented(text).items()
    ]


def render(chart: Path = CHART) -> str:
    """The chart's README.md."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    lines = [
        f"# {meta['name']}",
        "",
        meta["description"].strip(),
        "",
        "Generated from values.yaml by `make chart-docs` (conclave_harness.chartdocs); do not edit.",
        "",
        "```sh",
        f"helm install {meta['name']} charts/{meta['name']} -n conclave-system --create-namespace",
        "```",
        "",
        "## Values",
        "",
        "| Key | Type | Default | Description |",
        "|-----|------|---------|-------------|",
    ]
    for row in rows(chart):
        cells = (f"`{row.key}`", row.type, f"`{row.default}`", row.description.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@click.command("chart-docs")
@click.option(
    "--chart",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=CHART,
    show_default=True,
)
def chart_docs_command(chart: Path) -> None:
    """Write the chart's README.md from the `# --` comments of its values.yaml."""
    (chart / "README.md").write_text(render(chart))
    click.echo(f"Wrote {chart / 'README.md'}", err=True)

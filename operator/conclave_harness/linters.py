"""The platform team's linters, fetched once per machine and cached like helm and kubectl.

- kubeconform and kube-score are Go programs: ``go install`` from the Go module proxy, each
  pinned, into ``${XDG_CACHE_HOME:-~/.cache}/conclave/tools/<tool>-<version>/``.
- kubeconform's Kubernetes schemas come from PyPI: the kubernetes-validate package ships
  the JSON schemas of each Kubernetes release; only the pinned release's strict schemas are
  unpacked from it (kubeconform's default download is not reachable here), their references
  to the shared definitions made to resolve on disk.
- conclave's own CRDs become kubeconform schemas from the generated crds/ (their
  openAPIV3Schema, in the layout kubeconform's ``{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}``
  template expects), so the examples are validated against exactly what the API server gets.

kube-linter, pint and Grafana's dashboard-linter are not served by the module proxy (403);
their documented rules are applied by tests instead (tests/unit/test_dashboard.py,
tests/unit/test_rules.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import click
import yaml

from conclave_harness.errors import BuildError
from conclave_harness.localcluster.building import cache_root, exclusive


@dataclasses.dataclass(frozen=True)
class GoTool:
    name: str
    module: str
    version: str

    def directory(self, root: Path) -> Path:
        return root / "tools" / f"{self.name}-{self.version}"


KUBECONFORM = GoTool("kubeconform", "github.com/yannh/kubeconform/cmd/kubeconform", "v0.8.0")
KUBE_SCORE = GoTool("kube-score", "github.com/zegl/kube-score/cmd/kube-score", "v1.20.0")

SCHEMAS_PACKAGE = "kubernetes-validate"
SCHEMAS_VERSION = "1.37.0"
"""The package release, and so the Kubernetes release, whose schemas are used: the local
control plane's (v1.37)."""
KUBERNETES_VERSION = "1.37.0"


def ensure_go_tool(tool: GoTool, root: Path | None = None) -> Path:
    """The tool's binary, ``go install``-ed into the cache first when missing.

    Raises BuildError when Go is missing or the build fails.
    """
    target = tool.directory(root or cache_root())
    binary = target / tool.name
    if os.access(binary, os.X_OK):
        return binary
    with exclusive(target.parent / f".{tool.name}.lock"):
        if os.access(binary, os.X_OK):
            return binary
        go = shutil.which("go")
        if go is None:
            raise BuildError(f"Go is needed to build {tool.name} ({tool.module}@{tool.version})")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            result = subprocess.run(
                [go, "install", f"{tool.module}@{tool.version}"],
                env={**os.environ, "GOBIN": scratch, "GOFLAGS": "-mod=mod"},
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise BuildError(
                    f"`go install {tool.module}@{tool.version}` failed:\n{result.stderr[-3000:]}"
                )
            target.mkdir(exist_ok=True)
            os.replace(Path(scratch) / tool.name, binary)
    return binary


def schemas_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / "tools" / f"kubernetes-json-schema-{SCHEMAS_VERSION}"


def ensure_kubernetes_schemas(root: Path | None = None) -> Path:
    """The directory holding ``v<version>-local-strict/``, unpacked from kubernetes-validate's
    wheel (downloaded by pip, which checks it against the index) the first time."""
    target = schemas_dir(root)
    strict = f"v{KUBERNETES_VERSION}-local-strict"
    if (target / strict / "_definitions.json").exists():
        return target
    with exclusive(target.parent / ".schemas.lock"):
        if (target / strict / "_definitions.json").exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            download = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
            ]
            result = subprocess.run(
                [*download, "--dest", scratch, f"{SCHEMAS_PACKAGE}=={SCHEMAS_VERSION}"],
                capture_output=True,
                text=True,
                check=False,
            )
            wheels = list(Path(scratch).glob("*.whl"))
            if result.returncode != 0 or len(wheels) != 1:
                raise BuildError(f"`pip download {SCHEMAS_PACKAGE}` failed:\n{result.stderr[-3000:]}")
            prefix = f"kubernetes_validate/kubernetes-json-schema/{strict}/"
            unpacked = Path(scratch) / "schemas"
            with zipfile.ZipFile(wheels[0]) as archive:
                for name in archive.namelist():
                    if name.startswith(prefix) and not name.endswith("/"):
                        path = unpacked / strict / name.removeprefix(prefix)
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_text(_on_disk(archive.read(name), target / strict))
            if target.exists():
                shutil.rmtree(target)
            os.replace(unpacked, target)
    return target


def _on_disk(schema: bytes, directory: Path) -> str:
    """A schema whose references resolve on disk: its refs are root-relative
    (/api/_definitions.json) under a kubernetes.io ``$id``, for a web server; they become the
    file URL of the definitions in ``directory``, where the schema will live."""
    definitions = (directory / "_definitions.json").as_uri()
    return schema.decode().replace('"/api/_definitions.json#', f'"{definitions}#')


def crd_schemas(crds: list[dict[str, Any]], directory: Path) -> Path:
    """Write each CRD version's openAPIV3Schema where kubeconform's
    ``{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json`` template looks; return the
    directory. Strict like the Kubernetes schemas: no field a CRD does not declare."""
    for crd in crds:
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"].lower()
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            path = directory / group / f"{kind}_{version['name']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(schema))
    return directory


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with additionalProperties false wherever it lists properties and allows no
    others (the API server prunes unknown fields; a linter should name them). metadata is
    left open: the object's own metadata schema is not in the CRD."""
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            converted[key] = {
                name: sub if name == "metadata" else _strict(sub) for name, sub in value.items()
            }
        elif isinstance(value, dict):
            converted[key] = _strict(value)
        elif isinstance(value, list):
            converted[key] = [_strict(item) if isinstance(item, dict) else item for item in value]
        else:
            converted[key] = value
    preserved = schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in schema and "additionalProperties" not in schema and not preserved:
        converted["additionalProperties"] = False
    return converted


def load_crds(directory: Path) -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(directory.glob("*.yaml"))]


@click.command("lint-tools")
def lint_tools_command() -> None:
    """Fetch kubeconform, kube-score and the Kubernetes schemas into the cache, or reuse them."""
    try:
        for tool in (KUBECONFORM, KUBE_SCORE):
            click.echo(f"{tool.name} ready: {ensure_go_tool(tool)}", err=True)
        click.echo(f"Kubernetes schemas ready in {ensure_kubernetes_schemas()}", err=True)
    except BuildError as error:
        raise click.ClickException(str(error)) from error

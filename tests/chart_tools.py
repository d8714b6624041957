"""helm and kubectl, run for real against the test cluster, and what the chart's tests
create with them (plain helpers, no fixtures)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from conclave_harness import tools
from monitoring import CHART, ROOT
from support import create


@dataclasses.dataclass(frozen=True)
class Helm:
    """helm with the test cluster's kubeconfig; every failure shows helm's own message."""

    binary: Path
    kubeconfig: Path

    @classmethod
    def for_cluster(cls, kubeconfig: Path) -> Helm:
        return cls(tools.ensure_tools().helm, kubeconfig)

    def run(self, *args: str) -> str:
        result = self.attempt(*args)
        assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
        return result.stdout

    def attempt(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run helm whatever comes of it, for the tests that expect it to refuse."""
        return subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def template(
        self, release: str, namespace: str, values: Mapping[str, Any] | None = None, chart: Path = CHART
    ) -> list[dict[str, Any]]:
        """The rendered objects, parsed."""
        rendered = self.run("template", release, str(chart), "--namespace", namespace, *value_args(values))
        return [document for document in yaml.safe_load_all(rendered) if document]


def value_args(values: Mapping[str, Any] | None) -> list[str]:
    """``--set-json`` per top-level key: exact types, no string parsing of lists and maps."""
    return [
        arg for key, value in (values or {}).items() for arg in ("--set-json", f"{key}={json.dumps(value)}")
    ]


def kinds(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Kind → the names of the rendered objects of that kind, sorted."""
    found: dict[str, list[str]] = {}
    for item in objects:
        found.setdefault(item["kind"], []).append(item["metadata"]["name"])
    return {kind: sorted(names) for kind, names in sorted(found.items())}


def static_topology(api_client: Any, namespace: str, *hosts: str) -> None:
    """A ClusterTopology ``chat`` of fixed hosts: reconciled with no pods and no probes."""
    spec = {"strategy": "Static", "hosts": list(hosts)}
    create(
        api_client,
        namespace,
        "clustertopologies",
        {"kind": "ClusterTopology", "metadata": {"name": "chat"}, "spec": spec},
    )


def apply_crds(kubectl: Path, kubeconfig: Path) -> None:
    """The CRDs of crds/, as a user installs them (server-side, taking over fields another
    installer set), then established."""
    for args in (
        ["apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")],
        ["wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds")],
    ):
        result = subprocess.run(
            [str(kubectl), "--kubeconfig", str(kubeconfig), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stdout}{result.stderr}"

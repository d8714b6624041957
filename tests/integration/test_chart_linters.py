"""The chart as a platform team's CI checks it, with the real linters (conclave_harness.linters):
kubeconform -strict on the chart rendered with its defaults and with every option on, on the
install manifest and on the examples; kube-score with no CRITICAL or WARNING finding but the
ones charts/conclave/ci/kube-score.yaml leaves off, each with its reason. No cluster needed."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart_tools import Helm, value_args
from conclave_harness import linters, tools
from monitoring import CHART, ROOT

RENDERS = {
    "defaults": {},
    "every-option": yaml.safe_load((CHART / "ci" / "every-option-values.yaml").read_text()),
}
IGNORED: dict[str, dict[str, Any]] = yaml.safe_load((CHART / "ci" / "kube-score.yaml").read_text())
PROMETHEUS_OPERATOR_KINDS = "ServiceMonitor,PodMonitor,PrometheusRule"
"""No schema for them is reachable here (the Prometheus Operator's CRDs ship from GitHub);
kubeconform skips them by name. Their fields are checked by rendering in test_chart.py, and
the ServiceMonitor's meaning by a real Prometheus in test_chart_scrape.py."""


CRD_LAYOUT = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
"""Where conclave_harness.linters.crd_schemas writes each of our CRDs' schemas."""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each render of the chart, as one file of YAML documents."""
    directory = tmp_path_factory.mktemp("rendered")
    helm = Helm(tools.ensure_tools().helm, directory / "no-kubeconfig")
    files = {}
    for name, values in RENDERS.items():
        files[name] = directory / f"{name}.yaml"
        files[name].write_text(
            helm.run("template", "conclave", str(CHART), "-n", "conclave-system", *value_args(values))
        )
    return files


@pytest.fixture(scope="module")
def crd_schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return linters.crd_schemas(linters.load_crds(ROOT / "crds"), tmp_path_factory.mktemp("crd-schemas"))


def kubeconform(crd_schemas: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    schemas = linters.ensure_kubernetes_schemas()
    command = [
        str(linters.ensure_go_tool(linters.KUBECONFORM)),
        "-strict", "-summary", "-output", "text",
        "-kubernetes-version", linters.KUBERNETES_VERSION,
        "-schema-location",
        f"{schemas}/{{{{ .NormalizedKubernetesVersion }}}}-local{{{{ .StrictSuffix }}}}/"
        "{{ .ResourceKind }}{{ .KindSuffix }}.json",
        "-schema-location", f"{crd_schemas}/{CRD_LAYOUT}",
        "-skip", PROMETHEUS_OPERATOR_KINDS,
        *map(str, paths),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.parametrize("render", sorted(RENDERS))
def test_kubeconform_strict_accepts_the_rendered_chart(
    rendered: dict[str, Path], crd_schemas: Path, render: str
) -> None:
    result = kubeconform(crd_schemas, rendered[render])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0" in result.stdout


def test_kubeconform_strict_accepts_the_install_manifest_and_the_examples(crd_schemas: Path) -> None:
    result = kubeconform(crd_schemas, ROOT / "manifests" / "install.yaml", ROOT / "manifests" / "examples")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0" in result.stdout


def test_kubeconform_refuses_a_misspelt_field_of_our_own_kinds(crd_schemas: Path, tmp_path: Path) -> None:
    """The CRD schemas are strict too: a field the CRD does not declare is an error."""
    example = tmp_path / "topology.yaml"
    example.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "conclave.dev/v1alpha1",
                "kind": "ClusterTopology",
                "metadata": {"name": "chat"},
                "spec": {"strategy": "Static", "hosts": ["chat@10.0.0.1"], "stratgey": "Static"},
            }
        )
    )
    result = kubeconform(crd_schemas, example)
    assert result.returncode == 1
    assert "stratgey" in result.stdout


@pytest.mark.parametrize("render", sorted(RENDERS))
def test_kube_score_finds_nothing_critical_or_warning(rendered: dict[str, Path], render: str) -> None:
    ignored = sorted(test for test, entry in IGNORED.items() if render in entry["renders"])
    command = [str(linters.ensure_go_tool(linters.KUBE_SCORE)), "score", "--output-format", "ci"]
    command += [arg for test in ignored for arg in ("--ignore-test", test)]
    result = subprocess.run([*command, str(rendered[render])], capture_output=True, text=True, check=False)
    findings = [line for line in result.stdout.splitlines() if line.startswith(("[CRITICAL]", "[WARNING]"))]
    assert findings == [], result.stdout
    assert "[OK]" in result.stdout


def test_each_kube_score_exception_has_a_reason_and_is_still_needed(rendered: dict[str, Path]) -> None:
    """With every other exception in place, each one's check still fails its renders:
    an exception whose check passes anyway is stale and must go."""
    binary = str(linters.ensure_go_tool(linters.KUBE_SCORE))
    for test, entry in IGNORED.items():
        assert len(entry["reason"]) > 80, test
        others = [arg for other in IGNORED if other != test for arg in ("--ignore-test", other)]
        for render in entry["renders"]:
            result = subprocess.run(
                [binary, "score", "--output-format", "ci", *others, str(rendered[render])],
                capture_output=True,
                text=True,
                check=False,
            )
            assert any(line.startswith("[CRITICAL]") for line in result.stdout.splitlines()), (test, render)

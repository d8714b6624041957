"""The dashboard's and the alert rules' PromQL, read from the chart, for the tests that check
them against the operator's registry (unit) and a real Prometheus (integration), and that
Prometheus."""

from __future__ import annotations

import json
import math
import re
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from conclave_harness import tools
from conclave_harness.localcluster.clusters import free_port
from support import eventually

ROOT = Path(__file__).parents[1]
CHART = ROOT / "charts" / "conclave"
DASHBOARD = CHART / "dashboards" / "conclave.json"
RULES = CHART / "rules" / "conclave.rules.yaml"

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}
"""What prometheus_client appends to a family's name in the exposition, by type."""

LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    """Every panel that queries, rows excluded."""
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expression) of every query in the dashboard."""
    return [(panel["title"], target["expr"]) for panel in panels() for target in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects: every identifier that is not a function,
    an aggregation, a keyword, a label, a string or a duration."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", stripped)
    stripped = LABEL_LISTS.sub(" ", stripped)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][\w:]*", stripped):
        if not stripped[match.end() :].lstrip().startswith("(") and match[0].lower() not in KEYWORDS:
            names.add(match[0])
    return names


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry exposes, children or not yet."""
    return {
        family.name + suffix for family in registry.collect() for suffix in SUFFIXES.get(family.type, ("",))
    }


def concrete(expression: str, rate_interval: str) -> str:
    """The expression as Grafana would send it with every variable on All."""
    for variable in ("namespace", "topology"):
        expression = expression.replace(f'=~"${variable}"', '=~".*"')
    return expression.replace("$__rate_interval", rate_interval)


class Prometheus:
    """A real Prometheus (Debian's), on loopback only, scraping the given targets every
    second into a throwaway storage directory; stopped by its PID."""

    def __init__(self, directory: Path, targets: list[str]) -> None:
        self.directory = directory
        self.targets = targets
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "conclave", "static_configs": [{"targets": self.targets}]}],
        }
        (self.directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = (self.directory / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                str(tools.debian_tool("prometheus")),
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        eventually(self._ready, timeout=30)
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def _ready(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            raise AssertionError(f"Prometheus exited:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def log(self) -> str:
        return (self.directory / "prometheus.log").read_text(errors="replace")

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar) the expression evaluates to now."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
        with urllib.request.urlopen(address, timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        data = body["data"]
        return data["result"] if data["resultType"] == "vector" else [{"value": data["result"]}]


def has_data(samples: list[dict[str, Any]]) -> bool:
    """At least one sample is a number: NaN (a quantile over no observations) is no data."""
    return any(not math.isnan(float(sample["value"][1])) for sample in samples)

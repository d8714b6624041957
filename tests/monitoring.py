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


ALL_VALUES = {"cluster": ".*", "job": ".+", "instance": ".+", "namespace": ".*", "topology": ".*"}
"""Each query variable's value on All (its allValue in the dashboard)."""


def concrete(expression: str, rate_interval: str) -> str:
    """The expression as Grafana would send it with every variable on All."""
    for variable, value in ALL_VALUES.items():
        expression = expression.replace(f'=~"${variable}"', f'=~"{value}"')
    return expression.replace("$__rate_interval", rate_interval)


class Prometheus:
    """A real Prometheus (Debian's), on loopback only, scraping the given targets every
    second into a throwaway storage directory; stopped by its PID."""

    def __init__(
        self, directory: Path, targets: list[str], scrape_configs: list[dict[str, Any]] | None = None
    ) -> None:
        """Scrape ``targets`` as the job ``conclave``, or use ``scrape_configs`` as given (for
        the relabelling the Prometheus Operator generates)."""
        self.directory = directory
        self.targets = targets
        self.scrape_configs = scrape_configs or [
            {"job_name": "conclave", "static_configs": [{"targets": targets}]}
        ]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": self.scrape_configs,
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


FORWARDER = """
import asyncio, sys

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()

async def main(listen, port, target, target_port):
    async def serve(reader, writer):
        upstream_reader, upstream_writer = await asyncio.open_connection(target, target_port)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(serve, listen, port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
"""
"""A TCP forwarder, run inside the pod network at a pod's IP, so that a scrape of the pod
reaches a process that runs on the host (``python -c FORWARDER listen port target port``)."""


def _snake(relabeling: dict[str, Any]) -> dict[str, Any]:
    """A monitoring.coreos.com RelabelConfig as Prometheus spells it (sourceLabels → source_labels)."""
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): value for key, value in relabeling.items()}


def _label_name(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def endpointslice_targets(
    slices: list[dict[str, Any]], services: dict[str, dict[str, Any]], pods: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """What Prometheus' kubernetes_sd (role endpointslice) discovers from these objects, as
    static target groups: one per endpoint address and port, with the same ``__meta_kubernetes_*``
    labels (discovery/kubernetes/endpointslice.go). Debian's Prometheus is built without the
    Kubernetes discovery, so the test reads the objects from the API server and hands them over
    this way; the relabelling then runs in Prometheus itself."""
    groups = []
    for item in slices:
        meta = item["metadata"]
        service = services.get(meta.get("labels", {}).get("kubernetes.io/service-name", ""), {})
        common = {
            "__meta_kubernetes_namespace": meta["namespace"],
            "__meta_kubernetes_endpointslice_name": meta["name"],
            "__meta_kubernetes_endpointslice_address_type": item["addressType"],
        }
        if service:
            common["__meta_kubernetes_service_name"] = service["metadata"]["name"]
            for key, value in service["metadata"].get("labels", {}).items():
                common[f"__meta_kubernetes_service_label_{_label_name(key)}"] = value
                common[f"__meta_kubernetes_service_labelpresent_{_label_name(key)}"] = "true"
        for endpoint in item.get("endpoints") or []:
            target = endpoint.get("targetRef", {})
            labels = {
                **common,
                "__meta_kubernetes_endpointslice_endpoint_conditions_ready": str(
                    endpoint.get("conditions", {}).get("ready", False)
                ).lower(),
                "__meta_kubernetes_endpointslice_address_target_kind": target.get("kind", ""),
                "__meta_kubernetes_endpointslice_address_target_name": target.get("name", ""),
            }
            pod = pods.get(target.get("name", "")) if target.get("kind") == "Pod" else None
            if pod is not None:
                labels["__meta_kubernetes_pod_name"] = pod["metadata"]["name"]
                labels["__meta_kubernetes_pod_phase"] = pod["status"].get("phase", "")
                labels["__meta_kubernetes_pod_node_name"] = pod["spec"].get("nodeName", "")
                for key, value in pod["metadata"].get("labels", {}).items():
                    labels[f"__meta_kubernetes_pod_label_{_label_name(key)}"] = value
            for port in item.get("ports") or []:
                port_labels = {
                    "__meta_kubernetes_endpointslice_port_name": port.get("name", ""),
                    "__meta_kubernetes_endpointslice_port_protocol": port.get("protocol", "TCP"),
                    "__meta_kubernetes_endpointslice_port": str(port["port"]),
                }
                if pod is not None:
                    for container in pod["spec"]["containers"]:
                        if any(c.get("containerPort") == port["port"] for c in container.get("ports", [])):
                            port_labels["__meta_kubernetes_pod_container_name"] = container["name"]
                for address in endpoint["addresses"]:
                    groups.append(
                        {"targets": [f"{address}:{port['port']}"], "labels": {**labels, **port_labels}}
                    )
    return groups


def service_monitor_scrape_config(
    monitor: dict[str, Any], targets: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The scrape configs the Prometheus Operator generates for a ServiceMonitor (its
    ``generateServiceMonitorConfig``, role endpointslice), one per endpoint, with the targets
    kubernetes_sd would have discovered given as static target groups (``endpointslice_targets``).
    Covers what the chart's ServiceMonitor uses: matchLabels, namespaceSelector.matchNames, a
    named port, path, interval, timeout, honorLabels, relabelings and metricRelabelings."""
    meta, spec = monitor["metadata"], monitor["spec"]
    configs = []
    for index, endpoint in enumerate(spec["endpoints"]):
        relabel: list[dict[str, Any]] = [
            {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}
        ]
        namespaces = spec["namespaceSelector"]["matchNames"]
        relabel.append(
            {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_namespace"],
                "regex": "|".join(namespaces),
            }
        )
        for label, value in sorted(spec["selector"].get("matchLabels", {}).items()):
            name = _label_name(label)
            relabel.append(
                {
                    "action": "keep",
                    "source_labels": [
                        f"__meta_kubernetes_service_label_{name}",
                        f"__meta_kubernetes_service_labelpresent_{name}",
                    ],
                    "regex": f"({value});true",
                }
            )
        relabel += [
            {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_endpointslice_port_name"],
                "regex": endpoint["port"],
            },
            {
                "source_labels": [
                    "__meta_kubernetes_endpointslice_address_target_kind",
                    "__meta_kubernetes_endpointslice_address_target_name",
                ],
                "separator": ";",
                "regex": "Node;(.*)",
                "replacement": "${1}",
                "target_label": "node",
            },
            {
                "source_labels": [
                    "__meta_kubernetes_endpointslice_address_target_kind",
                    "__meta_kubernetes_endpointslice_address_target_name",
                ],
                "separator": ";",
                "regex": "Pod;(.*)",
                "replacement": "${1}",
                "target_label": "pod",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
            {
                "action": "drop",
                "source_labels": ["__meta_kubernetes_pod_phase"],
                "regex": "(Failed|Succeeded)",
            },
            {
                "source_labels": ["__meta_kubernetes_service_name"],
                "target_label": "job",
                "replacement": "${1}",
            },
            {"target_label": "endpoint", "replacement": endpoint["port"]},
            *(_snake(r) for r in endpoint.get("relabelings", [])),
        ]
        configs.append(
            {
                "job_name": f"serviceMonitor/{meta['namespace']}/{meta['name']}/{index}",
                "honor_labels": bool(endpoint.get("honorLabels", False)),
                "honor_timestamps": True,
                "static_configs": targets,
                "scrape_interval": endpoint.get("interval", "30s"),
                "scrape_timeout": endpoint.get("scrapeTimeout", "10s"),
                "metrics_path": endpoint.get("path", "/metrics"),
                "scheme": "http",
                "relabel_configs": relabel,
                "metric_relabel_configs": [_snake(r) for r in endpoint.get("metricRelabelings", [])],
            }
        )
    return configs

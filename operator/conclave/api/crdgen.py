"""CustomResourceDefinitions generated from the pydantic models, the one source of truth.

pydantic's JSON schema is close to what Kubernetes wants, but not structural: it has
``$ref``/``$defs``, ``anyOf`` with a null branch for every optional field, titles, and
``default: null``. ``structural`` rewrites it; the rest (printer columns, names, the
status subresource) is declared per kind here. The output is deterministic, so the
committed ``crds/`` can be compared with a fresh generation: schema keywords are sorted,
properties keep the order the models declare them in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import yaml

from conclave.api.base import GROUP, VERSION, Resource
from conclave.api.processgroups import ProcessGroup
from conclave.api.singletons import Singleton
from conclave.api.topologies import ClusterTopology

JSON = dict[str, Any]
KEPT_KEYS = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "pattern",
    "format",
    "additionalProperties",
}


@dataclasses.dataclass(frozen=True)
class Kind:
    model: type[Resource]
    plural: str
    short_names: tuple[str, ...]
    description: str
    columns: tuple[tuple[str, str, str, str], ...]
    """(name, type, JSONPath, description) of each printer column; AGE is appended."""


KINDS = (
    Kind(
        ClusterTopology,
        "clustertopologies",
        ("ctopo", "topology"),
        "The members of a clustered workload, discovered through its headless Service, and "
        "whether the cluster is split.",
        (
            ("Strategy", "string", ".spec.strategy", "How members are discovered."),
            ("Members", "integer", ".status.memberCount", "Discovered members."),
            ("Ready", "integer", ".status.readyMembers", "Members that count as ready."),
            ("Partition", "string", ".status.partition.state", "Healthy, Partitioned, Degraded or Unknown."),
        ),
    ),
    Kind(
        ProcessGroup,
        "processgroups",
        ("pgroup",),
        "Erlang's :pg for pods: the members of a named group, published as DNS.",
        (
            ("Scope", "string", ".spec.scope", "The group's scope."),
            ("Group", "string", ".spec.group", "The group's name."),
            ("Members", "integer", ".status.count", "How many members the group has."),
        ),
    ),
    Kind(
        Singleton,
        "singletons",
        ("single",),
        "One process for the whole cluster, owned by one member at a time, fenced by a Lease.",
        (
            ("Owner", "string", ".status.owner", "The owning member."),
            ("Epoch", "integer", ".status.epoch", "The fencing token."),
            ("Phase", "string", ".status.phase", "Pending, Placed, Moving or Fenced."),
            ("Policy", "string", ".spec.partitionPolicy", "Fence or Continue."),
        ),
    ),
)


def structural(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> JSON:
    """Turn a pydantic JSON schema node into a Kubernetes structural schema node."""
    node: JSON = dict(schema)
    if "$ref" in node:
        target = definitions[node.pop("$ref").split("/")[-1]]
        node = {**target, **node}
    if "anyOf" in node:
        branches = [branch for branch in node.pop("anyOf") if branch.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {branches}")
        outer = {key: value for key, value in node.items() if key != "default" or value is not None}
        node = {**structural(branches[0], definitions), **outer}
    if node.get("default", ...) is None:
        del node["default"]
    result: JSON = {}
    for key, value in node.items():
        if key == "properties":
            result[key] = {name: structural(child, definitions) for name, child in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, Mapping)):
            result[key] = structural(value, definitions)
        elif key in KEPT_KEYS or key.startswith("x-kubernetes-"):
            result[key] = value
    return dict(sorted(result.items()))


def schema_of(kind: Kind) -> JSON:
    fields = kind.model.model_fields
    spec_model = fields["spec"].annotation
    status_model = fields["status"].annotation
    assert isinstance(spec_model, type)
    assert isinstance(status_model, type)

    def of(model: type[Any]) -> JSON:
        generated = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        return structural(generated, generated.get("$defs", {}))

    def described(node: JSON, description: str) -> JSON:
        return dict(sorted({**node, "description": description}.items()))

    return {
        "description": kind.description,
        "properties": {
            "apiVersion": {"description": "conclave.dev/v1alpha1", "type": "string"},
            "kind": {"description": kind.model.__name__, "type": "string"},
            "metadata": {"type": "object"},
            "spec": described(of(spec_model), f"The desired {kind.model.__name__}."),
            "status": described(of(status_model), "What the operator observed and decided."),
        },
        "required": ["spec"],
        "type": "object",
    }


def crd(kind: Kind) -> JSON:
    name = kind.model.__name__
    columns = [
        {"name": column, "type": kind_type, "jsonPath": path, "description": description}
        for column, kind_type, path, description in kind.columns
    ]
    columns.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "conclave", "app.kubernetes.io/part-of": "conclave"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": name,
                "listKind": f"{name}List",
                "plural": kind.plural,
                "singular": name.lower(),
                "shortNames": list(kind.short_names),
                "categories": ["conclave"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema_of(kind)},
                }
            ],
        },
    }


def all_crds() -> list[JSON]:
    return [crd(kind) for kind in KINDS]


def file_name(definition: Mapping[str, Any]) -> str:
    """``conclave.dev_clustertopologies.yaml``, as controller-gen names CRD files."""
    spec = definition["spec"]
    return f"{spec['group']}_{spec['names']['plural']}.yaml"


def render(definition: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(definition), sort_keys=False, width=110)


def chart_template(definition: Mapping[str, Any]) -> str:
    """The CRD as a Helm template: behind ``crds.enabled``, kept on uninstall by ``crds.keep``.

    The chart installs CRDs from templates/, not crds/, because Helm never upgrades what
    sits in crds/ (cert-manager's layout). Only the metadata is templated; the spec is the
    same rendering as ``crds/``, so the two copies cannot drift apart.
    """
    spec = render({"spec": definition["spec"]})
    if "{{" in spec:
        raise ValueError(
            f"{definition['metadata']['name']}: '{{{{' in the schema would be read as a template"
        )
    header = "\n".join(
        [
            "{{- if .Values.crds.enabled }}",
            f"apiVersion: {definition['apiVersion']}",
            f"kind: {definition['kind']}",
            "metadata:",
            f"  name: {definition['metadata']['name']}",
            "  labels:",
            '    {{- include "conclave.labels" . | nindent 4 }}',
            "  {{- if .Values.crds.keep }}",
            "  annotations:",
            "    helm.sh/resource-policy: keep",
            "  {{- end }}",
        ]
    )
    return f"{header}\n{spec}{{{{- end }}}}\n"

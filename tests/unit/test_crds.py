"""The CRDs are generated from the models: the committed ones are fresh and structural."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conclave.api import ClusterTopology, ProcessGroup, Singleton, crdgen

ROOT = Path(__file__).parents[2]
MODELS = {"ClusterTopology": ClusterTopology, "ProcessGroup": ProcessGroup, "Singleton": Singleton}


@pytest.mark.parametrize("definition", crdgen.all_crds(), ids=lambda d: d["metadata"]["name"])
def test_the_committed_crd_is_what_the_models_generate(definition: dict[str, Any]) -> None:
    committed = ROOT / "crds" / crdgen.file_name(definition)
    assert committed.exists(), f"{committed} is missing: run `make crds`"
    assert committed.read_text() == crdgen.render(definition), f"{committed} is stale: run `make crds`"


def test_no_stray_files_in_crds() -> None:
    assert sorted(p.name for p in (ROOT / "crds").iterdir()) == sorted(
        crdgen.file_name(d) for d in crdgen.all_crds()
    )


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def schemas() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for definition in crdgen.all_crds():
        root = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in nodes(root):
            yield definition["spec"]["names"]["kind"], path, node


def test_every_schema_node_is_structural() -> None:
    problems = [
        f"{kind}{path}: {sorted(set(node) & {'$ref', 'anyOf', 'oneOf', 'allOf', 'title', '$defs'})}"
        for kind, path, node in schemas()
        if "type" not in node or set(node) & {"$ref", "anyOf", "oneOf", "allOf", "title", "$defs"}
    ]
    assert problems == []


def test_every_string_list_and_map_is_bounded_so_cel_costs_stay_low() -> None:
    unbounded = [
        f"{kind}{path}"
        for kind, path, node in schemas()
        if (
            node["type"] == "string"
            and "maxLength" not in node
            and "enum" not in node
            and "format" not in node
        )
        or (node["type"] == "array" and "maxItems" not in node)
        or (node["type"] == "object" and "additionalProperties" in node and "maxProperties" not in node)
    ]
    assert unbounded == [f"{kind}.{field}" for kind in MODELS for field in ("apiVersion", "kind")]


def test_every_field_is_documented() -> None:
    undocumented = [
        f"{kind}{path}"
        for kind, path, node in schemas()
        if "description" not in node and not path.endswith(("[]", "}")) and path != ".metadata"
    ]
    assert undocumented == []


def test_printer_columns_and_names_let_kubectl_get_conclave_list_everything() -> None:
    summary = {
        d["spec"]["names"]["kind"]: (
            d["spec"]["names"]["categories"],
            [c["name"] for c in d["spec"]["versions"][0]["additionalPrinterColumns"]],
            d["spec"]["versions"][0]["subresources"],
        )
        for d in crdgen.all_crds()
    }
    assert summary == {
        "ClusterTopology": (
            ["conclave"],
            ["Strategy", "Members", "Ready", "Partition", "Age"],
            {"status": {}},
        ),
        "ProcessGroup": (["conclave"], ["Scope", "Group", "Members", "Age"], {"status": {}}),
        "Singleton": (["conclave"], ["Owner", "Epoch", "Phase", "Policy", "Age"], {"status": {}}),
    }


@pytest.mark.parametrize(
    "example", sorted((ROOT / "manifests" / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_example_parses_with_the_models(example: Path) -> None:
    for document in yaml.safe_load_all(example.read_text()):
        if document and document["apiVersion"].startswith("conclave.dev/"):
            MODELS[document["kind"]].from_api(document)

"""What every conclave resource shares: metadata, conditions, label selectors, and the
model configuration (camelCase on the wire, snake_case in Python)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from conclave.api.times import Timestamp
from conclave.errors import FieldError, SpecError

GROUP = "conclave.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

MAX_NAME = 253
MAX_LIST = 500
"""The bound on every list in a schema: keeps the API server's CEL cost estimate small."""

Name = Annotated[str, Field(max_length=MAX_NAME)]

# Label syntax as Kubernetes validates it (apimachinery's IsQualifiedName and IsValidLabelValue).
# The regexes use [.] for a dot: a backslash would need escaping again inside a CEL string.
LABEL_NAME_PATTERN = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
DNS_SUBDOMAIN_PATTERN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_KEY_PATTERN = rf"^({DNS_SUBDOMAIN_PATTERN}/)?{LABEL_NAME_PATTERN}$"
"""A qualified name: an optional DNS-subdomain prefix and a slash, then a name of at most 63
characters of [A-Za-z0-9-_.], starting and ending alphanumeric."""
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LABEL_KEY_PROBLEM = (
    "must be a qualified name: an optional DNS subdomain prefix of at most 253 characters and '/', "
    "then at most 63 characters of [A-Za-z0-9-_.] starting and ending alphanumeric"
)

LabelValue = Annotated[
    str,
    Field(
        max_length=63,
        pattern=LABEL_VALUE_PATTERN,
        description="At most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric; or empty.",
    ),
]


class Model(BaseModel):
    """Reads what the API server stored (already validated, so unknown fields are ignored)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    def wire(self) -> dict[str, Any]:
        """The fields set on this model, as the API spells them (a field set to None is
        there as null: in a merge patch, "remove it")."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Metadata(Model):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Condition(Model):
    """A metav1.Condition."""

    type: str = Field(max_length=316, description="The aspect of the object this condition is about.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        max_length=1024,
        min_length=1,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="A CamelCase word saying why the condition has its status.",
    )
    message: str = Field(default="", max_length=32768, description="What a human needs to know.")
    last_transition_time: Timestamp = Field(description="When the status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation the condition was decided for."
    )


def conditions_field() -> Any:
    return Field(
        default_factory=list,
        max_length=32,
        description="The latest observations of the object's state (metav1.Condition).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class LabelSelectorRequirement(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(self.operator in ['In', 'NotIn']) "
                    "|| (has(self.values) && size(self.values) > 0)",
                    "message": "values must list at least one value for the In and NotIn operators",
                    "fieldPath": ".values",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) "
                    "|| size(self.values) == 0",
                    "message": "values must be empty for the Exists and DoesNotExist operators",
                    "fieldPath": ".values",
                    "reason": "FieldValueForbidden",
                },
            ]
        }
    )

    key: str = Field(
        max_length=317,
        pattern=LABEL_KEY_PATTERN,
        description="The label key the requirement applies to (a qualified name, like a label's key).",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.indexOf('/') <= 253",
                    "message": "the prefix of a label key is at most 253 characters",
                }
            ]
        },
    )
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How key and values relate."
    )
    values: list[LabelValue] = Field(
        default_factory=list,
        max_length=64,
        description="Values for In and NotIn; empty for Exists and DoesNotExist.",
    )


Compiled = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str, frozenset[str]], ...]]
"""A selector's matchLabels pairs, and its requirements as (key, operator, values)."""


class LabelSelector(Model):
    """A metav1.LabelSelector: all of matchLabels and matchExpressions must hold."""

    match_labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        description="Labels a pod must carry, with these values.",
        json_schema_extra={
            "maxProperties": 64,
            "x-kubernetes-validations": [
                {
                    "rule": f"self.all(k, k.size() <= 317 && k.matches('{LABEL_KEY_PATTERN}') "
                    "&& k.indexOf('/') <= 253)",
                    "message": f"every key {LABEL_KEY_PROBLEM}",
                }
            ],
        },
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=32, description="Set-based requirements on the pod's labels."
    )

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy every matchLabels pair and every requirement."""
        pairs, requirements = self._compiled
        for key, value in pairs:
            if labels.get(key) != value:
                return False
        for key, operator, values in requirements:
            if operator == "In":
                if labels.get(key) not in values:
                    return False
            elif operator == "NotIn":
                if key in labels and labels[key] in values:
                    return False
            elif (key in labels) != (operator == "Exists"):  # Exists, DoesNotExist
                return False
        return True

    @property
    def _compiled(self) -> Compiled:
        """The selector as plain tuples, the values of In and NotIn as sets: worked out once
        per selector (its fields are what it was compiled from; a copy with other fields
        compiles afresh)."""
        cached: tuple[object, object, Compiled] | None = self.__dict__.get("_selector_compiled")
        if cached is not None and cached[0] is self.match_labels and cached[1] is self.match_expressions:
            return cached[2]
        compiled = (
            tuple(self.match_labels.items()),
            tuple((r.key, r.operator, frozenset(r.values)) for r in self.match_expressions),
        )
        self.__dict__["_selector_compiled"] = (self.match_labels, self.match_expressions, compiled)
        return compiled


class Resource(Model):
    """A namespaced conclave resource: subclasses set their spec and status types."""

    api_version: str = API_VERSION
    kind: str = ""
    metadata: Metadata = Field(default_factory=Metadata)

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> Self:
        """Parse an object as the API server returns it (a missing status reads as empty).

        Raises SpecError naming every field the model refuses, by its path on the wire.
        """
        try:
            return cls.model_validate({**body, "status": body.get("status") or {}})
        except pydantic.ValidationError as error:
            raise SpecError(field_errors(error, body)) from None


def field_errors(error: pydantic.ValidationError, body: Mapping[str, Any]) -> tuple[FieldError, ...]:
    """pydantic's errors as field errors: ``spec.partition.stableAfter: "-5s" <problem>``.

    Locations are the wire's (camelCase), since models are validated by alias; a missing
    field shows no value.
    """
    found = []
    for item in error.errors(include_url=False):
        path = ".".join(str(part) if isinstance(part, str) else f"[{part}]" for part in item["loc"])
        path = path.replace(".[", "[")
        missing = item["type"] == "missing"
        value = "" if missing else json.dumps(item.get("input"), default=str)[:200]
        found.append(FieldError(path, value, _problem(item["msg"]) if not missing else "is required"))
    return tuple(found) or (FieldError("spec", json.dumps(body.get("spec"), default=str)[:200], str(error)),)


def _problem(message: str) -> str:
    """pydantic's "Input should be ..." as the rest of a sentence about the value."""
    for prefix, replacement in (
        ("Input should be", "should be"),
        ("String should", "should"),
        ("Value error, ", ""),
    ):
        if message.startswith(prefix):
            return replacement + message[len(prefix) :]
    return message[:1].lower() + message[1:]

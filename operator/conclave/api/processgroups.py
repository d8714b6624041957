"""ProcessGroup: Erlang's :pg for pods, published as a headless Service and EndpointSlice."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from pydantic.config import JsonDict

from conclave.api import terms
from conclave.api.base import (
    MAX_LIST,
    MAX_NAME,
    Condition,
    LabelSelector,
    Model,
    Name,
    Resource,
    conditions_field,
)
from conclave.api.times import Timestamp

IMMUTABLE: JsonDict = {
    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "is immutable once set"}]
}


def topology_field() -> object:
    return Field(
        min_length=1,
        max_length=MAX_NAME,
        description="The ClusterTopology, in the same namespace, whose members this refers to. Immutable.",
        json_schema_extra=IMMUTABLE,
    )


class ProcessGroupSpec(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.source != 'Pods' || has(self.selector)",
                    "message": "spec.selector is required for source Pods",
                    "fieldPath": ".selector",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "self.source != 'Erlang' || !has(self.selector)",
                    "message": "spec.selector is only for source Pods: with source Erlang the members "
                    "are the processes pg reports",
                    "fieldPath": ".selector",
                    "reason": "FieldValueForbidden",
                },
            ]
        }
    )

    topology: str = topology_field()  # type: ignore[assignment]
    source: Literal["Pods", "Erlang"] = Field(
        default="Pods",
        description="Pods: the members are the topology's members whose pod matches the selector; "
        "Erlang: the real processes, each node's pg:get_local_members(Scope, Group) over Erlang "
        "distribution (the topology's probe.type must be erlang).",
    )
    scope: str = Field(
        default="default",
        min_length=1,
        max_length=63,
        description="Like a :pg scope: groups of the same name in different scopes never mix. With "
        "source Erlang, the pg scope as an Erlang atom (pubsub).",
    )
    group: str = Field(
        min_length=1,
        max_length=MAX_NAME,
        description="The group's name within its scope. With source Erlang, the pg group as an Erlang "
        'term written as text, literals only, never evaluated ({subscribers, <<"orders">>}).',
    )
    selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="The pods whose topology members belong to the group (source Pods).",
    )

    @field_validator("scope", "group")
    @classmethod
    def _erlang_terms(cls, value: str, info: ValidationInfo) -> str:
        """With source Erlang, scope and group must be Erlang literals."""
        if info.data.get("source") == "Erlang":
            try:
                parsed = terms.parse(value)
            except terms.TermSyntaxError as error:
                raise ValueError(f"is not an Erlang literal: {error}") from None
            if info.field_name == "scope" and not isinstance(parsed, terms.Atom):
                raise ValueError("is not an atom, as a pg scope is")
        return value

    min_members: int = Field(
        default=1, ge=0, le=100000, description="Below this, the group is not Populated (and alerts fire)."
    )


class ProcessGroupStatus(Model):
    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")
    members: list[Name] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="Node names of the members (ready topology members whose pod matches the selector).",
    )
    count: int | None = Field(default=None, ge=0, description="How many members the group has.")
    members_by_node: dict[str, int] = Field(
        default_factory=dict,
        description="Members per Kubernetes node: the get_local_members view.",
        json_schema_extra={"maxProperties": MAX_LIST},
    )
    service_name: str | None = Field(
        default=None,
        max_length=63,
        description=(
            "The headless Service that publishes the members: a DNS-1035 name from scope and group, "
            "with a hash suffix when that is lossy, too long or held by another object; kept once "
            "given, unless scope or group change (then the old Service and its EndpointSlice are deleted)."
        ),
    )
    last_change: Timestamp | None = Field(default=None, description="When membership last changed.")
    conditions: list[Condition] = conditions_field()


class ProcessGroup(Resource):
    kind: str = "ProcessGroup"
    spec: ProcessGroupSpec
    status: ProcessGroupStatus = Field(default_factory=ProcessGroupStatus)

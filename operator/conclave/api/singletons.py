"""Singleton: one owner at a time, placed Horde-style and fenced by a Lease."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from conclave.api import durations
from conclave.api.base import MAX_NAME, Condition, LabelSelector, Model, Resource, conditions_field
from conclave.api.processgroups import topology_field
from conclave.api.times import Timestamp


class PinTo(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.member) != has(self.selector)",
                    "message": "set exactly one of member, selector",
                }
            ]
        }
    )

    member: str | None = Field(default=None, max_length=MAX_NAME, description="The member's node name.")
    selector: LabelSelector | None = Field(default=None, description="The member whose pod matches this.")


class SingletonSpec(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(self.distribution == 'Pinned') == has(self.pinTo)",
                    "message": "spec.pinTo is required for the Pinned distribution, and only for it",
                    "fieldPath": ".pinTo",
                }
            ]
        }
    )

    topology: str = topology_field()  # type: ignore[assignment]
    distribution: Literal["Uniform", "UniformQuorum", "Pinned"] = Field(
        default="Uniform",
        description="Uniform: rendezvous hashing over eligible members; UniformQuorum: the same, over the "
        "majority component only; Pinned: the member spec.pinTo names.",
    )
    pin_to: PinTo | None = Field(default=None, description="The member a Pinned singleton runs on.")
    partition_policy: Literal["Fence", "Continue"] = Field(
        default="Fence",
        description="Fence: only the majority side may own it (CP); "
        "Continue: keep the owner on any side (AP).",
    )
    rebalance: Literal["Passive", "Active"] = Field(
        default="Passive",
        description="Passive: move only when the owner stops being eligible; Active: follow the hash.",
    )
    load_factor: float = Field(
        default=1.05,
        ge=1.0,
        le=2.0,
        description="Uniform, UniformQuorum: a member already holding loadFactor * the mean number of "
        "the topology's Uniform and UniformQuorum singletons per eligible member (rounded down, never "
        "below the mean rounded up) is passed over in rendezvous order (bounded loads): the busiest "
        "member holds at most loadFactor * the mean.",
    )
    lease_duration: str = durations.field(
        "15s", "1s", "1h", "How long a cut-off owner may still believe it owns the singleton."
    )
    pod_annotation: bool = Field(
        default=True, description="Mirror ownership on the owner pod (conclave.dev/singleton.<name>)."
    )


class SingletonStatus(Model):
    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")
    owner: str | None = Field(default=None, max_length=MAX_NAME, description="The owner's node name.")
    owner_pod: str | None = Field(default=None, max_length=MAX_NAME, description="The owner's pod.")
    epoch: int | None = Field(
        default=None, ge=0, description="The fencing token: strictly increases on every owner change."
    )
    phase: Literal["Pending", "Placed", "Moving", "Fenced"] | None = Field(
        default=None, description="Pending, Placed, Moving (revoked, waiting out the lease) or Fenced."
    )
    since: Timestamp | None = Field(default=None, description="When the phase was entered.")
    conditions: list[Condition] = conditions_field()


class Singleton(Resource):
    kind: str = "Singleton"
    spec: SingletonSpec
    status: SingletonStatus = Field(default_factory=SingletonStatus)

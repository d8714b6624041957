"""ClusterTopology: who the peers of a clustered workload are, and whether it is split."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from conclave.api import durations
from conclave.api.base import MAX_LIST, MAX_NAME, Condition, Model, Name, Resource, conditions_field
from conclave.api.times import Timestamp

Strategy = Literal["KubernetesDNS", "KubernetesAPI", "DNSPoll", "Static"]


class SecretKeyRef(Model):
    """A key of a Secret in the topology's namespace."""

    name: str = Field(min_length=1, max_length=MAX_NAME, description="The Secret's name.")
    key: str = Field(min_length=1, max_length=MAX_NAME, description="The key whose value is used.")


class ProbeSpec(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.type in ['none', 'erlang'] || has(self.port)",
                    "message": "probe.port is required for the http and tcp probes",
                    "fieldPath": ".port",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "self.type != 'erlang' || has(self.cookieSecretRef)",
                    "message": "probe.cookieSecretRef is required for the erlang probe",
                    "fieldPath": ".cookieSecretRef",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "self.type == 'erlang' "
                    "|| (!has(self.cookieSecretRef) && !has(self.distributionPort))",
                    "message": "probe.cookieSecretRef and probe.distributionPort are only for the "
                    "erlang probe",
                    "fieldPath": ".type",
                    "reason": "FieldValueForbidden",
                },
                {
                    "rule": "duration(self.timeout) < duration(self.interval)",
                    "message": "probe.timeout must be shorter than probe.interval",
                    "fieldPath": ".timeout",
                },
            ]
        }
    )

    type: Literal["http", "tcp", "erlang", "none"] = Field(
        default="none",
        description="http: GET each member's own view of the cluster; erlang: ask each node over "
        "Erlang distribution, as a hidden node, for its erlang:nodes() (no app code); tcp: only check "
        "the port opens; none: no probing (partition state Unknown).",
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="The member's port to probe (http, tcp)."
    )
    cookie_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="erlang: the Secret key holding the cluster's distribution cookie. Whoever can read "
        "it can do anything a node can: see docs/erlang.md.",
    )
    distribution_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="erlang: the nodes' fixed distribution port, when they run without EPMD "
        "(-start_epmd false -erl_epmd_port N); unset: ask EPMD on port 4369.",
    )
    path: str = Field(
        default="/cluster", max_length=256, pattern=r"^/", description="The HTTP path of the member view."
    )
    interval: str = durations.field("2s", "100ms", "10m", "How often each member is probed.")
    timeout: str = durations.field("1s", "50ms", "1m", "How long one probe may take.")


class PartitionSpec(Model):
    stable_after: str = durations.field(
        "5s", "0s", "10m", "How long a new verdict must hold before it is published (split or healed)."
    )
    tie_breaker: Literal["None", "LowestAddress"] = Field(
        default="None",
        description="On a split into two equal halves: None, no majority; LowestAddress, the half holding "
        "the lowest member address is the majority.",
    )


class ClusterTopologySpec(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(self.strategy in ['KubernetesDNS', 'KubernetesAPI']) || has(self.service)",
                    "message": "spec.service is required for the KubernetesDNS and KubernetesAPI strategies",
                    "fieldPath": ".service",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "self.strategy != 'DNSPoll' || has(self.query)",
                    "message": "spec.query is required for the DNSPoll strategy",
                    "fieldPath": ".query",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "self.strategy != 'Static' || (has(self.hosts) && size(self.hosts) > 0)",
                    "message": "spec.hosts must list at least one node for the Static strategy",
                    "fieldPath": ".hosts",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "!has(self.service) || self.strategy in ['KubernetesDNS', 'KubernetesAPI']",
                    "message": "spec.service is only for the KubernetesDNS and KubernetesAPI strategies",
                    "fieldPath": ".service",
                    "reason": "FieldValueForbidden",
                },
                {
                    "rule": "!has(self.hosts) || size(self.hosts) == 0 || self.strategy == 'Static'",
                    "message": "spec.hosts is only for the Static strategy",
                    "fieldPath": ".hosts",
                    "reason": "FieldValueForbidden",
                },
                {
                    "rule": "!has(self.query) || self.strategy == 'DNSPoll'",
                    "message": "spec.query is only for the DNSPoll strategy",
                    "fieldPath": ".query",
                    "reason": "FieldValueForbidden",
                },
                {
                    "rule": "self.connect != 'Mesh' || self.probe.type == 'erlang'",
                    "message": "spec.connect: Mesh needs probe.type erlang (conclave connects the nodes "
                    "over Erlang distribution)",
                    "fieldPath": ".connect",
                },
            ]
        }
    )

    strategy: Strategy = Field(
        description="How members are discovered: KubernetesDNS (poll the headless Service's A records), "
        "KubernetesAPI (watch its EndpointSlices), DNSPoll (poll any DNS name), Static (spec.hosts)."
    )
    service: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
        description="The headless Service (KubernetesDNS, KubernetesAPI).",
    )
    application_name: str = Field(
        default="app",
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The node basename: members are named <applicationName>@<host>, as in libcluster.",
    )
    node_naming: Literal["ip", "hostname", "dns"] = Field(
        default="ip",
        description="The host part of node names, as libcluster's mode: ip (app@10.0.3.7), dns "
        "(app@10-0-3-7.<namespace>.pod.<domain>), hostname (app@<pod>.<service>.<namespace>.svc.<domain>).",
    )
    query: str | None = Field(
        default=None, min_length=1, max_length=MAX_NAME, description="The DNS name to poll (DNSPoll)."
    )
    hosts: list[Name] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="Full node names (Static), like libcluster's Epmd strategy.",
    )
    polling_interval: str = durations.field("5s", "1s", "1h", "How often the DNS strategies resolve.")
    member_readiness: Literal["Ready", "Any"] = Field(
        default="Ready",
        description="Which endpoints count as members: Ready ones only, or Any non-terminating one "
        "(BEAM pods often turn Ready only after joining the cluster).",
    )
    probe: ProbeSpec = Field(
        default_factory=ProbeSpec,
        description="How the operator learns each member's own view of the cluster.",
        json_schema_extra={"default": ProbeSpec().model_dump(mode="json", by_alias=True, exclude_none=True)},
    )
    partition: PartitionSpec = Field(
        default_factory=PartitionSpec,
        description="How a split is declared.",
        json_schema_extra={"default": PartitionSpec().model_dump(mode="json", by_alias=True)},
    )
    connect: Literal["None", "Mesh"] = Field(
        default="None",
        description="None: the app connects its nodes (libcluster); Mesh: conclave is the connector: it "
        "asks each counting member to connect the ones it is missing, never connects a terminating pod's "
        "node, and disconnects a node from every member once its pod is gone (needs probe.type erlang).",
    )


class Member(Model):
    name: str = Field(max_length=MAX_NAME, description="The node name, e.g. chat@10.0.3.7.")
    pod: str | None = Field(default=None, max_length=MAX_NAME, description="The member's pod, if any.")
    ip: str | None = Field(default=None, max_length=64, description="The member's address.")
    ready: bool = Field(default=True, description="Whether the member's pod is Ready.")
    node_name: str | None = Field(default=None, max_length=MAX_NAME, description="The Kubernetes node.")
    since: Timestamp | None = Field(default=None, description="When the member was first seen.")


class MemberView(Model):
    member: str = Field(max_length=MAX_NAME, description="The member whose view this is.")
    known: bool = Field(description="Whether the operator got a usable view from it.")
    reason: str | None = Field(default=None, max_length=1024, description="Why its view is unknown.")


class DownMember(Model):
    name: str = Field(max_length=MAX_NAME, description="The member's node name.")
    reason: str = Field(
        max_length=64,
        description="How its probe was refused: ConnectionRefused (nothing listens at the port), "
        "NotRegistered (EPMD answers that the node is not registered).",
    )
    since: Timestamp | None = Field(default=None, description="When it was first published as down.")


NodeList = Annotated[list[Name], Field(max_length=MAX_LIST)]
Link = Annotated[list[Name], Field(min_length=2, max_length=2)]


MEMBERS_SHOWN = 100
"""How many members ``status.members`` lists at most; the full list is in the members ConfigMap."""
NAMES_SHOWN = 100
"""How many entries each list of ``status.partition`` holds at most (names per component,
components, the majority, missing links, down members, views); its counts are always exact."""


class PartitionStatus(Model):
    state: Literal["Healthy", "Partitioned", "Degraded", "Unknown"] = Field(
        default="Unknown", description="The published (debounced) verdict, among the members that are up."
    )
    components: list[NodeList] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description=f"The connected components, largest first (then by their first name): at most "
        f"{NAMES_SHOWN} components of at most {NAMES_SHOWN} names each, sorted; componentSizes has "
        "their sizes.",
    )
    component_count: int | None = Field(
        default=None, ge=0, description="How many connected components there are."
    )
    component_sizes: list[int] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="The size of each component listed in components, in the same order "
        f"(at most {NAMES_SHOWN}).",
    )
    majority: list[Name] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="Members that are all connected and hold a strict majority; empty when none "
        f"(at most {NAMES_SHOWN} names, sorted; majoritySize is exact).",
    )
    majority_size: int | None = Field(default=None, ge=0, description="How many members the majority holds.")
    missing_links: list[Link] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="Pairs of members that do not see each other inside one component "
        f"(at most {NAMES_SHOWN}, sorted; missingLinkCount is exact).",
    )
    missing_link_count: int | None = Field(default=None, ge=0, description="How many links are missing.")
    down: list[DownMember] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="Members whose probe was actively refused: crashed, not cut off. They are no "
        "component and never make the cluster Partitioned; the majority is still counted against them "
        f"(at most {NAMES_SHOWN}, by name; downCount is exact).",
    )
    down_count: int | None = Field(default=None, ge=0, description="How many members are down.")
    since: Timestamp | None = Field(default=None, description="When this verdict was published.")
    views: list[MemberView] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description=f"Whether each member's own view is known: at most {NAMES_SHOWN}, the unknown ones "
        "first, then by name; unknownViews is exact.",
    )
    unknown_views: int | None = Field(
        default=None, ge=0, description="How many members' views are unknown (not probed yet, or failed)."
    )
    truncated: bool | None = Field(
        default=None,
        description="True when a list here was cut to its bound. A truncated verdict is not read back "
        "after an operator restart: it is judged afresh, without transition events.",
    )


class ClusterTopologyStatus(Model):
    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")
    members: list[Member] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description=f"At most {MEMBERS_SHOWN} of the discovered, non-terminating members: those that are "
        "not ready or down first, then the others, each part by name. memberCount and readyMembers "
        "are exact; every member is in the <name>-members ConfigMap (hosts and hosts.json: the ready "
        "ones; members.json: all of them, as records).",
    )
    members_shown: int | None = Field(
        default=None,
        ge=0,
        description="How many members status.members lists; fewer than memberCount when the list is cut.",
    )
    member_count: int | None = Field(default=None, ge=0, description="How many members were discovered.")
    ready_members: int | None = Field(default=None, ge=0, description="How many members count as ready.")
    stale: bool | None = Field(
        default=None, description="True when discovery failed and the members are the last known ones."
    )
    partition: PartitionStatus | None = Field(default=None, description="Whether the cluster is split.")
    conditions: list[Condition] = conditions_field()


class ClusterTopology(Resource):
    kind: str = "ClusterTopology"
    spec: ClusterTopologySpec
    status: ClusterTopologyStatus = Field(default_factory=ClusterTopologyStatus)

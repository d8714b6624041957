"""The three resource kinds as pydantic models: the single source of the CRD schemas."""

from conclave.api.base import API_VERSION, GROUP, VERSION, Condition, LabelSelector, Metadata
from conclave.api.processgroups import ProcessGroup, ProcessGroupSpec, ProcessGroupStatus
from conclave.api.singletons import Singleton, SingletonSpec, SingletonStatus
from conclave.api.topologies import ClusterTopology, ClusterTopologySpec, ClusterTopologyStatus, Member

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "ClusterTopology",
    "ClusterTopologySpec",
    "ClusterTopologyStatus",
    "Condition",
    "LabelSelector",
    "Member",
    "Metadata",
    "ProcessGroup",
    "ProcessGroupSpec",
    "ProcessGroupStatus",
    "Singleton",
    "SingletonSpec",
    "SingletonStatus",
]

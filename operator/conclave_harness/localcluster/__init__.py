"""A real local Kubernetes control plane, its pod network and a fake kubelet (tests, demo)."""

from conclave_harness.localcluster.building import ETCD_VERSION, KUBERNETES_VERSION, ensure_binaries
from conclave_harness.localcluster.clusters import LocalCluster
from conclave_harness.localcluster.podnetwork import PodNetwork

__all__ = ["ETCD_VERSION", "KUBERNETES_VERSION", "LocalCluster", "PodNetwork", "ensure_binaries"]

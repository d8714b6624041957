"""The local cluster's pod network: a network namespace joined to the host by a veth pair.

Kubernetes refuses loopback addresses in EndpointSlices, so pods need real addresses.
The host side of the veth holds the first address of the pod CIDR (10.244.0.1/16 by
default), the namespace side the second; every pod IP handed out is added to the
namespace side as a /32. Processes that play pods run inside the namespace bound to
their IP; the operator and the tests reach them over the veth from the host.

The namespace has no default route, so nothing started inside it can send traffic
anywhere but to the pod network and the host side of the veth. Before handing out an
address, the route to it is checked: without the route a packet to a pod IP would leave
by the host's default route, to a network that is not ours.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from conclave_harness.errors import PodNetworkError
from conclave_harness.localcluster.building import exclusive

DEFAULT_POD_CIDR = "10.244.0.0/16"
FIRST_POD_OFFSET = 10
"""Pod IPs start at .10: .1 is the host side, .2 the namespace side, the rest is spare."""

NAMESPACE_INTERFACE = "eth0"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if shutil.which("ip") is None:
        raise PodNetworkError(
            "The `ip` command (Debian package iproute2) is needed to build the pod network. "
            "Install it, or set CONCLAVE_KUBECONFIG to use an existing cluster instead."
        )
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise PodNetworkError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


@dataclasses.dataclass(frozen=True)
class PodNetwork:
    """One cluster's pod network; cheap to construct, ``create`` makes it real."""

    name: str
    cidr: str
    state_dir: Path

    @property
    def netns(self) -> str:
        return f"conclave-{self.name}"

    @property
    def host_interface(self) -> str:
        return f"cv-{self.name}"[:15]

    @property
    def network(self) -> ipaddress.IPv4Network:
        network = ipaddress.ip_network(self.cidr)
        if not isinstance(network, ipaddress.IPv4Network) or network.prefixlen > 24:
            raise PodNetworkError(f"pod CIDR {self.cidr!r} must be an IPv4 network of /24 or larger")
        return network

    @property
    def host_address(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def namespace_address(self) -> str:
        return str(self.network.network_address + 2)

    def exists(self) -> bool:
        return self.netns in _ip("netns", "list", check=False).stdout.split()

    def create(self) -> None:
        """Create the namespace and veth, replacing a stale pair left by a crashed run."""
        if os.geteuid() != 0:
            raise PodNetworkError(
                "Creating the pod network (a network namespace and a veth pair) needs root or "
                "CAP_NET_ADMIN. Run as root, or set CONCLAVE_KUBECONFIG to use an existing cluster."
            )
        self.delete()
        prefix = self.network.prefixlen
        _ip("netns", "add", self.netns)
        _ip(
            "link", "add", self.host_interface, "type", "veth",
            "peer", "name", NAMESPACE_INTERFACE, "netns", self.netns,
        )  # fmt: skip
        _ip("addr", "add", f"{self.host_address}/{prefix}", "dev", self.host_interface)
        _ip("link", "set", self.host_interface, "up")
        _ip(
            "-n",
            self.netns,
            "addr",
            "add",
            f"{self.namespace_address}/{prefix}",
            "dev",
            NAMESPACE_INTERFACE,
        )
        _ip("-n", self.netns, "link", "set", NAMESPACE_INTERFACE, "up")
        _ip("-n", self.netns, "link", "set", "lo", "up")
        self.check_route(self.namespace_address)

    def delete(self) -> None:
        """Remove the veth, then the namespace.

        The veth goes first because deleting a namespace hands its veth pair to the kernel to
        remove later, asynchronously: a link check after it can see the pair still there and
        the delete that follows find it gone, and a `create` right after can collide with it.
        Deleting the host end removes both ends before the call returns.
        """
        if self._host_interface_exists():
            _ip("link", "delete", self.host_interface, check=False)
            if self._host_interface_exists():
                raise PodNetworkError(f"could not delete the pod network's veth {self.host_interface!r}")
        if self.exists():
            _ip("netns", "delete", self.netns)
        (self.state_dir / "ipam.json").unlink(missing_ok=True)

    def _host_interface_exists(self) -> bool:
        return _ip("link", "show", self.host_interface, check=False).returncode == 0

    def check_route(self, address: str) -> None:
        """Fail unless traffic to ``address`` would go over our veth and nowhere else."""
        if ipaddress.ip_address(address) not in self.network:
            raise PodNetworkError(f"{address} is outside the pod network {self.cidr}")
        routes = json.loads(_ip("-j", "route", "get", address).stdout or "[]")
        device = routes[0].get("dev") if routes else None
        if device != self.host_interface:
            raise PodNetworkError(
                f"Traffic to {address} would leave by {device!r}, not by the pod network's "
                f"veth {self.host_interface!r}; refusing to hand out pod IPs. "
                "Run `conclave local-cluster up` again to rebuild the pod network."
            )

    def allocate(self) -> str:
        """Hand out the next unused pod IP and add it to the namespace.

        Addresses are handed out in sequence and wrap around, so a replaced pod gets a new IP
        instead of its predecessor's; a file lock keeps concurrent processes from sharing one.
        """
        hosts = self.network.num_addresses - FIRST_POD_OFFSET - 1
        with exclusive(self.state_dir / "ipam.lock"):
            taken = set(self.addresses())
            state_file = self.state_dir / "ipam.json"
            state = json.loads(state_file.read_text()) if state_file.exists() else {"next": 0}
            for step in range(hosts):
                offset = (state["next"] + step) % hosts
                address = str(self.network.network_address + FIRST_POD_OFFSET + offset)
                if address not in taken:
                    self.check_route(address)
                    _ip("-n", self.netns, "addr", "add", f"{address}/32", "dev", NAMESPACE_INTERFACE)
                    state_file.write_text(json.dumps({"next": offset + 1}))
                    return address
        raise PodNetworkError(f"The pod network {self.cidr} has no free address left")

    def release(self, address: str) -> None:
        """Remove a pod IP from the namespace; after this, connecting to it times out."""
        _ip(
            "-n",
            self.netns,
            "addr",
            "del",
            f"{address}/32",
            "dev",
            NAMESPACE_INTERFACE,
            check=False,
        )

    def addresses(self) -> list[str]:
        """The pod IPs currently held in the namespace."""
        output = _ip("-n", self.netns, "-j", "addr", "show", "dev", NAMESPACE_INTERFACE).stdout
        links = json.loads(output or "[]")
        return [
            info["local"]
            for link in links
            for info in link.get("addr_info", [])
            if info.get("family") == "inet" and info.get("prefixlen") == 32
        ]

    def command(self, argv: Sequence[str]) -> list[str]:
        """Wrap a command so that it runs inside the pod network."""
        return ["ip", "netns", "exec", self.netns, *argv]

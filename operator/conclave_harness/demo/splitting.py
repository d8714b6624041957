"""A real network cut inside the pod network: packets between two sets of pod IPs are
dropped (iptables, in the pod network's namespace), which is what a partition is. A
connection attempt across the cut gets no answer at all, so nobody, conclave's mesh
included, can reconnect the sides until the cut is removed.

The rules live in one chain of their own, added and removed in one iptables-restore
transaction each, so the cut starts and ends at once and removing it leaves the
namespace's other rules as they were. Must never: touch the host's own rules.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from conclave_harness.errors import PodNetworkError
from conclave_harness.localcluster import PodNetwork

TOOLS = ("iptables", "iptables-restore")
CHAIN = "CONCLAVE-DEMO-SPLIT"


class Cut:
    """The cut between two sides of the pod network; ``apply``, then ``remove``."""

    def __init__(self, network: PodNetwork) -> None:
        self.network = network

    def present(self) -> bool:
        """Whether the cut is in place (False, too, without iptables: nobody made one)."""
        if shutil.which("iptables") is None:
            return False
        listing = self.network.command(["iptables", "-w", "-S", CHAIN])
        return subprocess.run(listing, capture_output=True, check=False).returncode == 0

    def apply(self, left: Sequence[str], right: Sequence[str]) -> None:
        """Drop every packet from a ``left`` address to a ``right`` one, and back.
        Raises PodNetworkError."""
        one, other = ",".join(left), ",".join(right)
        self._restore(
            f":{CHAIN} - [0:0]",
            f"-A {CHAIN} -s {one} -d {other} -j DROP",
            f"-A {CHAIN} -s {other} -d {one} -j DROP",
            f"-I INPUT 1 -j {CHAIN}",
        )

    def remove(self) -> None:
        """Heal: remove the cut, if there is one. Raises PodNetworkError."""
        if self.present():
            self._restore(f"-D INPUT -j {CHAIN}", f"-F {CHAIN}", f"-X {CHAIN}")

    def _restore(self, *lines: str) -> None:
        if shutil.which("iptables-restore") is None:
            raise PodNetworkError(
                "The demo's split is a network cut made with iptables-restore (Debian's iptables; "
                "`make demo` installs it): not found"
            )
        rules = "\n".join(["*filter", *lines, "COMMIT", ""])
        restore = self.network.command(["iptables-restore", "-w", "--noflush"])
        done = subprocess.run(restore, input=rules, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PodNetworkError(f"iptables-restore in {self.network.netns} failed: {done.stderr.strip()}")

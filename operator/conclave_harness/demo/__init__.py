"""`conclave demo`: the narrated scenario a newcomer watches, and the processes it needs.

``scenario.Scenario`` is the story, step by step: five real Erlang nodes, started alone,
discovered and connected into a full mesh by the operator, three singletons placed, scale
to seven, a vanished host disconnected from every member and failed over, a real 4/3 split
(a network cut) that fences, the heal, a real pg group emptied. Each step acts, then polls
the API and the nodes (``watching``) until the outcome shows, and records how long that
took. It needs only an API client, ``nodes.ErlangNodes`` in a pod network and a way to
start the operator, so the e2e test runs exactly this story against the test session's
cluster. ``launching.run`` is the command: a fresh local cluster, the fake kubelet, the
nodes and the operator as processes recorded in the cluster's state (so that `conclave
local-cluster down` stops them too), the scenario, and a final table.

The demo writes only what a user, a kubelet or a failing world would (pods, resources, a
frozen BEAM, a network cut, killed processes); it never writes a status: every outcome it
reports is the operator's, or what the nodes themselves say.
"""

from conclave_harness.demo.launching import create_namespace, install_crds, require_tools, run, serve_kubelet
from conclave_harness.demo.narrating import Measurement, Narration
from conclave_harness.demo.nodes import ErlangNodes
from conclave_harness.demo.scenario import Scenario

__all__ = [
    "ErlangNodes",
    "Measurement",
    "Narration",
    "Scenario",
    "create_namespace",
    "install_crds",
    "require_tools",
    "run",
    "serve_kubelet",
]

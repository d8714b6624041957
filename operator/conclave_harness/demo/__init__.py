"""`conclave demo`: the narrated scenario a newcomer watches, and the processes it needs.

``scenario.Scenario`` is the story, step by step: five members discovered, three
singletons placed, scale to seven, a failover, a 4/3 split that fences, the heal, a group
emptied. Each step acts on the cluster, then polls the API until the operator's outcome
shows, and records how long that took. It needs only an API client, simulated members and
a way to start the operator, so the e2e test runs exactly this story against the test
session's cluster. ``launching.run`` is the command: a fresh local cluster, the fake
kubelet, the members and the operator as processes recorded in the cluster's state (so
that `conclave local-cluster down` stops them too), the scenario, and a final table.

The demo writes only what a user or a kubelet would (pods, labels, the resources); it
never writes a status: every outcome it reports is the operator's.
"""

from conclave_harness.demo.launching import create_namespace, install_crds, run, serve_kubelet
from conclave_harness.demo.narrating import Measurement, Narration
from conclave_harness.demo.scenario import Scenario

__all__ = [
    "Measurement",
    "Narration",
    "Scenario",
    "create_namespace",
    "install_crds",
    "run",
    "serve_kubelet",
]

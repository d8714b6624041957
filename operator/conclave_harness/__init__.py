"""The dev harness: the local control plane, its pod network and fake kubelet, simulated
members, the demo, and fetching helm and kubectl. Tests, benchmarks and `make demo` use
it; the operator never imports it (an import-linter contract checks that).

It ships in the same distribution as the operator but needs its extra
(``conclave-operator[harness]``): importing it without the extra's packages fails, so
``conclave`` offers none of its commands then (``conclave.cli.Commands``).
"""

import cryptography  # noqa: F401  (the extra's packages: their absence hides every harness command)
import grafana_foundation_sdk  # noqa: F401

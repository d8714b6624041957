"""The dev harness's errors, under conclave's root so one ``except ConclaveError`` catches all.

ConclaveError (conclave.errors)
├── LocalClusterError (RuntimeError)   the local control plane could not be had
│   ├── BuildError                     Go missing, or a Go build failed
│   ├── PodNetworkError                the network namespace could not be made or used
│   └── StartupError                   a component exited or never turned ready
└── ScenarioFailed (AssertionError)    a demo step's outcome did not show in the API in time
"""

from __future__ import annotations

from conclave.errors import ConclaveError


class LocalClusterError(ConclaveError, RuntimeError):
    """The local control plane could not be built, started or used."""


class BuildError(LocalClusterError):
    """Go is missing or too old, or building a component failed."""


class PodNetworkError(LocalClusterError):
    """The pod network (network namespace and veth) could not be created or used."""


class StartupError(LocalClusterError):
    """A control-plane component exited early or did not become ready in time."""


class ScenarioFailed(ConclaveError, AssertionError):
    """A step of the demo scenario did not reach its outcome in time; the message says which
    and shows the last status seen."""

"""conclave's own errors, so callers catch what they mean and never a library's type.

ConclaveError
├── LocalClusterError (RuntimeError)   the local control plane could not be had
│   ├── BuildError                     Go missing, or a Go build failed
│   ├── PodNetworkError                the network namespace could not be made or used
│   └── StartupError                   a component exited or never turned ready
├── ApiError                           the Kubernetes API said no, or could not be reached
│   ├── ConflictError                  409: changed since read, or already exists
│   ├── NotFoundError                  404
│   └── ForbiddenError                 403: RBAC refused
├── CredentialsError                   no in-cluster credentials and no usable kubeconfig
├── LeadershipLost                     this replica may no longer write
├── DNSError                           a lookup failed; ``reason`` says how (NXDOMAIN, Timeout, ...)
└── ScenarioFailed (AssertionError)    a demo step's outcome did not show in the API in time
"""

from __future__ import annotations


class ConclaveError(Exception):
    """The root of every error conclave raises on purpose."""


class LocalClusterError(ConclaveError, RuntimeError):
    """The local control plane could not be built, started or used."""


class BuildError(LocalClusterError):
    """Go is missing or too old, or building a component failed."""


class PodNetworkError(LocalClusterError):
    """The pod network (network namespace and veth) could not be created or used."""


class StartupError(LocalClusterError):
    """A control-plane component exited early or did not become ready in time."""


class CredentialsError(ConclaveError):
    """Neither in-cluster credentials nor a usable kubeconfig: nothing to talk to the API with."""


class ApiError(ConclaveError):
    """The Kubernetes API answered with an error status, or could not be reached (status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message


class ConflictError(ApiError):
    """409 Conflict: the object changed since it was read (or already exists)."""


class NotFoundError(ApiError):
    """404 Not Found."""


class ForbiddenError(ApiError):
    """403 Forbidden: RBAC refused the request."""


class LeadershipLost(ConclaveError):
    """This replica is no longer, or can no longer prove it is, the active one."""


class DNSError(ConclaveError):
    """A DNS lookup failed; ``reason`` is a stable CamelCase word (NXDOMAIN, Timeout, ServerFailure)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ScenarioFailed(ConclaveError, AssertionError):
    """A step of the demo scenario did not reach its outcome in time; the message says which
    and shows the last status seen."""

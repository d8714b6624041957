"""conclave's own errors, so callers catch what they mean and never a library's type.

ConclaveError
├── ApiError                           the Kubernetes API said no, or could not be reached
│   ├── ConflictError                  409: changed since read, or already exists
│   ├── NotFoundError                  404
│   └── ForbiddenError                 403: RBAC refused
├── CredentialsError                   no in-cluster credentials and no usable kubeconfig
├── LeadershipLost                     this replica may no longer write
└── DNSError                           a lookup failed; ``reason`` says how (NXDOMAIN, Timeout, ...)

The dev harness (``conclave_harness.errors``) hangs its own errors under ConclaveError.
"""

from __future__ import annotations


class ConclaveError(Exception):
    """The root of every error conclave raises on purpose."""


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

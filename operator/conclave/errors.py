"""conclave's own errors, so callers catch what they mean and never a library's type.

ConclaveError
├── ApiError                           the Kubernetes API said no, or could not be reached
│   ├── ConflictError                  409: changed since read, or already exists
│   ├── NotFoundError                  404
│   └── ForbiddenError                 403: RBAC refused
├── CredentialsError                   no in-cluster credentials and no usable kubeconfig
├── SpecError (ValueError)             a spec the models refuse; ``fields`` says where and why
├── LeadershipLost                     this replica may no longer write
└── DNSError                           a lookup failed; ``reason`` says how (NXDOMAIN, Timeout, ...)

``transient(error)`` tells an ApiError worth retrying as it is (the API was unreachable,
overloaded or failing on its side) from a refusal that retrying cannot change.

The dev harness (``conclave_harness.errors``) hangs its own errors under ConclaveError.
"""

from __future__ import annotations

import dataclasses


class ConclaveError(Exception):
    """The root of every error conclave raises on purpose."""


class CredentialsError(ConclaveError):
    """Neither in-cluster credentials nor a usable kubeconfig: nothing to talk to the API with."""


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One field of a spec that the models refuse: where, what was there, and why."""

    path: str
    """The field path as a user writes it: ``spec.partition.stableAfter``."""
    value: str
    """The refused value as JSON text; empty when the field is missing."""
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.value} {self.problem}" if self.value else f"{self.path}: {self.problem}"


class SpecError(ConclaveError, ValueError):
    """A spec that passed the CRD but not the models: every refused field, with its path."""

    def __init__(self, fields: tuple[FieldError, ...]) -> None:
        super().__init__("; ".join(str(field) for field in fields))
        self.fields = fields


class ApiError(ConclaveError):
    """The Kubernetes API answered with an error status, or could not be reached (status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message


TRANSIENT_STATUSES = frozenset({0, 408, 410, 429})
"""Besides every 5xx: unreachable or timed out (0), request timeout, a watch's
resourceVersion compacted away (410: list again and go on), too many requests."""


def transient(error: ApiError) -> bool:
    """True when the same request may well succeed later, unchanged: the API server could
    not be reached or timed out (status 0, 408, 504), throttled it (429), failed on its side
    (5xx: etcd down, storage re-initializing), or a watch must list again (410). False for a
    refusal of the request itself (400, 401, 403, 404, 409, 422): retrying it changes nothing,
    though 401 and 403 can show for a moment while an API server starts."""
    return error.status in TRANSIENT_STATUSES or 500 <= error.status <= 599


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

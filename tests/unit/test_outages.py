"""Which API errors are worth retrying as they are, and kopf's retries logged once per
outage."""

from __future__ import annotations

import logging

import pytest

from conclave.errors import ApiError, ConflictError, ForbiddenError, NotFoundError, transient
from conclave.runtime.outages import Backoff, RetryNoise

ERRORS = {
    "the API server cannot be reached": (ApiError(0, "Unreachable", "Connection refused"), True),
    "the API server is overloaded": (ApiError(429, "TooManyRequests", "storage is (re)initializing"), True),
    "etcd is down": (ApiError(500, "InternalError", "etcdserver: request timed out"), True),
    "the API server is not ready": (ApiError(503, "ServiceUnavailable", "not ready"), True),
    "a gateway timed out": (ApiError(504, "Timeout", "timeout"), True),
    "a watch's version was compacted": (ApiError(410, "Expired", "too old resource version"), True),
    "RBAC refuses": (ForbiddenError(403, "Forbidden", "forbidden"), False),
    "the object changed since read": (ConflictError(409, "Conflict", "changed"), False),
    "the object is gone": (NotFoundError(404, "NotFound", "not found"), False),
    "the body is invalid": (ApiError(422, "Invalid", "invalid"), False),
}


@pytest.mark.parametrize(("error", "expected"), ERRORS.values(), ids=ERRORS.keys())
def test_transient_errors_are_the_ones_a_retry_can_fix(error: ApiError, expected: bool) -> None:
    assert transient(error) is expected


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf._cogs.clients.watching", logging.ERROR, __file__, 1, message, (), None)


def test_kopf_retries_are_logged_once_per_outage_and_escalations_always() -> None:
    noise = RetryNoise(quiet=30.0)
    retries = [
        record(f"Request attempt #{n}/9 failed; will retry: GET /api/v1/pods -> refused") for n in (1, 2, 3)
    ]
    assert [noise.filter(r) for r in retries] == [True, False, False]
    assert retries[0].getMessage().endswith("(more retries of this outage are not logged)")
    assert noise.filter(record("Request attempt #9/9 failed; escalating: GET /api/v1/pods -> refused"))
    assert noise.filter(record("Watcher for pods has failed"))
    assert noise.dropped == 2


def test_backoff_doubles_up_to_its_maximum_and_starts_over_when_reset() -> None:
    backoff = Backoff(0.5, 3.0)
    delays = [backoff.next() for _ in range(5)]
    assert all(base <= d <= base * 1.2 for d, base in zip(delays, [0.5, 1.0, 2.0, 3.0, 3.0], strict=True))
    backoff.reset()
    assert 0.5 <= backoff.next() <= 0.6

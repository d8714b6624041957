"""Failures that come in streaks — the API server restarting, etcd down, a refused
request — logged when a streak starts and when it ends, never once per retry; and the
backoff between retries.

An ``Outage`` is one thing that can fail (the leader Lease, one topology's iteration). It
never decides whether to retry: the caller does, by ``conclave.errors.transient``.
``RetryNoise`` applies the same rule to the retries kopf logs for its own requests.
"""

from __future__ import annotations

import logging
import random
import time

QUIET_SECONDS = 30.0
"""kopf's retries are one outage until none has been logged for this long."""


class Backoff:
    """Delays that double from ``initial`` up to ``maximum``, with up to 20% jitter so that
    replicas that failed together do not retry together."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = max(initial, maximum)
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay * random.uniform(1.0, 1.2)

    def reset(self) -> None:
        self._next = self.initial


class Outage:
    """One streak of failures of one thing, logged at its start and at its end."""

    def __init__(self, logger: logging.Logger, doing: str) -> None:
        """``doing`` completes "Failed to ...": ``renew the leader Lease prod/conclave``."""
        self.logger = logger
        self.doing = doing
        self.since: float | None = None
        self.failures = 0
        self.last: BaseException | None = None
        """The streak's latest failure."""

    @property
    def lasted(self) -> float:
        """Seconds since the streak began; 0 when there is none."""
        return 0.0 if self.since is None else time.monotonic() - self.since

    def failed(self, error: BaseException, level: int = logging.WARNING) -> None:
        """Count a failure; log it only if it starts a streak."""
        self.failures += 1
        self.last = error
        if self.since is None:
            self.since = time.monotonic()
            self.logger.log(level, "Failed to %s: %s; retrying with backoff", self.doing, error)
        else:
            self.logger.debug("Failed to %s again (%d failures): %s", self.doing, self.failures, error)

    def recovered(self) -> None:
        """End the streak, if there is one, saying how long it lasted."""
        if self.since is not None:
            self.logger.info(
                "Managed to %s again after %.1fs and %d failed attempt%s",
                self.doing,
                self.lasted,
                self.failures,
                "" if self.failures == 1 else "s",
            )
        self.since = None
        self.failures = 0
        self.last = None


class RetryNoise(logging.Filter):
    """Lets through the first of kopf's "Request attempt ... failed; will retry" records of
    an outage and drops the rest (one per watch per retry), until none has come for
    ``quiet`` seconds. Escalations, and everything else, pass."""

    def __init__(self, quiet: float = QUIET_SECONDS) -> None:
        super().__init__()
        self.quiet = quiet
        self._last: float | None = None
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not (message.startswith("Request attempt") and "failed; will retry" in message):
            return True
        now = time.monotonic()
        first = self._last is None or now - self._last > self.quiet
        self._last = now
        if first:
            record.msg, record.args = "%s (more retries of this outage are not logged)", (message,)
            return True
        self.dropped += 1
        return False

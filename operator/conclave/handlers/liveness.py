"""Whether kopf's watches still deliver: the liveness of what the operator sees.

kopf reconnects a watch that stays silent past ``watching.inactivity_timeout`` and lists
again after 410 Gone, but a watcher whose retries ran out, or that met an error event, is
never started again, and a stream can stay open while delivering nothing (PITFALLS §1).
Nothing shows it: a quiet namespace is silent too, and kopf keeps the bookmarks that prove
a stream alive to itself, so the time of the last event says nothing on its own.

So ``WatchAudit`` compares what the watches delivered with the truth: every ``interval`` it
lists one bounded page of each watched kind (a consistent read), and an object the list
shows that the watch has not delivered in that version — nor anything newer of it — for
longer than ``grace`` means that kind's watch is stale. /healthz then fails, and the
kubelet restarts the operator. The comparison is with ``Deliveries`` (the versions the
watch events carried), not with the cache, which also holds the applier's own writes.

It only reads (LIST); it never writes, decides or wakes anything. A list that fails (an
API outage) proves nothing either way and is skipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from conclave.api import kinds
from conclave.errors import ApiError

logger = logging.getLogger(__name__)

PAGE = 100
"""Objects compared per kind and scope at each audit: a bound on its cost."""

JSON = dict[str, Any]
Lister = Callable[[str, Mapping[str, str]], Awaitable[JSON]]
"""GET ``path`` with a query, returning the decoded list (``ApiClient.request`` fits)."""


@dataclasses.dataclass(frozen=True)
class Watched:
    """A kind the operator watches, and the label selector the API server filters it by."""

    kind: kinds.Kind
    selector: str | None = None

    def collection(self, namespace: str | None) -> str:
        """The namespaced collection, or with None the cluster-wide one."""
        if namespace is not None:
            return self.kind.collection(namespace)
        prefix = "/apis" if self.kind.group else "/api"
        return f"{prefix}/{self.kind.api_version}/{self.kind.plural}"


class Deliveries:
    """The resourceVersion of every object as its watch last delivered it."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, str, str], str] = {}

    def delivered(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        metadata = body.get("metadata", {})
        key = (kind, metadata.get("namespace", ""), metadata.get("name", ""))
        if event_type == "DELETED":
            self._versions.pop(key, None)
        else:
            self._versions[key] = str(metadata.get("resourceVersion", ""))

    def version(self, kind: str, namespace: str, name: str) -> str | None:
        """The version last delivered; None: none delivered, or it was deleted."""
        return self._versions.get((kind, namespace, name))

    def names(self, kind: str, namespace: str) -> list[str]:
        return sorted(name for k, ns, name in self._versions if k == kind and ns == namespace)


@dataclasses.dataclass(frozen=True)
class _Lag:
    """A listed version that the watch had not delivered, since ``since``."""

    delivered: str | None
    """What the watch had delivered of the object then; any change restarts the wait."""
    since: float


class WatchAudit:
    def __init__(
        self,
        lister: Lister,
        deliveries: Deliveries,
        watched: Sequence[Watched],
        namespaces: Sequence[str],
        *,
        grace: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``namespaces``: the watched ones; empty, the whole cluster."""
        self.lister = lister
        self.deliveries = deliveries
        self.watched = tuple(watched)
        self.scopes: tuple[str | None, ...] = tuple(namespaces) or (None,)
        self.grace = grace
        self.clock = clock
        self._lags: dict[tuple[str, str, str], _Lag] = {}

    async def run(self, interval: float) -> None:
        """Audit every ``interval`` seconds, until cancelled. The lists go one at a time: the
        audit never holds more than one of the API client's threads."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.audit()
            except Exception:  # a bug here must not end the audit, nor fail /healthz by itself
                logger.exception("Auditing the watches failed")

    async def audit(self) -> None:
        """List a page of every watched kind in every scope and compare it with what the
        watches delivered."""
        for watched in self.watched:
            for scope in self.scopes:
                query = {"limit": str(PAGE)}
                if watched.selector:
                    query["labelSelector"] = watched.selector
                try:
                    listed = await self.lister(watched.collection(scope), query)
                except ApiError as error:
                    logger.debug("Skipped auditing the %s watch: %s", watched.kind.plural, error)
                    continue
                self._compare(watched.kind.name, scope, listed)

    def stale(self) -> list[str]:
        """One line per kind whose watch lags past the grace period (empty: all deliver)."""
        now = self.clock()
        oldest: dict[str, tuple[float, str]] = {}
        for (kind, namespace, name), lag in self._lags.items():
            if now - lag.since > self.grace and (kind not in oldest or lag.since < oldest[kind][0]):
                oldest[kind] = (lag.since, f"{namespace}/{name}")
        return [
            f"the {kind} watch has not delivered the current {name} for {now - since:.0f}s"
            for kind, (since, name) in sorted(oldest.items())
        ]

    def _compare(self, kind: str, scope: str | None, listed: JSON) -> None:
        now = self.clock()
        items = listed.get("items") or []
        versions = {
            (item["metadata"].get("namespace", ""), item["metadata"]["name"]): str(
                item["metadata"].get("resourceVersion", "")
            )
            for item in items
        }
        complete = not listed.get("metadata", {}).get("continue")
        last = max((f"{ns}/{name}" for ns, name in versions), default="")
        namespaces = [scope] if scope is not None else sorted({ns for ns, _ in versions})
        expected: dict[tuple[str, str], str | None] = dict(versions)
        for namespace in namespaces:  # delivered but no longer listed: its deletion is due
            for name in self.deliveries.names(kind, namespace):
                if (namespace, name) not in versions and (complete or f"{namespace}/{name}" <= last):
                    expected[(namespace, name)] = None
        for (namespace, name), version in expected.items():
            key = (kind, namespace, name)
            delivered = self.deliveries.version(kind, namespace, name)
            if delivered == version:
                self._lags.pop(key, None)
                continue
            lag = self._lags.get(key)
            if lag is None or lag.delivered != delivered:
                self._lags[key] = _Lag(delivered, now)
        for key in [k for k in self._lags if k[0] == kind and (k[1], k[2]) not in expected]:
            if scope is None or key[1] == scope:
                del self._lags[key]  # neither listed nor delivered any more: nothing is due

"""An independent checker of the ownership rules of docs/singletons.md over a whole history,
for the soak benchmark. It knows nothing of the operator's code: it reads only what the
API published (its own watches of Leases and pods, and the API server's audit log) and
what apps that keep the documented rule did.

- ``History`` follows the Leases and pods of one namespace on watches of its own that
  resume from their last resourceVersion through any outage; after a 410 it lists again
  and marks the gap, and a grant that crosses a gap is counted as such, not judged.
- ``grants`` judges every change of a singleton's holder by the rules: the epoch only
  grows, a new owner is granted only once the previous one is confirmed gone, released,
  or revoked at least leaseDuration earlier; and a grant names its owner pod's uid.
- ``writes_outside_leadership`` finds writes (in the audit log) by an operator replica
  that reached the API more than the renew deadline after its last renewal of the leader
  Lease, and tells those it can explain (they arrived just after an API server outage
  that spanned the deadline; the replica was frozen between its check and its send) from
  the rest.

The apps that keep the rule, and the check that no two of them ran a singleton at once,
are in bench/apps.py.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import threading
import time
from collections import Counter
from typing import Any

import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

LEASE_LABEL = "conclave.dev/lease-of"
OWNER_POD_UID = "conclave.dev/owner-pod-uid"
LEADER_LEASE = "conclave-operator"
FAILURES = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)
"""What a call to the API raises while the control plane is down or restarting."""


def released_key(singleton: str) -> str:
    return f"conclave.dev/singleton.{singleton}.released"


@dataclasses.dataclass(frozen=True)
class Seen:
    """One state of an object, as a watch (or a list after a gap) delivered it."""

    kind: str
    """Lease or Pod."""
    name: str
    uid: str
    type: str
    """ADDED, MODIFIED, DELETED, or LISTED (after a gap)."""
    revision: int
    """Its resourceVersion: etcd's revision, one order for every kind."""
    at: float
    """Wall-clock time it was seen (the audit log's clock too)."""
    annotations: tuple[tuple[str, str], ...] = ()
    holder: str | None = None
    """A Lease's holderIdentity."""
    epoch: int = 0
    """A Lease's leaseTransitions."""
    renewed: float | None = None
    """A Lease's renewTime (wall clock), as its holder wrote it."""
    owner_pod_uid: str | None = None
    phase: str | None = None
    """A pod's phase."""
    after_gap: bool = False
    """Listed after a 410: what happened in between was not seen."""


class History:
    """Every Lease and pod state of a namespace, through outages."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.seen: list[Seen] = []
        self.gaps = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._follow, args=(kind,), daemon=True) for kind in ("Lease", "Pod")
        ]

    def __enter__(self) -> History:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=90)

    def _lister(self, kind: str) -> Any:
        if kind == "Lease":
            return client.CoordinationV1Api(self.api_client).list_namespaced_lease
        return client.CoreV1Api(self.api_client).list_namespaced_pod

    def _follow(self, kind: str) -> None:
        lister = self._lister(kind)
        version: str | None = None
        gap = False
        while not self.stopping.is_set():
            try:
                if version is None:
                    listed = lister(self.namespace, _request_timeout=10)
                    for item in listed.items:
                        self._record(kind, "LISTED", item, after_gap=gap)
                    version = listed.metadata.resource_version
                stream = watch.Watch()
                for event in stream.stream(
                    lister,
                    self.namespace,
                    resource_version=version,
                    timeout_seconds=30,
                    allow_watch_bookmarks=True,
                    _request_timeout=(5, 40),
                ):
                    if event["type"] != "BOOKMARK":
                        self._record(kind, event["type"], event["object"])
                    version = stream.resource_version or version
                    if self.stopping.is_set():
                        return
            except ApiException as error:
                if error.status == 410:  # history compacted away: list again, and say so
                    version, gap = None, True
                    with self.lock:
                        self.gaps += 1
                self.stopping.wait(0.2)
            except FAILURES:
                self.stopping.wait(0.2)  # resume from the last version seen

    def _record(self, kind: str, type_: str, item: Any, after_gap: bool = False) -> None:
        metadata = item.metadata
        annotations = metadata.annotations or {}
        lease = kind == "Lease"
        seen = Seen(
            kind=kind,
            name=metadata.name,
            uid=metadata.uid,
            type=type_,
            revision=int(metadata.resource_version),
            at=time.time(),
            annotations=tuple(sorted(annotations.items())),
            holder=item.spec.holder_identity if lease else None,
            epoch=(item.spec.lease_transitions or 0) if lease else 0,
            renewed=item.spec.renew_time.timestamp() if lease and item.spec.renew_time else None,
            owner_pod_uid=annotations.get(OWNER_POD_UID),
            phase=None if lease else item.status.phase,
            after_gap=after_gap,
        )
        with self.lock:
            self.seen.append(seen)

    def snapshot(self) -> list[Seen]:
        with self.lock:
            return sorted(self.seen, key=lambda s: (s.revision, s.at))


def grants(seen: list[Seen], duration: float, tolerance: float) -> tuple[Counter[str], list[str]]:
    """Every grant of a singleton Lease to a new owner, by the rule that allowed it, and
    every violation of the rules."""
    pods = [s for s in seen if s.kind == "Pod"]
    causes: Counter[str] = Counter()
    violations: list[str] = []
    last: dict[str, Seen] = {}  # per Lease: its last state with a holder
    revoked: dict[str, Seen] = {}  # per Lease: when its holder was first seen cleared
    for event in seen:
        if event.kind != "Lease" or event.name == LEADER_LEASE or event.type == "DELETED":
            continue
        previous = last.get(event.name)
        if not event.holder:
            if previous is not None and event.name not in revoked:
                revoked[event.name] = event
            continue
        if not event.owner_pod_uid and "conclave.dev/owner-pod" in dict(event.annotations):
            violations.append(f"{event.name}: granted to {event.holder} without its pod's uid")
        if previous is not None and (previous.holder, previous.epoch) != (event.holder, event.epoch):
            if event.epoch <= previous.epoch:
                violations.append(f"{event.name}: epoch went {previous.epoch} → {event.epoch}")
            if (previous.holder, previous.owner_pod_uid) == (event.holder, event.owner_pod_uid):
                causes["same member again"] += 1
            elif event.after_gap:
                causes["across a watch gap (checked by the apps)"] += 1
            else:
                cause = _why(event, previous, revoked.get(event.name), pods, duration, tolerance)
                causes[cause] += cause != "VIOLATION"
                if cause == "VIOLATION":
                    violations.append(
                        f"{event.name}: granted to {event.holder} while {previous.holder} may run"
                    )
        last[event.name] = event
        revoked.pop(event.name, None)
    return causes, violations


def _why(
    grant: Seen, previous: Seen, revocation: Seen | None, pods: list[Seen], duration: float, tolerance: float
) -> str:
    before = [p for p in pods if p.uid == previous.owner_pod_uid and p.revision < grant.revision]
    if any(p.type == "DELETED" or p.phase in ("Succeeded", "Failed") for p in before):
        return "owner gone"
    if any(dict(p.annotations).get(released_key(grant.name)) == str(previous.epoch) for p in before):
        return "released"
    if revocation is not None and grant.at - revocation.at >= duration - tolerance:
        return "revoked, lease waited out"
    if revocation is not None and revocation.after_gap:
        return "across a watch gap (checked by the apps)"
    return "VIOLATION"


def _received(entry: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(
        entry["requestReceivedTimestamp"].replace("Z", "+00:00")
    ).timestamp()


WRITES = ("create", "update", "patch", "delete")
SILENCE = 1.0
"""A gap this long between two requests the API server received: it was not reading."""


def _in_backlog(received: list[float], boundary: float, at: float) -> bool:
    """True when the API server received nothing for SILENCE seconds around ``boundary``,
    and ``at`` came within SILENCE of it reading again (the backlog of a frozen server)."""
    after = bisect.bisect_right(received, boundary)
    if after == 0 or after == len(received):
        return False
    resumed = received[after]
    return resumed - received[after - 1] >= SILENCE and at - resumed <= SILENCE


@dataclasses.dataclass
class Writes:
    """The operator's writes that reached the API after its writer's renew deadline."""

    checked: int = 0
    violations: list[str] = dataclasses.field(default_factory=list)
    """Unexplained: the replica wrote when it could not prove it led."""
    read_late: list[str] = dataclasses.field(default_factory=list)
    """The API server received nothing at all for a while around the moment the deadline
    passed (it was frozen, or down), and this write came just after it read again: sent,
    or retried by the client, during the outage. The replica checked that it led before
    it sent the write; when exactly the bytes left, the server cannot see."""
    frozen_after_check: list[str] = dataclasses.field(default_factory=list)
    """Sent late because the replica itself was frozen between its leadership check and the
    send: the window every lease leaves, which the writes' preconditions must fence."""


def writes_outside_leadership(
    audit: list[dict[str, Any]],
    seen: list[Seen],
    namespace: str,
    deadline: float,
    frozen: dict[str, list[tuple[float, float]]],
    tolerance: float = 0.5,
) -> Writes:
    """Every write by an operator replica (the identities in ``frozen``, with the wall-clock
    times each was frozen) must reach the API within the renew deadline of a renewal (or
    acquisition) of the leader Lease by that replica, by the renewTime it wrote (this
    machine's clock, as the audit log's: a replica leads while its last renewal began less
    than the deadline ago, and it began before the renewTime it wrote). Renewals are read
    from the Lease's states, so one the watch missed in a gap still counts once a later
    state shows it. What arrives later is explained if it can be (``Writes``)."""
    renewals: dict[str, set[float]] = {}
    for event in seen:
        if event.kind == "Lease" and event.name == LEADER_LEASE and event.holder and event.renewed:
            renewals.setdefault(event.holder, set()).add(event.renewed)
    received = sorted(_received(entry) for entry in audit)
    found = Writes()
    for entry in audit:
        identity = entry.get("userAgent", "").rpartition("(")[2].rstrip(")")
        uri = entry.get("requestURI", "")
        if (
            identity not in frozen
            or entry.get("verb") not in WRITES
            or f"/namespaces/{namespace}/" not in uri
        ):
            continue
        if "selfsubjectaccessreviews" in uri or f"/leases/{LEADER_LEASE}" in uri or uri.endswith("/leases"):
            continue  # a question, or the election itself
        at = _received(entry)
        found.checked += 1
        earlier = [r for r in renewals.get(identity, set()) if r <= at + tolerance]
        if earlier and at - max(earlier) <= deadline + tolerance:
            continue
        code = entry.get("responseStatus", {}).get("code")
        line = f"{identity} wrote {entry['verb']} {uri} at {at:.3f} ({code}), "
        if not earlier:
            found.violations.append(line + "before any renewal")
            continue
        renewed = max(earlier)
        line += f"{at - renewed:.2f}s after its renewal"
        if _in_backlog(received, renewed + deadline, at):
            found.read_late.append(line)
        elif any(start < at and end > renewed for start, end in frozen[identity]):
            found.frozen_after_check.append(line)
        else:
            found.violations.append(line)
    return found

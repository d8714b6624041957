"""The applier: the only code that writes to the Kubernetes API.

It applies a plan object by object, ``concurrency`` objects at a time (so one singleton's
status never waits for every other singleton's Lease), each in its own order: the
object's owned objects (a singleton's Lease is the truth its status only mirrors), then
its status, then what it no longer uses. Then, once every object has had its turn, the
pod marks (one patch per pod), then the events and metric samples: nobody's Lease or
status waits for another object's events. A status is written only if the owned writes
before it succeeded (it would describe what did not happen), and an object's events and
samples go out only once its status is published (they describe that status; planned
again from the old one, they would be posted twice).

It sends only what differs from what is there (a merge patch computed by
``core.patches``), every status write guarded by the resourceVersion the plan was made
from, and nothing at all unless this replica can still prove it leads. A 409 re-reads the
object into the cache and moves on to the next object: the supervisor plans again at once
on the fresh copy, and the other objects keep their writes and their events. It never
resends a patch. Other API errors are collected and returned, to be surfaced as a
condition by the next plan.

A status the API refuses (a 422, or any other error that is not a conflict) is reported
at once through a write that can succeed: a patch of the conditions alone, with the
kind's condition (``validity.CONDITION_OF``: Ready, Populated, Placed) False with reason
ApiError. Its events stay unposted, as for any status that was not published.

An object may have several plans, applied in the plan's order, each only once the ones
before it were published: a topology's members ConfigMap and membership events follow
its status (the next plan compares with that ConfigMap, so a write that failed is planned
again, and a change is announced once).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from conclave.act import announcing
from conclave.adapters import metrics
from conclave.adapters.apiclient import ApiClient
from conclave.adapters.cache import Cache
from conclave.api import Condition, kinds, times
from conclave.core import patches, validity
from conclave.core.plans import (
    EventIntent,
    ObjectPlan,
    ObjectRef,
    OwnedObject,
    Plan,
    PodAnnotations,
    Removal,
    StatusUpdate,
)
from conclave.errors import ApiError, ConflictError, NotFoundError

logger = logging.getLogger(__name__)

CONCURRENCY = 32
"""How many objects the applier writes at once (each in its own order); the API client's
connections and the server's priority and fairness bound what is really in flight."""


@dataclasses.dataclass(frozen=True)
class WriteFailure:
    target: ObjectRef
    error: ApiError


@dataclasses.dataclass
class _Progress:
    """What took effect of one object's plans, as they are applied."""

    written: bool = False
    published: bool = False
    conflicted: bool = False
    failures: list[WriteFailure] = dataclasses.field(default_factory=list)
    marks: list[PodAnnotations] = dataclasses.field(default_factory=list)
    announced: list[ObjectPlan] = dataclasses.field(default_factory=list)
    """Plans whose status is published: their events and samples go out after every
    object's own writes (nobody's Lease or status waits for another's events)."""


@dataclasses.dataclass(frozen=True)
class Applied:
    """What of a plan took effect, by object."""

    written: frozenset[ObjectRef]
    """Objects whose owned writes all succeeded (their Leases say what the plan decided)."""
    published: frozenset[ObjectRef]
    """Objects whose status is what the plan decided (written, or already so)."""
    conflicted: tuple[ObjectRef, ...]
    """Objects that changed since they were read: plan them again, at once."""
    failures: tuple[WriteFailure, ...]
    unmarked: frozenset[ObjectRef] = frozenset()
    """Objects whose pod marks were not all written (the next plan tries again)."""
    marked: tuple[PodAnnotations, ...] = ()
    """The pod patches that were written."""


class Applier:
    def __init__(
        self,
        api: ApiClient,
        cache: Cache,
        guard: Callable[[], None],
        identity: str,
        concurrency: int = CONCURRENCY,
    ) -> None:
        """``guard`` raises LeadershipLost when this replica may no longer write (the API
        client calls it right before each write is sent, once the write's turn has come);
        ``concurrency``: how many objects (and then pods) are written at once."""
        self.api = api
        self.cache = cache
        self.guard = guard
        self.identity = identity
        self.concurrency = max(1, concurrency)

    async def apply(self, plan: Plan) -> Applied:
        """Carry out the plan, object by object, ``concurrency`` objects at a time, each in
        its own order. Raises only LeadershipLost."""
        by_object: dict[ObjectRef, list[ObjectPlan]] = {}
        for item in plan.objects:
            by_object.setdefault(item.target, []).append(item)
        progress = [_Progress() for _ in by_object]
        for items, done in zip(by_object.values(), progress, strict=True):
            if all(item.idle for item in items):  # already as planned: no task to run
                done.written = done.published = True
        await self._bounded(
            [
                functools.partial(self._apply_object, items, done)
                for items, done in zip(by_object.values(), progress, strict=True)
                if not done.published
            ]
        )
        marks = [mark for done in progress for mark in done.marks]
        pods = _merged((*marks, *plan.pod_annotations))
        written: dict[str, bool] = {}
        await self._bounded([functools.partial(self._annotate_pod, pod, written) for pod in pods])
        unmarked = {
            ref
            for done, ref in zip(progress, by_object, strict=True)
            if any(written.get(mark.name) is False for mark in done.marks)
        }
        announced = [item for done in progress for item in done.announced]
        events = [event for item in announced for event in item.events]
        await self._bounded([functools.partial(self._post_event, event) for event in events])
        for item in announced:
            announcing.record(item.metrics)
        announcing.record(plan.metrics)
        return Applied(
            frozenset(ref for done, ref in zip(progress, by_object, strict=True) if done.written),
            frozenset(ref for done, ref in zip(progress, by_object, strict=True) if done.published),
            tuple(ref for done, ref in zip(progress, by_object, strict=True) if done.conflicted),
            tuple(failure for done in progress for failure in done.failures),
            frozenset(unmarked),
            tuple(pod for pod in pods if written.get(pod.name)),
        )

    async def _bounded(self, jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
        """Run the jobs, at most ``concurrency`` at a time; the first exception (only
        LeadershipLost gets out of a job) cancels the rest and is raised."""
        semaphore = asyncio.Semaphore(self.concurrency)

        async def run(job: Callable[[], Awaitable[None]]) -> None:
            async with semaphore:
                await job()  # made only now: a job cancelled while waiting was never begun

        try:
            async with asyncio.TaskGroup() as group:
                for job in jobs:
                    group.create_task(run(job))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None

    async def _apply_object(self, items: Sequence[ObjectPlan], done: _Progress) -> None:
        """One object's plans in order, each only once the ones before it were published."""
        for item in items:
            try:
                if not await self._apply_owned(item, done.failures):
                    return
                done.written = True
                done.marks += item.pod_annotations  # they mirror the Lease just written
                if not await self._apply_status(item.status, done.failures):
                    done.published = False
                    return
                done.published = True
                await self._apply_removals(item.removals, done.failures)
            except ConflictError as error:
                logger.info("Re-read %s %s after a conflict: %s", item.target.kind, item.target.name, error)
                done.conflicted = True
                return
            done.announced.append(item)

    async def _apply_owned(self, item: ObjectPlan, failures: list[WriteFailure]) -> bool:
        """True when every owned write succeeded. Raises ConflictError (after a re-read)."""
        ok = True
        for owned in item.owned:
            try:
                await self._write_owned(owned)
            except ConflictError:
                raise
            except ApiError as error:
                logger.warning("Failed to write %s %s: %s", owned.kind, owned.name, error)
                failures.append(WriteFailure(owned.owner, error))
                ok = False
        return ok

    async def _apply_status(self, update: StatusUpdate | None, failures: list[WriteFailure]) -> bool:
        """True when the status is as planned. Raises ConflictError (after a re-read)."""
        if update is None:
            return True
        try:
            await self._update_status(update)
        except ConflictError:
            raise
        except NotFoundError:
            return False  # deleted meanwhile: nothing to report on
        except ApiError as error:
            target = update.target
            logger.warning("Failed to update the status of %s %s: %s", target.kind, target.name, error)
            failures.append(WriteFailure(target, error))
            await self._report_refused(update, error)
            return False
        return True

    async def _report_refused(self, update: StatusUpdate, error: ApiError) -> None:
        """Say on the object that its status was refused, in a patch of its conditions alone
        (small, and what the schema accepts, so it can succeed where the whole status did not).
        Best effort: a failure is logged, and the next plan tries again."""
        target = update.target
        wanted = validity.CONDITION_OF[target.kind]
        message = f"{target.kind} {target.name}: {error}"[: announcing.MAX_NOTE_LENGTH]
        now = times.whole_seconds(datetime.datetime.now(datetime.UTC))
        planned = list(getattr(update.desired, "conditions", None) or [])
        if not any(condition.type == wanted for condition in planned):
            planned.append(Condition(type=wanted, status="True", reason="Unknown", last_transition_time=now))
        published = [
            (
                condition.model_copy(
                    update={
                        "status": "False",
                        "reason": "ApiError",
                        "message": message,
                        "last_transition_time": condition.last_transition_time
                        if condition.status == "False"
                        else now,
                    }
                )
                if condition.type == wanted
                else condition
            ).model_dump(mode="json", by_alias=True, exclude_none=True)
            for condition in planned
        ]
        if published == update.current.get("conditions"):
            return
        path = kinds.of(target.kind).path(target.namespace, target.name)
        body = {"metadata": {"resourceVersion": update.resource_version}, "status": {"conditions": published}}
        try:
            result = await self.api.merge_patch(f"{path}/status", body, guard=self.guard)
        except ApiError as again:
            logger.warning(
                "Failed to report the refused status of %s %s: %s", target.kind, target.name, again
            )
            return
        metrics.WRITES_TOTAL.labels(write="status").inc()
        self.cache.put(target.kind, result)

    async def _apply_removals(self, removals: Iterable[Removal], failures: list[WriteFailure]) -> None:
        for removal in removals:
            try:
                await self._remove(removal)
            except ConflictError:
                raise
            except ApiError as error:
                logger.warning("Failed to delete %s %s: %s", removal.kind, removal.name, error)
                failures.append(WriteFailure(removal.owner, error))

    async def _annotate_pod(self, update: PodAnnotations, written: dict[str, bool]) -> None:
        """Mirror ownership on a pod; the uid makes a same-named successor refuse it (409).

        Best effort, like events: the Lease is the truth. ``written`` gets the pod's name:
        True once patched, False when the patch failed (the next plan tries again); a pod
        that is gone gets nothing.
        """
        path = kinds.POD.path(update.namespace, update.name)
        patch = {"metadata": {"uid": update.uid, "annotations": dict(update.annotations)}}
        try:
            result = await self.api.merge_patch(path, patch, guard=self.guard)
        except NotFoundError:
            self.cache.drop("Pod", update.namespace, update.name)
        except ApiError as error:
            logger.warning("Failed to annotate pod %s: %s", update.name, error)
            written[update.name] = False
        else:
            metrics.WRITES_TOTAL.labels(write="pod").inc()
            self.cache.put("Pod", result)
            written[update.name] = True

    async def _write_owned(self, update: OwnedObject) -> None:
        """Create the object, or merge its content in; a 409 means the cache was behind."""
        owner = update.owner
        reference = {
            "apiVersion": kinds.of(owner.kind).api_version,
            "kind": owner.kind,
            "name": owner.name,
            "uid": owner.uid,
            "controller": True,
            "blockOwnerDeletion": False,
        }
        metadata: dict[str, object] = {
            "name": update.name,
            "namespace": update.namespace,
            "labels": dict(update.labels),
            "ownerReferences": [reference],
        }
        if update.annotations:
            metadata["annotations"] = dict(update.annotations)
        body = {"apiVersion": update.api_version, "kind": update.kind, "metadata": metadata, **update.content}
        path = f"{update.collection}/{update.name}"
        try:
            if update.exists:
                changes: dict[str, object] = {"labels": dict(update.labels)}
                if update.annotations:
                    changes["annotations"] = dict(update.annotations)
                if update.resource_version is not None:
                    changes["resourceVersion"] = update.resource_version
                result = await self.api.merge_patch(
                    path, {"metadata": changes, **update.content}, guard=self.guard
                )
            else:
                result = await self.api.create(update.collection, body, guard=self.guard)
        except ConflictError:  # it exists after all: learn it, decide again
            await self._reread(update.kind, path, update.namespace, update.name)
            raise
        except NotFoundError:  # it was deleted meanwhile: the next plan creates it
            self.cache.drop(update.kind, update.namespace, update.name)
            raise ConflictError(404, "NotFound", f"{update.kind} {update.name} vanished") from None
        metrics.WRITES_TOTAL.labels(write=update.kind.lower()).inc()
        self.cache.put(update.kind, result)

    async def _remove(self, removal: Removal) -> None:
        """Delete by uid precondition; a 409 means the name now belongs to another object."""
        try:
            await self.api.delete(removal.path, {"preconditions": {"uid": removal.uid}}, guard=self.guard)
        except NotFoundError:
            pass  # gone already
        except ConflictError:
            await self._reread(removal.kind, removal.path, removal.namespace, removal.name)
            raise
        else:
            metrics.WRITES_TOTAL.labels(write=f"{removal.kind.lower()}-delete").inc()
            logger.info(
                "Deleted %s %s, which %s no longer uses", removal.kind, removal.name, removal.owner.name
            )
        self.cache.drop(removal.kind, removal.namespace, removal.name)

    async def _reread(self, kind: str, path: str, namespace: str, name: str) -> None:
        try:
            self.cache.put(kind, await self.api.get(path))
        except NotFoundError:
            self.cache.drop(kind, namespace, name)

    async def _update_status(self, update: StatusUpdate) -> None:
        """The status model is dumped here, once: only the fields the plan set."""
        patch = patches.diff(update.current, patches.desired(update.current, update.desired.wire()))
        if not patch:
            return
        target = update.target
        path = kinds.of(target.kind).path(target.namespace, target.name)
        body = {"metadata": {"resourceVersion": update.resource_version}, "status": patch}
        try:
            result = await self.api.merge_patch(f"{path}/status", body, guard=self.guard)
        except ConflictError:
            await self._reread(target.kind, path, target.namespace, target.name)
            raise
        except NotFoundError:
            self.cache.drop(target.kind, target.namespace, target.name)
            raise
        metrics.WRITES_TOTAL.labels(write="status").inc()
        self.cache.put(target.kind, result)

    async def _post_event(self, event: EventIntent) -> None:
        """Post an Event; a failure is logged and counted, never fatal to the plan."""
        body = announcing.event(event, self.identity, time.time_ns())
        try:
            await self.api.create(kinds.EVENT.collection(event.regarding.namespace), body, guard=self.guard)
        except ApiError as error:
            ref = event.regarding
            logger.warning("Failed to post event %s about %s %s: %s", event.reason, ref.kind, ref.name, error)
        else:
            metrics.WRITES_TOTAL.labels(write="event").inc()


def _merged(marks: Iterable[PodAnnotations]) -> list[PodAnnotations]:
    """One patch per pod, whatever number of singletons' marks it carries."""
    by_pod: dict[tuple[str, str, str], dict[str, str | None]] = {}
    for mark in marks:
        by_pod.setdefault((mark.namespace, mark.name, mark.uid), {}).update(mark.annotations)
    return [PodAnnotations(*pod, changes) for pod, changes in sorted(by_pod.items())]

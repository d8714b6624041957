"""The applier: the only code that writes to the Kubernetes API.

It sends only what differs from what is there (a merge patch computed by
``core.patches``), every status write guarded by the resourceVersion the plan was made
from, and nothing at all unless this replica can still prove it leads. On a 409 it
re-reads the object into the cache and raises ConflictError, so the supervisor decides
again on the fresh copy; it never resends a patch. Other API errors are collected per
write and returned, to be surfaced as conditions by the next plan.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Callable

from conclave.adapters import metrics
from conclave.adapters.apiclient import ApiClient
from conclave.adapters.cache import Cache
from conclave.api import kinds, times
from conclave.core import patches
from conclave.core.plans import (
    EventIntent,
    ObjectRef,
    OwnedObject,
    Plan,
    PodAnnotations,
    Removal,
    StatusUpdate,
)
from conclave.errors import ApiError, ConflictError, NotFoundError

logger = logging.getLogger(__name__)

MAX_NOTE_LENGTH = 1024


@dataclasses.dataclass(frozen=True)
class WriteFailure:
    target: ObjectRef
    error: ApiError


def object_path(ref: ObjectRef) -> str:
    return kinds.of(ref.kind).path(ref.namespace, ref.name)


class Applier:
    def __init__(self, api: ApiClient, cache: Cache, guard: Callable[[], None], identity: str) -> None:
        """``guard`` raises LeadershipLost when this replica may no longer write."""
        self.api = api
        self.cache = cache
        self.guard = guard
        self.identity = identity

    async def apply(self, plan: Plan) -> list[WriteFailure]:
        """Carry out the plan. Raises ConflictError (after a re-read) and LeadershipLost.

        Owned objects go first: a status mirrors its Lease, so a status whose owned write
        failed is not written (it would describe what did not happen).
        """
        failures: list[WriteFailure] = []
        changes: tuple[OwnedObject | Removal, ...] = (*plan.owned, *plan.removals)  # as Plan orders
        for change in changes:
            try:
                if isinstance(change, Removal):
                    await self._remove(change)
                else:
                    await self._write_owned(change)
            except ConflictError:
                raise
            except ApiError as error:
                verb = "delete" if isinstance(change, Removal) else "write"
                logger.warning("Failed to %s %s %s: %s", verb, change.kind, change.name, error)
                failures.append(WriteFailure(change.owner, error))
        failed = {failure.target for failure in failures}
        for update in plan.status_updates:
            if update.target in failed:
                continue
            try:
                await self._update_status(update)
            except ConflictError:
                raise
            except NotFoundError:
                continue  # deleted meanwhile: nothing to report on
            except ApiError as error:
                logger.warning(
                    "Failed to update the status of %s %s: %s", update.target.kind, update.target.name, error
                )
                failures.append(WriteFailure(update.target, error))
        for pod in plan.pod_annotations:
            await self._annotate_pod(pod)
        for event in plan.events:
            await self._post_event(event)
        for sample in plan.metrics:
            family = metrics.BY_NAME[sample.metric]
            metric = family.labels(**sample.labels) if sample.labels else family
            if sample.mode == "inc":
                metric.inc(sample.value)  # type: ignore[union-attr]
            elif sample.mode == "observe":
                metric.observe(sample.value)  # type: ignore[union-attr]
            elif sample.mode == "declare":
                continue  # labels() above made the series
            else:
                metric.set(sample.value)  # type: ignore[union-attr]
        return failures

    async def _annotate_pod(self, update: PodAnnotations) -> None:
        """Mirror ownership on a pod; the uid makes a same-named successor refuse it (409).

        Best effort, like events: the Lease is the truth, and the next plan retries.
        """
        self.guard()
        path = kinds.POD.path(update.namespace, update.name)
        patch = {"metadata": {"uid": update.uid, "annotations": dict(update.annotations)}}
        try:
            result = await self.api.merge_patch(path, patch)
        except NotFoundError:
            self.cache.drop("Pod", update.namespace, update.name)
        except ApiError as error:
            logger.warning("Failed to annotate pod %s: %s", update.name, error)
        else:
            metrics.WRITES_TOTAL.labels(write="pod").inc()
            self.cache.put("Pod", result)

    async def _write_owned(self, update: OwnedObject) -> None:
        """Create the object, or merge its content in; a 409 means the cache was behind."""
        self.guard()
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
                result = await self.api.merge_patch(path, {"metadata": changes, **update.content})
            else:
                result = await self.api.create(update.collection, body)
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
        self.guard()
        try:
            await self.api.delete(removal.path, {"preconditions": {"uid": removal.uid}})
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
        patch = patches.diff(update.current, update.desired)
        if not patch:
            return
        self.guard()
        path = object_path(update.target)
        body = {"metadata": {"resourceVersion": update.resource_version}, "status": patch}
        try:
            result = await self.api.merge_patch(f"{path}/status", body)
        except ConflictError:
            target = update.target
            await self._reread(target.kind, path, target.namespace, target.name)
            raise
        except NotFoundError:
            self.cache.drop(update.target.kind, update.target.namespace, update.target.name)
            raise
        metrics.WRITES_TOTAL.labels(write="status").inc()
        self.cache.put(update.target.kind, result)

    async def _post_event(self, event: EventIntent) -> None:
        """Post an Event; a failure is logged and counted, never fatal to the plan."""
        self.guard()
        ref = event.regarding
        body = {
            "apiVersion": kinds.EVENT.api_version,
            "kind": kinds.EVENT.name,
            # client-go's naming: unique without a random source, and sorted by time
            "metadata": {"name": f"{ref.name}.{time.time_ns():x}", "namespace": ref.namespace},
            "eventTime": times.micro_time(datetime.datetime.now(datetime.UTC)),
            "reportingController": "conclave.dev/operator",
            "reportingInstance": self.identity,
            "action": event.action,
            "reason": event.reason,
            "type": event.type,
            "note": event.note[:MAX_NOTE_LENGTH],
            "regarding": {
                "apiVersion": kinds.of(ref.kind).api_version,
                "kind": ref.kind,
                "namespace": ref.namespace,
                "name": ref.name,
                "uid": ref.uid,
            },
        }
        try:
            await self.api.create(kinds.EVENT.collection(ref.namespace), body)
        except ApiError as error:
            logger.warning("Failed to post event %s about %s %s: %s", event.reason, ref.kind, ref.name, error)
        else:
            metrics.WRITES_TOTAL.labels(write="event").inc()

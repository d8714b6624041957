"""What the applier announces once an object's status is published: its Events (as
events.k8s.io/v1 objects, named as client-go names them) and its metric samples."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable
from typing import Any

from conclave.adapters import metrics
from conclave.api import kinds, times
from conclave.core.plans import EventIntent, MetricSample

MAX_NOTE_LENGTH = 1024


def event(event: EventIntent, identity: str, now_ns: int) -> dict[str, Any]:
    """The events.k8s.io/v1 Event that says ``event``, reported by replica ``identity``."""
    ref = event.regarding
    return {
        "apiVersion": kinds.EVENT.api_version,
        "kind": kinds.EVENT.name,
        "metadata": {"name": event_name(ref.name, now_ns), "namespace": ref.namespace},
        "eventTime": times.micro_time(datetime.datetime.fromtimestamp(now_ns / 1e9, datetime.UTC)),
        "reportingController": "conclave.dev/operator",
        "reportingInstance": identity,
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


MAX_EVENT_NAME = 253


def event_name(regarding: str, now_ns: int) -> str:
    """client-go's event name, ``<object name>.<nanoseconds in hex>``: unique without a random
    source, and sorted by time among one object's events. When that would pass the 253
    characters of a DNS subdomain, the object name is cut short and a hash of the whole
    name keeps names of different objects apart; the result stays a valid subdomain."""
    stamp = f".{now_ns:x}"
    if len(regarding) + len(stamp) <= MAX_EVENT_NAME:
        return f"{regarding}{stamp}"
    digest = "-" + hashlib.sha256(regarding.encode()).hexdigest()[:10]
    prefix = regarding[: MAX_EVENT_NAME - len(stamp) - len(digest)].rstrip(".-")
    return f"{prefix}{digest}{stamp}"


def record(samples: Iterable[MetricSample]) -> None:
    """Set, add to or observe each sample's metric (core names them; only this touches them)."""
    for sample in samples:
        family = metrics.BY_NAME[sample.metric]
        metric = family.labels(**sample.labels) if sample.labels else family
        if sample.mode == "inc":
            metric.inc(sample.value)  # type: ignore[union-attr]
        elif sample.mode == "observe":
            metric.observe(sample.value)  # type: ignore[union-attr]
        elif sample.mode == "set":
            metric.set(sample.value)  # type: ignore[union-attr]
        # "declare": labels() above made the series

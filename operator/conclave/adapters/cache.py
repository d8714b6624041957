"""What the watches have shown: the latest body of every object the operator follows.

Handlers write here and nothing else does (besides the applier, which stores what the
API answered to its own writes, so the next iteration does not act on a stale copy).
Supervisors read it to build observations without asking the API again.

It stores what it is given without copying it (a watch event's body is a fresh object
that nobody changes afterwards), and what it hands out is a read-only view by contract:
readers never change a body. Like client-go's transform functions, it keeps of Pods and
EndpointSlices only the fields the operator reads (``KEPT``), and of every object it
drops ``metadata.managedFields``: at thousands of pods, that is most of the memory.

Beside each body it can keep what a reader derived from it (``derived``: a parsed model),
until the body's resourceVersion changes: an object is parsed once per version, not once
per iteration; and equal parts of what readers derived can be kept once (``shared``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, TypeVar

JSON = dict[str, Any]
T = TypeVar("T")
SHARED = 4096
"""How many distinct shared values (``Cache.shared``) the cache keeps."""

METADATA_KEPT = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "labels",
    "annotations",
    "deletionTimestamp",
    "ownerReferences",
    "creationTimestamp",
)
KEPT: Mapping[str, Mapping[str, tuple[str, ...] | None]] = {
    "Pod": {"status": ("podIP", "phase", "conditions")},
    "EndpointSlice": {"addressType": None, "endpoints": None},
    "Lease": {"spec": ("holderIdentity", "leaseTransitions", "leaseDurationSeconds")},
}
"""Kind → top-level field → the sub-fields kept (None: all of it); metadata is always
kept (METADATA_KEPT). A new reader of another field of these kinds adds it here."""


def slim(kind: str, body: Mapping[str, Any]) -> JSON:
    """``body`` as the cache keeps it: without managedFields, and for the kinds of ``KEPT``
    only the fields named there. Shares what it keeps with ``body`` (no copy)."""
    metadata = body.get("metadata") or {}
    fields = KEPT.get(kind)
    if fields is None:
        kept = dict(body)
        if "managedFields" in metadata:
            kept["metadata"] = {key: value for key, value in metadata.items() if key != "managedFields"}
        return kept
    kept = {"metadata": {key: metadata[key] for key in METADATA_KEPT if key in metadata}}
    for field, parts in fields.items():
        value = body.get(field)
        if value is None:
            continue
        if parts is not None and isinstance(value, Mapping):
            value = {part: value[part] for part in parts if part in value}
        kept[field] = value
    return kept


class _Entry:
    """One object's latest body, and what readers derived from that version of it."""

    __slots__ = ("body", "derived", "version")

    def __init__(self, body: JSON) -> None:
        metadata = body["metadata"]
        self.body = body
        self.version = (metadata.get("uid", ""), metadata.get("resourceVersion", ""))
        self.derived: dict[str, Any] = {}


class Cache:
    """Objects by kind, then namespace, then name: a supervisor reads one namespace at a
    time, so it never walks (or sorts) the whole cluster's pods."""

    def __init__(self, shared: int = SHARED) -> None:
        self._objects: dict[str, dict[str, dict[str, _Entry]]] = {}
        self._sorted: dict[tuple[str, str], list[str]] = {}
        """Each (kind, namespace)'s names in order, kept until a name comes or goes."""
        self._shared: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._shared_limit = shared

    def put(self, kind: str, body: Mapping[str, Any]) -> None:
        """Remember the latest ``body``; a stale copy only costs a 409 and a re-read later.

        resourceVersion is opaque, so the cache never orders copies by it.
        """
        metadata = body["metadata"]
        namespace = metadata.get("namespace", "")
        objects = self._objects.setdefault(kind, {}).setdefault(namespace, {})
        entry = _Entry(slim(kind, body))
        previous = objects.get(metadata["name"])
        if previous is None:
            self._sorted.pop((kind, namespace), None)
        elif previous.version == entry.version:  # the same version again (a re-list)
            entry.derived = previous.derived
        objects[metadata["name"]] = entry

    def drop(self, kind: str, namespace: str, name: str) -> None:
        if self._objects.get(kind, {}).get(namespace, {}).pop(name, None) is not None:
            self._sorted.pop((kind, namespace), None)

    def get(self, kind: str, namespace: str, name: str) -> JSON | None:
        """The body (read-only: never change it), or None."""
        entry = self._objects.get(kind, {}).get(namespace, {}).get(name)
        return entry.body if entry is not None else None

    def in_namespace(self, kind: str, namespace: str) -> Iterator[JSON]:
        """The namespace's objects of ``kind``, by name (read-only: never change them)."""
        objects = self._objects.get(kind, {}).get(namespace, {})
        names = self._sorted.get((kind, namespace))
        if names is None:
            names = self._sorted[kind, namespace] = sorted(objects)
        for name in names:
            yield objects[name].body

    def derived(self, kind: str, body: Mapping[str, Any], purpose: str, make: Callable[[Any], T]) -> T:
        """``make(body)``, computed once per version of the object (its resourceVersion and
        uid, so a same-named successor is made afresh) while it is the one cached;
        ``purpose`` keeps apart what different readers derive. ``make`` must depend on
        nothing but the body."""
        metadata = body["metadata"]
        entry = self._objects.get(kind, {}).get(metadata.get("namespace", ""), {}).get(metadata["name"])
        if entry is None or entry.body is not body:
            return make(body)  # not the cached copy: nothing to keep it with
        if purpose in entry.derived:
            value: T = entry.derived[purpose]
            return value
        value = entry.derived[purpose] = make(body)
        return value

    def shared(self, key: Hashable, value: T) -> T:
        """The value first given for ``key`` (among the latest ``shared`` keys), else
        ``value``: equal parts of parsed objects (10,000 singletons with one spec, the same
        condition on each) are kept once. Only for values nobody changes, as derived ones."""
        found = self._shared.get(key)
        if found is not None:
            self._shared.move_to_end(key)
            kept: T = found
            return kept
        self._shared[key] = value
        if len(self._shared) > self._shared_limit:
            self._shared.popitem(last=False)
        return value

"""What the watches have shown: the latest body of every object the operator follows.

Handlers write here and nothing else does (besides the applier, which stores what the
API answered to its own writes, so the next iteration does not act on a stale copy).
Supervisors read it to build observations without asking the API again.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

JSON = dict[str, Any]


class Cache:
    """Objects by kind, then namespace, then name: a supervisor reads one namespace at a
    time, so it never walks (or sorts) the whole cluster's pods."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, dict[str, JSON]]] = {}

    def put(self, kind: str, body: Mapping[str, Any]) -> None:
        """Remember the latest ``body``; a stale copy only costs a 409 and a re-read later.

        resourceVersion is opaque, so the cache never orders copies by it.
        """
        metadata = body["metadata"]
        namespace = self._objects.setdefault(kind, {}).setdefault(metadata.get("namespace", ""), {})
        namespace[metadata["name"]] = copy.deepcopy(dict(body))

    def drop(self, kind: str, namespace: str, name: str) -> None:
        self._objects.get(kind, {}).get(namespace, {}).pop(name, None)

    def get(self, kind: str, namespace: str, name: str) -> JSON | None:
        return self._objects.get(kind, {}).get(namespace, {}).get(name)

    def in_namespace(self, kind: str, namespace: str) -> Iterator[JSON]:
        """The namespace's objects of ``kind``, by name."""
        objects = self._objects.get(kind, {}).get(namespace, {})
        for name in sorted(objects):
            yield objects[name]

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
    def __init__(self) -> None:
        self._objects: dict[str, dict[tuple[str, str], JSON]] = {}

    def put(self, kind: str, body: Mapping[str, Any]) -> None:
        """Remember the latest ``body``; a stale copy only costs a 409 and a re-read later.

        resourceVersion is opaque, so the cache never orders copies by it.
        """
        metadata = body["metadata"]
        key = (metadata.get("namespace", ""), metadata["name"])
        self._objects.setdefault(kind, {})[key] = copy.deepcopy(dict(body))

    def drop(self, kind: str, namespace: str, name: str) -> None:
        self._objects.get(kind, {}).pop((namespace, name), None)

    def get(self, kind: str, namespace: str, name: str) -> JSON | None:
        return self._objects.get(kind, {}).get((namespace, name))

    def in_namespace(self, kind: str, namespace: str) -> Iterator[JSON]:
        for (object_namespace, _), body in sorted(self._objects.get(kind, {}).items()):
            if object_namespace == namespace:
                yield body

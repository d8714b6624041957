"""The unit of work: one (namespace, topology name), whether or not the topology exists."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, order=True)
class Key:
    """What a supervisor looks after: the topology and every object that names it.

    Keyed by name, not by object, so ProcessGroups and Singletons that name a topology
    which does not exist yet are looked after too.
    """

    namespace: str
    topology: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.topology}"

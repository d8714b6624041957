"""Objects whose spec the models refuse: the condition and event that say so.

The CRD is the first line of validation; the models are the second, and they can refuse
what the CRD let through when the CRD in the cluster is another version's (Helm never
upgrades crds/) or was edited. Such an object gets its kind's condition False with reason
InvalidSpec, naming every refused field with its path, and one Warning event; nothing
else about it is decided (a singleton keeps its owner), and the rest of its topology goes
on as usual.
"""

from __future__ import annotations

from conclave.api import ClusterTopologyStatus, ProcessGroupStatus, SingletonStatus
from conclave.api.base import Model
from conclave.core.conditions import Wanted
from conclave.core.observations import Invalid
from conclave.core.plans import EventIntent

INVALID_SPEC = "InvalidSpec"
CONDITION_OF = {"ClusterTopology": "Ready", "ProcessGroup": "Populated", "Singleton": "Placed"}
"""The condition each kind's users watch, which carries InvalidSpec."""
STATUS_OF: dict[str, type[Model]] = {
    "ClusterTopology": ClusterTopologyStatus,
    "ProcessGroup": ProcessGroupStatus,
    "Singleton": SingletonStatus,
}


def invalid_spec(invalid: Invalid) -> tuple[Wanted, list[EventIntent]]:
    """The InvalidSpec condition, and the Warning event when it is new or says otherwise."""
    message = "; ".join(str(error) for error in invalid.errors)
    wanted = Wanted(CONDITION_OF[invalid.ref.kind], False, INVALID_SPEC, message)
    previous = next((c for c in invalid.conditions if c.type == wanted.type), None)
    if previous is not None and (previous.reason, previous.message) == (INVALID_SPEC, message):
        return wanted, []
    note = f"Invalid spec: {message}"
    return wanted, [EventIntent(invalid.ref, "Warning", INVALID_SPEC, "Validate", note)]


def empty_status(kind: str) -> Model:
    """The kind's status model with nothing set: a plan that decides no field of it."""
    return STATUS_OF[kind]()

"""metav1.Condition bookkeeping: lastTransitionTime moves only when the status flips.

Re-deciding the same conditions yields the same list (no timestamp churn, so no write),
which keeps the applier's "only what differs" true at every tick.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Literal

from conclave.api import Condition, times


@dataclasses.dataclass(frozen=True)
class Wanted:
    type: str
    status: bool | None
    """True, False, or None for Unknown."""
    reason: str
    message: str


def _status_text(status: bool | None) -> Literal["True", "False", "Unknown"]:
    return "Unknown" if status is None else "True" if status else "False"


def merge(
    existing: Sequence[Condition], wanted: Sequence[Wanted], generation: int, now: datetime.datetime
) -> list[Condition]:
    """The conditions to publish: exactly ``wanted``, in order, each keeping its
    lastTransitionTime while its status is unchanged (conclave owns the whole list)."""
    by_type = {condition.type: condition for condition in existing}
    now = times.whole_seconds(now)
    result: list[Condition] = []
    for want in wanted:
        status = _status_text(want.status)
        previous = by_type.get(want.type)
        since = previous.last_transition_time if previous and previous.status == status else now
        result.append(
            Condition(
                type=want.type,
                status=status,
                reason=want.reason,
                message=want.message,
                last_transition_time=since,
                observed_generation=generation,
            )
        )
    return result


def flipped(existing: Sequence[Condition], want: Wanted) -> bool:
    """True when publishing ``want`` changes its type's status (a transition worth an event)."""
    previous = next((c for c in existing if c.type == want.type), None)
    return previous is None or previous.status != _status_text(want.status)

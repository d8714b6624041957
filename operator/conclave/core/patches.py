"""JSON merge patches (RFC 7386), computed from what is there and what should be.

The applier sends only what differs: a key whose value changed, ``None`` for a key that
must go. Lists are replaced whole, as merge patch defines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def diff(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that turns ``current`` into ``desired`` (where None means absent).

    Empty when they are equal.
    """
    patch: dict[str, Any] = {key: None for key in current if desired.get(key) is None}
    for key, value in desired.items():
        old = current.get(key)
        if value is None:
            continue  # absent in desired: removed above when present
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            nested = diff(old, value)
            if nested:
                patch[key] = nested
        elif key not in current or old != value:
            patch[key] = _without_nulls(value)
    return patch


def apply(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """What the API server makes of ``patch`` applied to ``current``."""
    result = dict(current)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            old = result.get(key)
            result[key] = apply(old if isinstance(old, Mapping) else {}, value)
        else:
            result[key] = value
    return result


def _without_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def desired(current: Mapping[str, Any], decided: Mapping[str, Any]) -> dict[str, Any]:
    """What should be there: ``current`` with the fields ``decided`` sets (None: remove).

    Inside lists a None means only "absent" (a merge patch replaces lists whole), so it is
    dropped there; that keeps ``diff`` empty when the list is already what is wanted.
    """
    return {**current, **{key: _nulls_out_of_lists(value) for key, value in decided.items()}}


def _nulls_out_of_lists(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _nulls_out_of_lists(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value

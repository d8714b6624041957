"""Durations as users of Flux and cert-manager write them: ``500ms``, ``5s``, ``1m30s``.

The CRD checks the same syntax by pattern and the bounds with CEL's ``duration()``;
``parse`` gives Python code a timedelta.
"""

from __future__ import annotations

import datetime
import functools
import re
from typing import Any

from pydantic import Field

PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@functools.lru_cache(maxsize=1024)  # a spec's few durations are read for every object, every plan
def parse(text: str) -> datetime.timedelta:
    """``"1m30s"`` → 90 seconds. Raises ValueError naming the text and the allowed form."""
    if not re.fullmatch(PATTERN, text):
        raise ValueError(f"{text!r} is not a duration like 500ms, 5s, 1m30s or 1h")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))
    return datetime.timedelta(seconds=seconds)


def format_duration(value: datetime.timedelta) -> str:
    """The shortest form ``parse`` reads back to the same whole number of milliseconds."""
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds % 1000:
        return f"{milliseconds}ms"
    seconds = milliseconds // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{seconds}s" if seconds else ""]
    return "".join(parts) or "0s"


def field(default: str | None, minimum: str, maximum: str, description: str) -> Any:
    """A duration field between ``minimum`` and ``maximum``, checked by the API server too."""
    rule = f"duration(self) >= duration('{minimum}') && duration(self) <= duration('{maximum}')"
    return Field(
        default=default,
        pattern=PATTERN,
        max_length=32,
        description=f"{description} A duration such as 500ms, 5s or 1m30s, from {minimum} to {maximum}.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": rule, "message": f"must be a duration from {minimum} to {maximum}"}
            ]
        },
    )

"""A topology's roster: every member in the ``<name>-members`` ConfigMap (``hosts``,
``hosts.json`` and every record in ``members.json``, summarised near the 1 MiB object
limit), and the bounded slice ``status.members`` shows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pydantic

from conclave.api import Member
from conclave.api.topologies import MEMBERS_SHOWN


def members_config_map_name(topology: str) -> str:
    return f"{topology}-members"


MEMBERS_RECORDS = "members.json"

CONFIG_MAP_BUDGET = 900 * 1024
"""What the members ConfigMap's data may take, under the API's 1 MiB object limit with room
for its metadata."""

SUMMARY_DROPS = ("nodeName", "pod")

_RECORDS = pydantic.TypeAdapter(list[Member])
"""Dumps every member's record in one call (each member's own model_dump costs a third more)."""


def members_data(counted: Sequence[str], members: Sequence[Member]) -> dict[str, str]:
    """The members ConfigMap's data: ``hosts`` (one name a line) and ``hosts.json`` (a list)
    name the members that count; ``members.json`` is every member's record, sorted by name.

    When the whole would pass ``CONFIG_MAP_BUDGET`` (some 5,000 members), the records are
    summarised: they drop ``nodeName`` and ``pod`` (name, ip, ready and since stay, which is
    what joins, leaves and probes need), and say so under ``members.summarised``.
    """
    data = {"hosts": "".join(f"{name}\n" for name in counted), "hosts.json": json.dumps(counted)}
    records = _RECORDS.dump_python(list(members), mode="json", by_alias=True, exclude_none=True)
    full = json.dumps(records, separators=(",", ":"))
    if sum(len(value) for value in data.values()) + len(full) <= CONFIG_MAP_BUDGET:
        return {**data, MEMBERS_RECORDS: full}
    summary = [{k: v for k, v in record.items() if k not in SUMMARY_DROPS} for record in records]
    note = f"over {CONFIG_MAP_BUDGET} bytes in full: records without {', '.join(SUMMARY_DROPS)}"
    return {**data, MEMBERS_RECORDS: json.dumps(summary, separators=(",", ":")), "members.summarised": note}


def members_from(data: Mapping[str, str] | None) -> list[Member] | None:
    """The member records a members ConfigMap holds; None when it holds none (it does not
    exist yet, or an older version wrote it) or they do not parse."""
    if not data or MEMBERS_RECORDS not in data:
        return None
    try:
        return [Member.model_validate(record) for record in json.loads(data[MEMBERS_RECORDS])]
    except ValueError:
        return None


def shown(members: Sequence[Member], down: Sequence[str]) -> list[Member]:
    """The members status lists: at most MEMBERS_SHOWN, those not ready or down first,
    then the others, each part by name (what a ``kubectl describe`` reader looks for)."""
    gone = set(down)
    ordered = sorted(members, key=lambda m: (m.ready and m.name not in gone, m.name))
    return ordered[:MEMBERS_SHOWN]

"""The soak's tables: faults and recovery times, grants by cause, violations (judged by
bench/ownership.py), replica exits, and RSS over time."""

from __future__ import annotations

import contextlib
import json
import statistics
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import ownership
from apps import Run, overlaps
from replicas import RENEW_DEADLINE

if TYPE_CHECKING:
    from soak import Soak


def report(
    run: Soak,
    history: ownership.History,
    ran: list[Run],
    rss: list[tuple[float, str, float]],
    audit_log: Path,
    namespace: str,
    minutes: float,
    *,
    title: str,
    singleton_lease: float,
    control_plane_faults: tuple[str, ...],
) -> None:
    """Judge the history and print the tables."""
    seen = history.snapshot()
    causes, grant_violations = ownership.grants(seen, singleton_lease, tolerance=0.25)
    audit = [json.loads(line) for line in audit_log.read_text().splitlines() if line.strip()]
    replicas = {f"operator-{i}": run.frozen.get(f"operator-{i}", []) for i in range(run.deployment.started)}
    writes = ownership.writes_outside_leadership(audit, seen, namespace, RENEW_DEADLINE, replicas)
    runs_overlapping = overlaps(ran, tolerance=0.05)
    tracebacks = [identity for identity, _, traced in run.deployment.exited if traced]

    print(f"\nSoak: {minutes:g} minutes, {title}\n")
    print(f"{'fault':<26}{'injected':>9}{'recovery median (s)':>21}{'max (s)':>9}")
    for fault, count in sorted(
        run.faults.items(), key=lambda item: (item[0] not in control_plane_faults, item[0])
    ):
        samples = run.recoveries.get(fault)
        if samples:
            print(f"{fault:<26}{count:>9}{statistics.median(samples):>21.2f}{max(samples):>9.2f}")
        else:
            print(f"{fault:<26}{count:>9}{'':>21}{'':>9}")
    print(f"\n{'grants to a new owner, by cause':<44}{'count':>7}")
    for cause, count in sorted(causes.items()):
        print(f"{cause:<44}{count:>7}")
    print(f"\n{'violations (must be 0)':<64}{'count':>7}")
    for label, found in (
        ("grants the rules do not allow (independent watcher)", grant_violations),
        ("two pods running one singleton at once (the apps' rule)", runs_overlapping),
        (f"writes by a replica that could not prove it led ({writes.checked} checked)", writes.violations),
        ("replica exits with a traceback", tracebacks),
    ):
        print(f"{label:<64}{len(found):>7}")
        for line in found[:5]:
            print(f"    {line}{last_fault(run.timeline, line)}")
    print(f"\n{'writes that reached the API after the deadline, explained':<64}{'count':>7}")
    for label, found in (
        ("arrived just after an API server outage spanning the deadline", writes.read_late),
        ("sent by a replica frozen between its check and its send", writes.frozen_after_check),
    ):
        print(f"{label:<64}{len(found):>7}")
        for line in found[:3]:
            print(f"    {line}{last_fault(run.timeline, line)}")
    print(f"\nwatch gaps the checker crossed (410 after an API server restart): {history.gaps}")
    print(f"app runs recorded: {len(ran)}; watch events recorded: {len(seen)}")
    exits = Counter(code for _, code, _ in run.deployment.exited)
    print(f"replica exits by code: {dict(sorted(exits.items()))} (3: could not prove it led; -9: killed)")
    print(f"\n{'minute':>7}{'replicas sampled':>18}{'RSS min (MiB)':>15}{'RSS max (MiB)':>15}")
    for minute in range(int(minutes) + 1):
        values = [v for t, _, v in rss if int(t // 60) == minute]
        if values:
            sampled = len({i for t, i, _ in rss if int(t // 60) == minute})
            print(f"{minute:>7}{sampled:>18}{min(values):>15.1f}{max(values):>15.1f}")
    lives = Counter(identity for _, identity, _ in rss)
    if lives:
        longest = lives.most_common(1)[0][0]
        own = [(t, v) for t, i, v in rss if i == longest]
        print(
            f"longest-lived replica {longest}: {own[0][1]:.1f} MiB at {own[0][0] / 60:.1f} min, "
            f"{own[-1][1]:.1f} MiB at {own[-1][0] / 60:.1f} min ({len(own)} samples)"
        )


def last_fault(timeline: list[tuple[float, str]], violation: str) -> str:
    """ ", Xs after <fault>" for a violation that names its wall-clock time (" at <t>,")."""
    at = violation.partition(" at ")[2].split(" ", 1)[0].rstrip(",")
    with contextlib.suppress(ValueError):
        before = [(t, fault) for t, fault in timeline if t <= float(at)]
        if before:
            return f" ({float(at) - before[-1][0]:.1f}s after {before[-1][1]})"
    return ""

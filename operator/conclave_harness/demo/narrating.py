"""How the demo talks: step titles, a live view, outcomes with their times, the final table.

It only formats and writes; what it shows comes from the scenario's reads of the API.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any

import click

from conclave import summarizing
from conclave.summarizing import Snapshot

LIVE_INTERVAL = 0.25


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One row of the final table: what the operator did after a step, and how fast."""

    step: str
    name: str
    """The outcome's stable name (its check's), for tests to pick a row by."""
    outcome: str
    seconds: float | None
    """From the step's action to the first read of the API that showed the outcome;
    None for what must stay as it was (nothing to time)."""


class Narration:
    """How the scenario talks: step titles, a view redrawn in place while it waits (on a
    terminal), each outcome with its time, and the view at the end of each step."""

    def __init__(self, write: Callable[[str], None], color: bool = False, live: bool = False) -> None:
        """``write`` takes text as is (newlines included); ``live`` redraws in place."""
        self.write = write
        self.color = color
        self.live = live
        self._drawn = 0
        self._last_drawn = 0.0

    def _view(self, snapshot: Snapshot) -> str:
        return summarizing.render(snapshot, datetime.datetime.now(datetime.UTC), self.color).rstrip("\n")

    def step(self, number: int, title: str, action: str) -> None:
        self._erase()
        self._line("")
        self._line(self._style(f"── {number}. {title}: ", bold=True) + self._style(action, fg="cyan"))

    def watch(self, snapshot: Snapshot) -> None:
        """Redraw the view in place, at most every LIVE_INTERVAL, on a terminal tall enough
        to hold it (the cursor cannot move back up into the scrollback)."""
        if not self.live or time.monotonic() - self._last_drawn < LIVE_INTERVAL:
            return
        text = self._view(snapshot)
        size = shutil.get_terminal_size()
        height = sum(max(1, math.ceil(len(click.unstyle(line)) / size.columns)) for line in text.splitlines())
        if height >= size.lines:
            return
        self._erase()
        self._line(text)
        self._drawn = height
        self._last_drawn = time.monotonic()

    def outcome(self, measurement: Measurement) -> None:
        self._erase()
        took = (
            "" if measurement.seconds is None else self._style(f"  ({measurement.seconds:.2f}s)", fg="yellow")
        )
        self._line(f"   {self._style('✓', fg='green')} {measurement.outcome}{took}")

    def show(self, snapshot: Snapshot) -> None:
        self._erase()
        self._line(self._view(snapshot))

    def table(self, measurements: Sequence[Measurement]) -> None:
        self._erase()
        width = max(len(m.step) for m in measurements)
        self._line("")
        self._line(self._style("What the operator did, and how long it took after each action:", bold=True))
        for m in measurements:
            took = "   —   " if m.seconds is None else f"{m.seconds:6.2f}s"
            self._line(f"  {m.step.ljust(width)}  {took}  {m.outcome}")

    def _erase(self) -> None:
        if self._drawn:
            self.write(f"\x1b[{self._drawn}F\x1b[J")  # up to the view's first line, clear below
            self._drawn = 0

    def _line(self, text: str) -> None:
        self.write(text + "\n")

    def _style(self, text: str, **style: Any) -> str:
        return click.style(text, **style) if self.color else text

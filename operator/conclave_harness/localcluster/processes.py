"""The local cluster's processes, by PID: start one, stop it, kill it, freeze and thaw it.

Owns the ``Popen`` handles of the components this process started, so that stopping or
killing one also reaps it (an unreaped child lingers as a zombie that still looks alive).
It never signals a process unless ``/proc/<pid>/exe`` shows the binary it started there:
a recycled PID is someone else's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

STOP_TIMEOUT = 10.0

_children: dict[int, subprocess.Popen[bytes]] = {}
"""Components started by this process, kept so that stopping one also reaps it."""


def is_ours(pid: int, binary: str) -> bool:
    """True when ``pid`` is alive and runs ``binary`` (a recycled PID is not ours)."""
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)") == binary
    except OSError:
        return False


def is_frozen(pid: int) -> bool:
    """True when ``pid`` is stopped by a signal (state T in /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


def spawn(binary: str, args: Sequence[str], log: Path, die_with_caller: bool) -> int:
    """Start ``binary`` in a session of its own, its output appended to ``log``; return its PID
    once it runs ``binary`` itself."""
    # setpriv (util-linux) arranges the death signal before exec, without preexec_fn,
    # which is unsafe in a process that runs threads.
    guard = ["setpriv", "--pdeathsig", "TERM", "--"] if die_with_caller else []
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [*guard, binary, *args],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[process.pid] = process
    while guard and not is_ours(process.pid, binary) and process.poll() is None:
        time.sleep(0.005)  # setpriv has not exec'd the component yet
    return process.pid


def stop(pid: int, binary: str) -> None:
    """Stop a component by PID (TERM, then KILL) and reap it if this process started it.

    A frozen component is thawed first, or it would never act on the TERM.
    """
    child = _children.pop(pid, None)
    if is_ours(pid, binary):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while is_ours(pid, binary) and time.monotonic() < deadline:
            time.sleep(0.05)
            if child is not None:
                child.poll()  # reap it, or it lingers as a zombie that still looks alive
        if is_ours(pid, binary):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if child is not None:
        child.wait()  # a component that died on its own is reaped here too


def kill(pid: int, binary: str) -> None:
    """SIGKILL a component, as a crash would end it, and wait until it is gone."""
    child = _children.pop(pid, None)
    if is_ours(pid, binary):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if child is not None:
        child.wait()
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while is_ours(pid, binary) and time.monotonic() < deadline:
        time.sleep(0.01)  # not our child: its parent reaps it


def send(pid: int, binary: str, signum: signal.Signals) -> None:
    """Send ``signum`` (SIGSTOP, SIGCONT) to a component if it is still ours."""
    if is_ours(pid, binary):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

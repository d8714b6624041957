"""The soak's operator replicas, kept running as a Deployment keeps its pods (one that
exits is replaced by a new one, under a new name), and their memory over time."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from conclave_harness.localcluster.clusters import free_port

TIMINGS = ("--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms")
RENEW_DEADLINE = 3.0


@dataclasses.dataclass
class Replica:
    identity: str
    process: subprocess.Popen[bytes]
    log: Path


class Deployment:
    """Two `conclave run` replicas; one that exits is replaced, as a Deployment would."""

    def __init__(self, kubeconfig: Path, namespace: str, logs: Path) -> None:
        self.kubeconfig, self.namespace, self.logs = kubeconfig, namespace, logs
        self.replicas: list[Replica] = []
        self.exited: list[tuple[str, int, bool]] = []  # identity, code, logged a traceback
        self.started = 0
        self.lock = threading.Lock()

    def start(self) -> Replica:
        identity = f"operator-{self.started}"
        self.started += 1
        log = self.logs / f"{identity}.log"
        command = [
            sys.executable, "-m", "conclave", "run", "--kubeconfig", str(self.kubeconfig),
            "--namespace", self.namespace, "--identity", identity,
            "--leader-election-namespace", self.namespace, "--health-port", str(free_port()), *TIMINGS,
        ]  # fmt: skip
        with log.open("wb") as sink:
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        replica = Replica(identity, process, log)
        with self.lock:
            self.replicas.append(replica)
        return replica

    def keep(self, count: int = 2) -> None:
        """Replace every replica that exited."""
        with self.lock:
            for replica in [r for r in self.replicas if r.process.poll() is not None]:
                self.replicas.remove(replica)
                code = replica.process.returncode
                self.exited.append(
                    (replica.identity, code, "Traceback" in replica.log.read_text(errors="replace"))
                )
            missing = count - len(self.replicas)
        for _ in range(missing):
            self.start()

    def by_identity(self, identity: str | None) -> Replica | None:
        with self.lock:
            return next((r for r in self.replicas if r.identity == identity), None)

    def stop(self) -> None:
        """Stop every replica (these exits are not the soak's: they are not recorded)."""
        with self.lock:
            replicas, self.replicas = list(self.replicas), []
        for replica in replicas:
            with contextlib.suppress(ProcessLookupError):
                replica.process.send_signal(signal.SIGCONT)
                replica.process.terminate()
        for replica in replicas:
            try:
                replica.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()


def rss_mib(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


@contextlib.contextmanager
def sampling_rss(
    deployment: Deployment, started: float, every: float = 20.0
) -> Iterator[list[tuple[float, str, float]]]:
    samples: list[tuple[float, str, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            with deployment.lock:
                replicas = list(deployment.replicas)
            for replica in replicas:
                rss = rss_mib(replica.process.pid)
                if rss is not None:
                    samples.append((time.monotonic() - started, replica.identity, rss))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(timeout=5)

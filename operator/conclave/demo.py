"""`conclave demo`: the narrated scenario a newcomer watches, and the processes it needs.

``Scenario`` is the story, step by step: five members discovered, three singletons
placed, scale to seven, a failover, a 4/3 split that fences, the heal, a group emptied.
Each step acts on the cluster, then polls the API until the operator's outcome shows,
and records how long that took. It only needs an API client, simulated members and a
way to start the operator, so the e2e test runs exactly this story against the test
session's cluster. ``run`` is the command: a fresh local cluster, the fake kubelet, the
members and the operator as processes recorded in the cluster's state (so that
`conclave local-cluster down` stops them too), the scenario, and a final table.

The scenario writes only what a user or a kubelet would (pods, labels, the resources);
it never writes a status: every outcome it reports is the operator's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import math
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any

import click
from kubernetes import config

from conclave import status
from conclave.adapters.apiclient import ApiClient, load_configuration
from conclave.api import API_VERSION, SingletonStatus, crdgen
from conclave.errors import ConflictError, NotFoundError, ScenarioFailed
from conclave.localcluster import LocalCluster
from conclave.localcluster.clusters import free_port
from conclave.localcluster.kubelet import FakeKubelet
from conclave.sim import SimulatedMembers
from conclave.status import Snapshot

NAMESPACE = "conclave-demo"
TOPOLOGY = "chat"
FIRST_SIZE, SCALED_SIZE = 5, 7
LEASE_DURATION = "3s"
STABLE_AFTER = "2s"
SINGLETONS = {
    "billing": ("Uniform", "Fence"),
    "ledger": ("UniformQuorum", "Fence"),
    "presence": ("Uniform", "Continue"),
}
GROUPS = {
    "subscribers": ("pubsub", "subscribers:orders", range(SCALED_SIZE)),
    "reports": ("workers", "reports", range(2)),
}
"""name: (scope, group, the pod indexes that carry its label)."""
GROUP_LABEL = "demo.conclave.dev/{}"
EMPTIED = "reports"
MINORITY = SCALED_SIZE // 2

POLL_INTERVAL = 0.05
LIVE_INTERVAL = 0.25
STEP_TIMEOUT = 45.0
POD_TIMEOUT = 20.0


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


Check = Callable[[Snapshot], str | None]
"""Looks at a snapshot: the outcome's description once it shows, else None."""


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
        return status.render(snapshot, datetime.datetime.now(datetime.UTC), self.color).rstrip("\n")

    def step(self, number: int, title: str, action: str) -> None:
        self._erase()
        self._line("")
        self._line(self._style(f"── {number}. {title}: ", bold=True) + self._style(action, fg="cyan"))

    def watch(self, snapshot: Snapshot) -> None:
        """Redraw the view in place, at most every LIVE_INTERVAL (only on a terminal)."""
        if not self.live or time.monotonic() - self._last_drawn < LIVE_INTERVAL:
            return
        self._erase()
        text = self._view(snapshot)
        self._line(text)
        columns = shutil.get_terminal_size().columns
        self._drawn = sum(max(1, math.ceil(len(click.unstyle(line)) / columns)) for line in text.splitlines())
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


def _pod(index: int) -> dict[str, Any]:
    labels = {"app": TOPOLOGY}
    labels |= {GROUP_LABEL.format(name): "true" for name, (_, _, pods) in GROUPS.items() if index in pods}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{TOPOLOGY}-{index}", "labels": labels},
        "spec": {"containers": [{"name": "beam", "image": "conclave.dev/simulated-member:1"}]},
    }


def _resources() -> list[tuple[str, dict[str, Any]]]:
    """The topology and the groups, as a user would apply them."""
    topology = {
        "kind": "ClusterTopology",
        "metadata": {"name": TOPOLOGY},
        "spec": {
            "strategy": "KubernetesAPI",
            "service": TOPOLOGY,
            "applicationName": TOPOLOGY,
            "probe": {
                "type": "http",
                "port": 4000,
                "path": "/cluster",
                "interval": "500ms",
                "timeout": "300ms",
            },
            "partition": {"stableAfter": STABLE_AFTER},
        },
    }
    groups = [
        {
            "kind": "ProcessGroup",
            "metadata": {"name": name},
            "spec": {
                "topology": TOPOLOGY,
                "scope": scope,
                "group": group,
                "selector": {"matchLabels": {GROUP_LABEL.format(name): "true"}},
            },
        }
        for name, (scope, group, _) in GROUPS.items()
    ]
    return [("clustertopologies", topology), *(("processgroups", group) for group in groups)]


def _singletons() -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "singletons",
            {
                "kind": "Singleton",
                "metadata": {"name": name},
                "spec": {
                    "topology": TOPOLOGY,
                    "distribution": distribution,
                    "partitionPolicy": policy,
                    "leaseDuration": LEASE_DURATION,
                },
            },
        )
        for name, (distribution, policy) in SINGLETONS.items()
    ]


def _healthy(snapshot: Snapshot, size: int) -> bool:
    topology = snapshot.topology(TOPOLOGY).status
    partition = topology.partition
    return (
        topology.member_count == size
        and topology.ready_members == size
        and partition is not None
        and partition.state == "Healthy"
        and [len(c) for c in partition.components] == [size]
    )


def _established(definition: Mapping[str, Any]) -> bool:
    conditions = (definition.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def _whole(outcome: str) -> Check:
    """A check that all SCALED_SIZE members are ready and form one Healthy component."""

    def whole(snapshot: Snapshot) -> str | None:
        return outcome if _healthy(snapshot, SCALED_SIZE) else None

    return whole


async def install_crds(api: ApiClient) -> None:
    """Create or replace conclave's CRDs from the models; return once the API serves them."""
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for definition in crdgen.all_crds():
        name = definition["metadata"]["name"]
        try:
            await api.create(path, definition)
        except ConflictError:
            current = await api.get(f"{path}/{name}")
            definition["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await api.replace(f"{path}/{name}", definition)
        while not _established(await api.get(f"{path}/{name}")):
            await asyncio.sleep(POLL_INTERVAL)


async def create_namespace(api: ApiClient, name: str) -> None:
    """Create the namespace; return once its default ServiceAccount exists (pods need it)."""
    await api.create("/api/v1/namespaces", {"metadata": {"name": name}})
    deadline = time.monotonic() + POD_TIMEOUT
    while True:
        try:
            await api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default")
            return
        except NotFoundError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(POLL_INTERVAL)


class Scenario:
    """The demo's story against one namespace; ``run`` returns the measurements or raises
    ScenarioFailed naming the outcome that did not show."""

    def __init__(
        self,
        api: ApiClient,
        namespace: str,
        members: SimulatedMembers,
        start_operator: Callable[[], object],
        narration: Narration,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.members = members
        self.start_operator = start_operator
        self.narration = narration
        self.measurements: list[Measurement] = []
        self._nodes: dict[int, str] = {}
        """Pod index -> node name (chat@<pod IP>) of the members running now."""

    async def run(self) -> list[Measurement]:
        steps = [
            self.discover,
            self.place,
            self.scale,
            self.fail_over,
            self.rejoin,
            self.split,
            self.heal,
            self.empty_group,
        ]
        for number, step in enumerate(steps, 1):
            await step(number)
        return self.measurements

    # The steps.

    async def discover(self, number: int) -> None:
        self.narration.step(
            number,
            "Discovery",
            f"a headless Service, {FIRST_SIZE} pods whose members serve their view of the cluster, "
            "a ClusterTopology and two ProcessGroups; then the operator starts",
        )
        await install_crds(self.api)
        await self.api.create(
            self._core("services"),
            {"metadata": {"name": TOPOLOGY}, "spec": {"clusterIP": "None", "selector": {"app": TOPOLOGY}}},
        )
        await self._start_members(range(FIRST_SIZE))
        for plural, body in _resources():
            await self._create(plural, body)
        started = time.monotonic()
        self.start_operator()

        def discovered(snapshot: Snapshot) -> str | None:
            counts = {name: snapshot.group(name).status.count for name in GROUPS}
            expected = {
                name: len([i for i in pods if i < FIRST_SIZE]) for name, (_, _, pods) in GROUPS.items()
            }
            if _healthy(snapshot, FIRST_SIZE) and counts == expected:
                groups = ", ".join(f"{name} {count}" for name, count in counts.items())
                return f"{FIRST_SIZE} members discovered, Healthy; groups {groups} (operator start included)"
            return None

        await self._expect(number, "discovery", started, {"discovered": discovered})

    async def place(self, number: int) -> None:
        self.narration.step(
            number,
            "Singletons",
            "three Singletons: Uniform/Fence (CP), UniformQuorum, Uniform/Continue (AP), "
            f"leaseDuration {LEASE_DURATION}",
        )
        started = time.monotonic()
        for plural, body in _singletons():
            await self._create(plural, body)

        def placed(snapshot: Snapshot) -> str | None:
            owners = {name: snapshot.singleton(name).status for name in SINGLETONS}
            if all(s.phase == "Placed" and s.owner for s in owners.values()):
                return "placed: " + ", ".join(
                    f"{name} on {s.owner_pod} (epoch {s.epoch})" for name, s in owners.items()
                )
            return None

        await self._expect(number, "placement", started, {"placed": placed})

    async def scale(self, number: int) -> None:
        self.narration.step(number, f"Scale to {SCALED_SIZE}", f"{SCALED_SIZE - FIRST_SIZE} more pods join")
        started = time.monotonic()
        await self._start_members(range(FIRST_SIZE, SCALED_SIZE))

        def joined(snapshot: Snapshot) -> str | None:
            ready = snapshot.topology(TOPOLOGY).status.ready_members
            subscribers = snapshot.group("subscribers").status.count
            if ready == subscribers == SCALED_SIZE:
                return f"{SCALED_SIZE} members discovered; group subscribers {subscribers}"
            return None

        grown = _whole(f"every member's view probed: Healthy, one component of {SCALED_SIZE}")
        await self._expect(number, f"scale to {SCALED_SIZE}", started, {"joined": joined, "grown": grown})

    async def fail_over(self, number: int) -> None:
        before = (await self._snapshot()).singleton("billing").status
        if before.owner_pod is None:
            raise ScenarioFailed(f"Step {number} (failover): billing has no owner to fail over")
        epoch = before.epoch or 0
        self.narration.step(
            number, "Failover", f"delete {before.owner_pod}, which owns the singleton billing"
        )
        started = time.monotonic()
        await self.api.delete(self._core("pods", before.owner_pod))
        index = self._index(before.owner_pod)
        self.members.remove(self._nodes.pop(index))  # the member dies with its pod

        def moved(snapshot: Snapshot) -> str | None:
            now = snapshot.singleton("billing").status
            if now.phase == "Placed" and now.owner not in (None, before.owner) and now.epoch == epoch + 1:
                return (
                    f"billing failed over {before.owner_pod} → {now.owner_pod}, epoch {epoch} → {now.epoch}"
                )
            return None

        await self._expect(number, "failover", started, {"moved": moved})

    async def rejoin(self, number: int) -> None:
        gone = next(i for i in range(SCALED_SIZE) if i not in self._nodes)
        before = await self._singletons()
        self.narration.step(number, "Rejoin", f"{TOPOLOGY}-{gone} comes back, with a new IP")
        await self._wait_deleted(f"{TOPOLOGY}-{gone}")
        started = time.monotonic()
        await self._start_members([gone])

        back = _whole(f"{self._nodes[gone]} joined: {SCALED_SIZE} members, Healthy")
        passive = self._stay(before, "rebalance Passive moves nothing to a newcomer")
        await self._expect(number, "rejoin", started, {"back": back}, {"passive": passive})

    async def split(self, number: int) -> None:
        before = await self._singletons()
        minority = self._minority([status.owner for status in before.values()])
        majority = sorted(set(self._nodes.values()) - set(minority))
        self.narration.step(
            number,
            "Split 4/3",
            f"a netsplit: {len(majority)} members on one side, {len(minority)} on the other, "
            "with the singletons' owners",
        )
        started = time.monotonic()
        self.members.partition([majority, minority])

        def declared(snapshot: Snapshot) -> str | None:
            partition = snapshot.topology(TOPOLOGY).status.partition
            if partition is not None and partition.state == "Partitioned" and partition.majority == majority:
                sizes = "+".join(str(len(c)) for c in partition.components)
                return f"Partitioned ({sizes}) after stableAfter {STABLE_AFTER}, majority of {len(majority)}"
            return None

        def to_majority(name: str) -> Check:
            old = before[name]
            distribution, policy = SINGLETONS[name]

            def moved(snapshot: Snapshot) -> str | None:
                now = snapshot.singleton(name).status
                if now.phase == "Placed" and now.owner in majority and now.epoch == (old.epoch or 0) + 1:
                    move = f"{old.owner_pod} → {now.owner_pod}, epoch {old.epoch} → {now.epoch}"
                    return f"{name} ({distribution}/{policy}) revoked, granted on the majority: {move}"
                return None

            return moved

        await self._expect(
            number,
            "split 4/3",
            started,
            {"declared": declared, "fenced": to_majority("billing"), "quorum": to_majority("ledger")},
            {"kept": self._stay({"presence": before["presence"]}, "Continue keeps the owner on its side")},
        )

    async def heal(self, number: int) -> None:
        before = await self._singletons()
        self.narration.step(number, "Heal", "the network heals: every member sees every other again")
        started = time.monotonic()
        self.members.connect_all()

        healed = _whole(f"Healthy again: one component of {SCALED_SIZE}")
        passive = self._stay(before, "nothing moves back (Passive)")
        await self._expect(number, "heal", started, {"healed": healed}, {"passive": passive})

    async def empty_group(self, number: int) -> None:
        _, group, pods = GROUPS[EMPTIED]
        names = [f"{TOPOLOGY}-{i}" for i in pods]
        self.narration.step(
            number, "Empty a group", f"unlabel {', '.join(names)}: nobody is left in {group!r}"
        )
        started = time.monotonic()
        for name in names:
            patch = {"metadata": {"labels": {GROUP_LABEL.format(EMPTIED): None}}}
            await self.api.merge_patch(self._core("pods", name), patch)

        def emptied(snapshot: Snapshot) -> str | None:
            group_status = snapshot.group(EMPTIED).status
            populated = next((c for c in group_status.conditions if c.type == "Populated"), None)
            if group_status.count == 0 and populated is not None and populated.reason == "Empty":
                return (
                    f"{EMPTIED} is empty: Populated={populated.status} ({populated.reason}), event GroupEmpty"
                )
            return None

        await self._expect(number, "empty a group", started, {"emptied": emptied})

    # How the steps act and wait.

    def _core(self, plural: str, name: str = "") -> str:
        return f"/api/v1/namespaces/{self.namespace}/{plural}" + (f"/{name}" if name else "")

    async def _create(self, plural: str, body: dict[str, Any]) -> None:
        path = f"/apis/{API_VERSION}/namespaces/{self.namespace}/{plural}"
        await self.api.create(path, {"apiVersion": API_VERSION, **body})

    async def _snapshot(self) -> Snapshot:
        return await status.fetch(self.api, self.namespace)

    @staticmethod
    def _index(pod: str) -> int:
        return int(pod.rsplit("-", 1)[1])

    async def _start_members(self, indexes: Sequence[int] | range) -> None:
        """Create the pods, wait until the kubelet runs them, then serve each member's view
        on its pod IP, connected to every member."""
        for index in indexes:
            await self.api.create(self._core("pods"), _pod(index))
        for index in indexes:
            ip = await self._wait_running(f"{TOPOLOGY}-{index}")
            self._nodes[index] = f"{TOPOLOGY}@{ip}"
            self.members.add(self._nodes[index], ip)
        self.members.connect_all()

    async def _wait_running(self, name: str) -> str:
        deadline = time.monotonic() + POD_TIMEOUT
        while time.monotonic() < deadline:
            pod = await self.api.get(self._core("pods", name))
            pod_status = pod.get("status", {})
            if pod_status.get("phase") == "Running" and pod_status.get("podIP"):
                ip: str = pod_status["podIP"]
                return ip
            await asyncio.sleep(POLL_INTERVAL)
        raise ScenarioFailed(
            f"Pod {name} did not run within {POD_TIMEOUT:.0f}s: is the fake kubelet running?"
        )

    async def _wait_deleted(self, name: str) -> None:
        deadline = time.monotonic() + POD_TIMEOUT
        while time.monotonic() < deadline:
            try:
                await self.api.get(self._core("pods", name))
            except NotFoundError:
                return
            await asyncio.sleep(POLL_INTERVAL)
        raise ScenarioFailed(f"Pod {name} was not deleted within {POD_TIMEOUT:.0f}s")

    def _minority(self, owners: Sequence[str | None]) -> list[str]:
        """MINORITY members: the given owners first, then the highest addresses."""
        chosen = list(dict.fromkeys(owner for owner in owners if owner))
        others = sorted(set(self._nodes.values()) - set(chosen), reverse=True)
        return sorted((chosen + others)[:MINORITY])

    async def _singletons(self) -> dict[str, SingletonStatus]:
        snapshot = await self._snapshot()
        return {name: snapshot.singleton(name).status for name in SINGLETONS}

    @staticmethod
    def _stay(before: Mapping[str, SingletonStatus], why: str) -> Check:
        """A check that each singleton keeps the owner and epoch it had ``before``."""

        def stay(snapshot: Snapshot) -> str | None:
            now = {name: snapshot.singleton(name).status for name in before}
            if all((now[n].owner, now[n].epoch) == (b.owner, b.epoch) for n, b in before.items()):
                where = ", ".join(f"{name} on {b.owner_pod} (epoch {b.epoch})" for name, b in before.items())
                return f"{where}: {why}"
            return None

        return stay

    async def _expect(
        self,
        number: int,
        step: str,
        started: float,
        outcomes: Mapping[str, Check],
        steady: Mapping[str, Check] | None = None,
    ) -> None:
        """Poll until every outcome shows, recording each (by its key) the first time it
        does, while every ``steady`` check holds at each poll; then record those untimed and
        show the view. Raises ScenarioFailed when a steady check fails or after STEP_TIMEOUT."""
        pending = dict(outcomes)
        title = f"{number}. {step}"
        while True:
            snapshot = await self._snapshot()
            seen = time.monotonic()
            for name, check in list(pending.items()):
                with contextlib.suppress(KeyError):  # an object the check reads does not exist yet
                    outcome = check(snapshot)
                    if outcome:
                        del pending[name]
                        self._record(Measurement(title, name, outcome, seen - started))
            held = {name: check(snapshot) for name, check in (steady or {}).items()}
            broken = [name for name, outcome in held.items() if not outcome]
            if broken or (pending and seen - started > STEP_TIMEOUT):
                what = f"{', '.join(broken)} no longer held" if broken else f"no {', '.join(pending)}"
                raise ScenarioFailed(
                    f"Step {title}: {what} after {seen - started:.1f}s; the last status seen:\n"
                    + status.render(snapshot, datetime.datetime.now(datetime.UTC))
                )
            if not pending:
                for name, outcome in held.items():
                    self._record(Measurement(title, name, outcome or "", None))
                self.narration.show(snapshot)
                return
            self.narration.watch(snapshot)
            await asyncio.sleep(POLL_INTERVAL)

    def _record(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)
        self.narration.outcome(measurement)


# The command: the processes behind the scenario.


def serve_kubelet(cluster: LocalCluster) -> None:
    """Play kubelet for the local cluster's pods until SIGTERM or SIGINT (`conclave
    local-cluster kubelet`, which the demo runs as a process so that it outlives --keep)."""
    stopped = threading.Event()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    with FakeKubelet(api, cluster.network):
        stopped.wait()
    api.close()


class Processes:
    """The demo's processes besides the control plane, each recorded in the cluster's state
    (``LocalCluster.adopt``), so that `conclave local-cluster down` stops them by PID too."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, argv: Sequence[str]) -> None:
        """Start ``argv`` in its own session (a Ctrl-C meant for the demo does not reach it:
        the demo stops it in order), logging to the cluster's logs directory."""
        logs = self.cluster.state_dir / "logs"
        with (logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append(process)
        self.cluster.adopt(name, process.pid)

    def stop(self) -> None:
        for process in reversed(self.started):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _conclave(*args: str) -> list[str]:
    return [sys.executable, "-m", "conclave", *args]


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Cleanup that a second Ctrl-C cannot cut short (it would leave processes behind)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _terminate_as_interrupt(_signal: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(
    cluster: LocalCluster, narration: Narration, report: Callable[[str], None], keep: bool
) -> Mapping[str, str] | None:
    """The whole demo on a fresh local cluster. Returns the cluster's shell exports when
    ``keep`` (cluster, kubelet, members and operator left running), else None after stopping
    everything it started. Raises ScenarioFailed and LocalClusterError subclasses."""
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # a TERM cleans up like a Ctrl-C
    report(f"Starting a fresh local cluster {cluster.name!r} (a previous one of that name is stopped)")
    cluster.down()
    members = SimulatedMembers(cluster.network)
    processes = Processes(cluster)
    kept = False
    try:
        cluster.up(report)
        processes.spawn(
            "fake-kubelet",
            _conclave("local-cluster", "kubelet", "--name", cluster.name, "--pod-cidr", cluster.pod_cidr),
        )
        members.start()
        assert members.pid is not None
        cluster.adopt("simulated-members", members.pid)
        api = ApiClient(load_configuration(str(cluster.kubeconfig)), identity="conclave-demo")

        def start_operator() -> None:
            operator = [
                "run",
                "--kubeconfig",
                str(cluster.kubeconfig),
                "--all-namespaces",
                "--identity",
                "demo",
            ]
            operator += ["--leader-election-namespace", NAMESPACE, "--health-port", str(free_port())]
            processes.spawn("operator", _conclave(*operator))

        try:
            asyncio.run(create_namespace(api, NAMESPACE))
            scenario = Scenario(api, NAMESPACE, members, start_operator, narration)
            narration.table(asyncio.run(scenario.run()))
        finally:
            api.close()
        kept = keep
        return cluster.env() if keep else None
    finally:
        if not kept:
            with _uninterrupted():
                report("Stopping everything the demo started")
                members.stop()
                processes.stop()
                cluster.down()

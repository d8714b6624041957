"""`conclave run`: health and metrics on every replica, leader election, then kopf.

A standby replica serves /healthz and /metrics and waits for the leader Lease, through
any API outage; only the active one starts kopf's watches and the supervisors. When
leadership is lost (the lease went elsewhere, or this replica could not renew within the
renew deadline: an outage that long, or being frozen), the process stops everything and
exits non-zero, as client-go's controllers do: the Deployment restarts it as a standby,
with nothing stale left in memory, while the other replica takes over.

Exits: 0 when stopped, 3 when leadership was lost, 4 when the API refused the leader Lease
for good (RBAC, a missing namespace), 1 when kopf itself failed; each with one ERROR line
that says why, never a traceback. /healthz fails on the active replica when a watch has
stopped delivering (``handlers.liveness``) or a supervisor is wedged, so that the kubelet
restarts a stuck operator; a standby has neither and stays healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import kopf
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from conclave.act.applying import Applier
from conclave.adapters import metrics
from conclave.adapters.apiclient import ApiClient, load_configuration
from conclave.adapters.cache import Cache
from conclave.errors import ApiError, LeadershipLost
from conclave.handlers import credentials, liveness, watching
from conclave.observe import permissions, resolving
from conclave.runtime import collecting, outages
from conclave.runtime.electing import Elector
from conclave.runtime.reconciling import Reconciler
from conclave.runtime.settings import LogFormat, Settings
from conclave.runtime.supervising import Supervisors

logger = logging.getLogger(__name__)

EXIT_KOPF_FAILED = 1
EXIT_LEADERSHIP_LOST = 3
EXIT_REFUSED = 4
API_CONNECTIONS = 32
"""Requests in flight at once, each on a kept connection: the applier writes up to
``applying.CONCURRENCY`` objects at a time."""
IDLE_WORKER_SECONDS = 0.5
STOP_TIMEOUT = 10.0

Check = Callable[[], list[str]]
"""A liveness check: what is wrong, one line each; empty when all is well."""


def kopf_settings(settings: Settings) -> kopf.OperatorSettings:
    configured = kopf.OperatorSettings()
    configured.peering.standalone = True  # leadership is ours (electing), not kopf's peering
    configured.posting.level = logging.WARNING  # events are the applier's, on transitions only
    configured.posting.reporting_component = "conclave.dev/operator"
    configured.posting.reporting_instance = settings.identity
    configured.watching.server_timeout = 300  # the server ends each watch; kopf reconnects
    configured.watching.client_timeout = 330
    configured.watching.connect_timeout = 10
    configured.networking.request_timeout = 30
    configured.persistence.finalizer = "conclave.dev/kopf-finalizer"
    # kopf keeps a worker (a task, a queue, its locks) per object for this long after the
    # object's last event (5 s by default): placing 10,000 singletons left the process at
    # 300-323 MiB with 5 s, 270-278 MiB with 0.5 s. Our handlers take well under a
    # millisecond; a worker made anew for a later event costs about as little.
    configured.queueing.idle_timeout = IDLE_WORKER_SECONDS
    watching.configure(configured)
    return configured


class HealthServer:
    """/healthz, /readyz and /metrics on one port, served by standby and active alike.

    /readyz answers while kopf runs (or has not started: a standby); /healthz also runs
    ``checks``, the active replica's liveness checks, and fails with what they found.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kopf_task: asyncio.Task[None] | None = None
        self.checks: list[Check] = []
        self._runner: web.AppRunner | None = None
        self._failing: list[str] = []

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.health_address, self.settings.health_port)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def readyz(self, _: web.Request) -> web.Response:
        if self.kopf_task is not None and self.kopf_task.done():
            return web.Response(status=500, text="kopf stopped\n")
        return web.Response(text="ok\n")

    async def healthz(self, request: web.Request) -> web.Response:
        problems = [problem for check in self.checks for problem in check()]
        if problems != self._failing:  # a change of verdict, not every probe, is logged
            if problems:
                logger.error("Failed the liveness check: %s", "; ".join(problems))
            else:
                logger.info("Passed the liveness check again")
            self._failing = problems
        if problems:
            return web.Response(status=500, text="".join(f"{problem}\n" for problem in problems))
        return await self.readyz(request)

    async def metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def run(settings: Settings) -> int:
    """Run until stopped (returns 0), leadership is lost (3), the API refuses the leader
    Lease for good (4) or kopf fails (1); each of the last three is logged in one line."""
    configuration = load_configuration(settings.kubeconfig, settings.context)
    api = ApiClient(configuration, settings.identity, connections=API_CONNECTIONS)
    collecting.measure()
    health = HealthServer(settings)
    await health.start()
    elector = Elector(
        api,
        settings.leader_election_namespace,
        settings.leader_election_lease,
        settings.identity,
        settings.lease_duration,
        settings.renew_deadline,
        settings.retry_period,
    )
    try:
        try:
            await elector.acquire()
        except ApiError as error:
            logger.error("Stopped: the API refused the leader Lease: %s", error)
            return EXIT_REFUSED
        return await _lead(settings, api, elector, health)
    finally:
        await health.stop()
        await api.close()


async def _lead(
    settings: Settings,
    api: ApiClient,
    elector: Elector,
    health: HealthServer,
) -> int:
    cache = Cache()
    lost: asyncio.Future[LeadershipLost] = asyncio.get_running_loop().create_future()

    def on_lost(error: BaseException) -> None:
        if not lost.done() and isinstance(error, LeadershipLost):
            lost.set_result(error)

    applier = Applier(api, cache, elector.ensure_leading, settings.identity)
    reconciler = Reconciler(
        cache,
        applier,
        clock=time.time,
        resync_seconds=settings.resync_seconds,
        cluster_domain=settings.cluster_domain,
        nameserver=resolving.parse_server(settings.dns_server) if settings.dns_server else None,
        checker=permissions.Permissions(api),
    )
    supervisors = Supervisors(reconciler, on_fatal=on_lost)
    registry = kopf.OperatorRegistry()
    credentials.register(registry, api.connection)
    deliveries = liveness.Deliveries()
    watching.register(registry, cache, supervisors.wake, deliveries)
    configured = kopf_settings(settings)
    grace = configured.watching.inactivity_timeout
    audit = liveness.WatchAudit(
        lambda path, query: api.request("GET", path, query=query),
        deliveries,
        watching.WATCHED,
        settings.namespaces,
        grace=grace,
    )
    health.checks = [audit.stale, supervisors.wedged]
    stop_flag: asyncio.Event = asyncio.Event()
    kopf_task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=configured,
            standalone=True,
            clusterwide=settings.clusterwide,
            namespaces=settings.namespaces,
            stop_flag=stop_flag,
        ),
        name="kopf",
    )
    health.kopf_task = kopf_task
    hold_task = asyncio.create_task(elector.hold(), name="leader lease")
    collector_task = asyncio.create_task(collecting.tend(), name="garbage collector")
    audit_task = asyncio.create_task(audit.run(interval=grace / 2), name="watch audit")
    lost_task = asyncio.ensure_future(lost)
    watched: list[asyncio.Future[Any]] = [kopf_task, hold_task, lost_task]
    try:
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if hold_task in done or lost_task in done:
            error = hold_task.exception() if hold_task in done else lost_task.result()
            logger.error("Stopped: %s", error)
            return EXIT_LEADERSHIP_LOST
        failure = kopf_task.exception()
        if failure is not None:
            logger.error("Stopped: kopf failed: %r", failure)
            return EXIT_KOPF_FAILED
        return 0
    finally:
        stop_flag.set()
        await supervisors.stop()
        await reconciler.close()  # the hidden Erlang distribution connections, and mesh calls
        for task in (hold_task, lost_task, audit_task, collector_task):
            task.cancel()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(kopf_task, STOP_TIMEOUT)


def configure_logging(settings: Settings) -> None:
    kopf.configure(
        verbose=settings.verbose,
        log_format=kopf.LogFormat.JSON if settings.log_format is LogFormat.JSON else kopf.LogFormat.FULL,
    )
    if not settings.verbose:  # kopf logs every handled watch event at INFO: one line per pod change
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # An outage is logged once, where it is handled (the elector, the supervisors): not per
    # watch per retry by kopf.
    noise = outages.RetryNoise()
    for handler in logging.getLogger().handlers:
        handler.addFilter(noise)

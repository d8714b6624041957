"""``connect: Mesh``, carried out: asks members over Erlang distribution to connect the
peers they are missing and to disconnect the nodes whose pods are gone, all at once, each
call under the probe's timeout.

It writes nothing to the Kubernetes API (the applier is the only code that does); it acts
on the BEAM nodes themselves. Must never: decide whom to connect (``core.meshing`` does),
or show the cookie.
"""

from __future__ import annotations

import asyncio
import logging

from conclave.adapters import erlang, metrics
from conclave.adapters.distribution import CookieRef, CookieUnavailable, Pool
from conclave.api import ClusterTopology, durations
from conclave.core.plans import MeshPlan

logger = logging.getLogger(__name__)


async def carry_out(pool: Pool | None, topology: ClusterTopology, mesh: MeshPlan) -> None:
    """Ask for every connect and disconnect of ``mesh``; failures are logged and counted."""
    if pool is None or not (mesh.connects or mesh.disconnects):
        return
    probe = topology.spec.probe
    if probe.cookie_secret_ref is None:
        return
    ref = CookieRef(topology.metadata.namespace, probe.cookie_secret_ref.name, probe.cookie_secret_ref.key)
    try:
        client = await pool.client(ref)
    except CookieUnavailable as error:
        logger.warning("Cannot connect the mesh of %s: %s", topology.metadata.name, error)
        return
    timeout = durations.parse(probe.timeout).total_seconds()
    labels = {"namespace": topology.metadata.namespace, "topology": topology.metadata.name}

    async def ask(caller: str, function: str, peer: str) -> str:
        module = "net_kernel" if function == "connect_node" else "erlang"
        try:
            answer = await client.call(
                caller,
                mesh.addresses[caller],
                module,
                function,
                [erlang.atom(peer)],
                timeout=timeout,
                port=probe.distribution_port,
            )
        except erlang.DistributionError as error:
            logger.warning("Failed to ask %s to %s %s: %s", caller, function, peer, error.reason)
            return "error"
        return "done" if answer is True else "refused"

    connects = [ask(caller, "connect_node", peer) for caller, peer in mesh.connects]
    disconnects = [ask(caller, "disconnect_node", gone) for caller, gone in mesh.disconnects]
    results = await asyncio.gather(*connects, *disconnects)
    for result in results[: len(connects)]:
        metrics.MESH_CONNECTS.labels(**labels, result=result).inc()
    for result in results[len(connects) :]:
        metrics.MESH_DISCONNECTS.labels(**labels, result=result).inc()
    if mesh.disconnects:
        gone = sorted({name for _, name in mesh.disconnects})
        logger.info(
            "Disconnected %s from the members of %s: their pods are gone",
            ", ".join(gone),
            topology.metadata.name,
        )

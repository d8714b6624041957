"""The operator's API client against the real API server: how it uses its connections."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import AsyncIterator

from conclave.adapters.apiclient import ApiClient, load_configuration
from support import Cluster

CONNECTIONS = 16


class CountingForwarder:
    """A TCP forwarder to the API server (TLS passes through untouched) that counts the
    connections it is asked to open; it closes every one of them when it stops."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.accepted = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._pipes: set[asyncio.Task[None]] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers += [writer, up_writer]
        ends = ((reader, up_writer), (up_reader, writer))
        pipes = [asyncio.create_task(self._pipe(source, sink)) for source, sink in ends]
        self._pipes.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[int]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        try:
            async with server:
                yield server.sockets[0].getsockname()[1]
        finally:
            for writer in self._writers:
                writer.close()
            for pipe in self._pipes:
                pipe.cancel()
            await asyncio.gather(*self._pipes, return_exceptions=True)
            for writer in self._writers:
                with contextlib.suppress(OSError):
                    await writer.wait_closed()


async def test_concurrent_requests_share_the_client_s_kept_connections(cluster: Cluster) -> None:
    configuration = load_configuration(str(cluster.kubeconfig))
    upstream = urllib.parse.urlsplit(configuration.host)
    forwarder = CountingForwarder(upstream.hostname or "127.0.0.1", upstream.port or 443)
    async with forwarder.serving() as port:
        configuration.host = f"https://127.0.0.1:{port}"
        async with ApiClient(configuration, "tests", connections=CONNECTIONS) as api:
            for _ in range(3):
                await asyncio.gather(*(api.get("/api/v1/namespaces/default") for _ in range(4 * CONNECTIONS)))
    assert 0 < forwarder.accepted <= CONNECTIONS  # none opened, used once and dropped, then opened again

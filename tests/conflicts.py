"""A loopback proxy in front of the API server that answers chosen writes with 409 once,
as the API server does when another writer got there first.

Conflicts depend on timing in a real cluster; a scenario that must walk the operator's
conflict paths (re-read, decide again) scripts them here instead. Everything else,
watches included, is forwarded as is, so the API server still sees (and audits) every
other request, among them the re-reads the conflicts cause.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web

from conclave_harness.localcluster.clusters import free_port

FORWARDED_HEADERS = ("Authorization", "Accept", "Content-Type", "User-Agent")


class ConflictingProxy:
    """Forwards to ``upstream``; the first request matching each (method, path pattern) gets
    a 409 Conflict Status instead. Serves plain HTTP on 127.0.0.1 from a thread of its own."""

    def __init__(self, upstream: str, ca_file: str, conflicts: Iterable[tuple[str, str]]) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pending = [(method, re.compile(pattern)) for method, pattern in conflicts]
        self.answered: list[str] = []
        self._ssl = ssl.create_default_context(cafile=ca_file)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="conflicting proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._streams: set[asyncio.Task[Any]] = set()

    def __enter__(self) -> ConflictingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        for task in self._streams:  # watches stream until the server ends them: end them now
            task.cancel()
        await asyncio.gather(*self._streams, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        await asyncio.sleep(0.25)  # TLS transports finish closing only after a few loop turns

    def _conflicts(self, request: web.Request) -> bool:
        for index, (method, pattern) in enumerate(self.pending):
            if request.method == method and pattern.fullmatch(request.path):
                del self.pending[index]
                self.answered.append(f"{request.method} {request.path}")
                return True
        return False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._conflicts(request):
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Conflict",
                "message": "the object has been modified (scripted by the test's proxy)",
                "code": 409,
            }
            return web.json_response(status, status=409)
        assert self._session is not None
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            return await self._forward(request, self._session)
        finally:
            self._streams.discard(task)

    async def _forward(self, request: web.Request, session: aiohttp.ClientSession) -> web.StreamResponse:
        body = await request.read()
        headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
        if not body:  # a Content-Type without a body is refused (415)
            headers.pop("Content-Type", None)
        async with session.request(
            request.method,
            f"{self.upstream}{request.rel_url}",
            headers=headers,
            data=body or None,
            ssl=self._ssl,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            response.content_type = upstream.content_type
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():  # watches stream event by event
                    await response.write(chunk)
            except (ConnectionResetError, aiohttp.ClientError):
                return response  # the client hung up, or the proxy is stopping: nothing to finish
            await response.write_eof()
            return response

"""Raw-JSON access to the Kubernetes API for asyncio code.

Requests go out on the event loop over aiohttp (kopf's own HTTP client), a bounded pool
of kept connections, and come back as plain JSON; the official client only loads the
credentials (kubeconfig, exec plugins, in-cluster token rotation), and its slow models
are never used. Library errors become conclave's own (``conclave.errors``) with
``raise ... from``. This module transports; it decides nothing and is called for writes
only by the applier.

A 429 (the API server's priority and fairness, or its storage still initialising) is not
a failure: the request waits for the Retry-After the server names (1 s if none, at most
``MAX_RETRY_AFTER``) and is sent again, for up to ``THROTTLED_PATIENCE`` seconds in all;
only then is it an ApiError.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from kubernetes import client, config

from conclave import __version__
from conclave.adapters import metrics
from conclave.errors import ApiError, ConflictError, CredentialsError, ForbiddenError, NotFoundError

JSON = dict[str, Any]
Guard = Callable[[], None]
"""Raises when a write must not be sent (this replica cannot prove it leads)."""
REQUEST_TIMEOUT = 15.0
MAX_RETRY_AFTER = 10.0
THROTTLED_PATIENCE = 60.0

MERGE_PATCH = "application/merge-patch+json"
JSON_CONTENT = "application/json"

_ERRORS: dict[int, type[ApiError]] = {409: ConflictError, 404: NotFoundError, 403: ForbiddenError}


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> client.Configuration:
    """In-cluster credentials when running in a pod and neither a kubeconfig nor a context is
    named, else the kubeconfig (or $KUBECONFIG) with ``context`` (None: its current context).
    Raises CredentialsError when neither works, or the context is not in the kubeconfig."""
    configuration = client.Configuration()
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config(client_configuration=configuration)
            return configuration
        except config.ConfigException:
            pass
    try:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except (config.ConfigException, OSError) as error:
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        raise CredentialsError(f"Not in a pod, and no usable kubeconfig at {where}: {error}") from error
    return configuration


@dataclasses.dataclass(frozen=True)
class Connection:
    """Where the API server is and how to log in to it: what kopf's login needs, as plain data,
    so that no module past the adapters handles the client's ``Configuration``."""

    server: str
    ca_path: str | None = None
    insecure: bool = False
    certificate_path: str | None = None
    private_key_path: str | None = None
    token: str | None = None
    """The bearer token, without its ``Bearer`` prefix; None for certificate logins."""

    @classmethod
    def from_configuration(cls, configuration: client.Configuration) -> Connection:
        """The connection ``configuration`` describes now (in a pod, the client refreshes its
        token from the mounted file, so a later call may carry a newer token)."""
        if configuration.refresh_api_key_hook is not None:  # in a pod: re-read a rotated token
            configuration.refresh_api_key_hook(configuration)
        authorization = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
        # The in-cluster loader writes "bearer <token>", a kubeconfig "Bearer <token>".
        scheme, _, rest = (authorization or "").strip().partition(" ")
        token = (rest.strip() if scheme.lower() == "bearer" else authorization) or None
        return cls(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
            token=token,
        )


class ApiClient:
    """A shared Kubernetes API client on the event loop, speaking plain JSON.

    Use it in one event loop, and close it there (``async with``, or ``await close()``):
    its connections belong to the loop that first sent a request."""

    def __init__(self, configuration: client.Configuration, identity: str, connections: int = 8) -> None:
        """``connections``: how many requests are in flight at once, each on a kept
        connection (a request beyond them waits its turn before it is guarded and sent)."""
        self._configuration = configuration
        self._user_agent = f"conclave/{__version__} ({identity})"
        self._connections = max(1, connections)
        self._slots = asyncio.Semaphore(self._connections)
        try:
            self._tls = _tls_context(configuration)
        except OSError as error:  # ssl.SSLError is one: a CA or client certificate that does not load
            message = f"Could not load the TLS files for {configuration.host}: {error}"
            raise CredentialsError(message) from error
        self._session: aiohttp.ClientSession | None = None

    def connection(self) -> Connection:
        """This client's server and credentials as they are now (see Connection.from_configuration)."""
        return Connection.from_configuration(self._configuration)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = JSON_CONTENT,
        guard: Guard | None = None,
    ) -> JSON:
        """Send one request; return the decoded JSON body. Raises ApiError subclasses.

        ``guard`` is called right before each attempt is sent, once its turn has come (a
        write that waited while this replica led must not go out once it cannot prove it
        still does: after a freeze, say); whatever it raises is raised here.
        A 429 is waited out (its Retry-After) and sent again, until THROTTLED_PATIENCE."""
        data = None if body is None else json.dumps(body).encode()
        waited = 0.0
        while True:
            async with self._slots:
                if guard is not None:
                    guard()
                status, headers, answer = await self._send(method, path, data, query, content_type)
            if status != 429:
                break
            delay = _retry_after(headers, answer)
            if waited + delay > THROTTLED_PATIENCE:
                metrics.API_ERRORS.labels(verb=method.lower(), code="429").inc()
                message = answer[:200].decode(errors="replace")
                raise ApiError(429, "TooManyRequests", f"{method} {path}: {message}")
            await asyncio.sleep(delay)
            waited += delay
        if not 200 <= status <= 299:
            metrics.API_ERRORS.labels(verb=method.lower(), code=str(status)).inc()
            details = _status_details(answer)
            kind = _ERRORS.get(status, ApiError)
            message = details.get("message", answer[:200].decode(errors="replace"))
            raise kind(status, details.get("reason", ""), message)
        return json.loads(answer) if answer else {}

    async def _send(
        self, method: str, path: str, data: bytes | None, query: Mapping[str, str] | None, content_type: str
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One attempt: (status, headers, body). Raises ApiError(0) when no answer came."""
        headers = {"Accept": JSON_CONTENT, "Content-Type": content_type, "User-Agent": self._user_agent}
        authorization = self._configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        if authorization:  # read now: in a pod, the token file is re-read once it may have rotated
            headers["Authorization"] = authorization
        try:
            async with self._open().request(
                method,
                self._configuration.host + path,
                data=data,
                params=dict(query) if query else None,
                headers=headers,
                proxy=self._configuration.proxy or None,
                server_hostname=self._configuration.tls_server_name or None,
            ) as response:
                return response.status, response.headers, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            metrics.API_ERRORS.labels(verb=method.lower(), code="0").inc()
            raise ApiError(0, "Unreachable", f"{method} {path}: {error or type(error).__name__}") from None

    def _open(self) -> aiohttp.ClientSession:
        """The session, made on first use (aiohttp binds it to the running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, ssl=self._tls),
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def get(self, path: str) -> JSON:
        return await self.request("GET", path)

    async def create(self, path: str, body: JSON, guard: Guard | None = None) -> JSON:
        return await self.request("POST", path, body, guard=guard)

    async def replace(self, path: str, body: JSON) -> JSON:
        return await self.request("PUT", path, body)

    async def merge_patch(self, path: str, patch: JSON, guard: Guard | None = None) -> JSON:
        return await self.request("PATCH", path, patch, content_type=MERGE_PATCH, guard=guard)

    async def delete(self, path: str, options: JSON | None = None, guard: Guard | None = None) -> JSON:
        """``options``: a DeleteOptions body, e.g. preconditions."""
        return await self.request("DELETE", path, options, guard=guard)


def _tls_context(configuration: client.Configuration) -> ssl.SSLContext:
    """What the connections verify the server with (nothing, when ``insecure-skip-tls-verify``
    asks) and present as a client."""
    if configuration.verify_ssl:
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def _retry_after(headers: Any, body: bytes) -> float:
    """The seconds a 429 asks to wait: its Retry-After header, else the Status's
    details.retryAfterSeconds, else 1; within (0, MAX_RETRY_AFTER]."""
    value: Any = (headers or {}).get("Retry-After")
    if value is None:
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            value = (json.loads(body).get("details") or {}).get("retryAfterSeconds")
    try:
        seconds = float(value) if value is not None else 1.0
    except (TypeError, ValueError):
        seconds = 1.0
    return min(max(seconds, 0.05), MAX_RETRY_AFTER)


def _status_details(body: Any) -> dict[str, str]:
    try:
        decoded = json.loads(body) if body else {}
    except (TypeError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}

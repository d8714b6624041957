"""Raw-JSON access to the Kubernetes API for asyncio code.

The official client is synchronous and slow to deserialize into its models, so every
call here runs in a small thread pool and returns plain JSON; library errors become
conclave's own (``conclave.errors``) with ``raise ... from``. This module transports; it
decides nothing and is called for writes only by the applier.

A 429 (the API server's priority and fairness, or its storage still initialising) is not
a failure: the request waits for the Retry-After the server names (1 s if none, at most
``MAX_RETRY_AFTER``) and is sent again, for up to ``THROTTLED_PATIENCE`` seconds in all;
only then is it an ApiError.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import urllib3
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
    """A shared, thread-pooled Kubernetes API client speaking plain JSON."""

    def __init__(self, configuration: client.Configuration, identity: str, workers: int = 8) -> None:
        # One kept connection per worker: the client's default pool (5 per core) is smaller
        # than the workers, and every request beyond it paid a new TLS handshake, on both ends.
        configuration.connection_pool_maxsize = max(workers, configuration.connection_pool_maxsize or 0)
        self._api = client.ApiClient(configuration)
        self._api.user_agent = f"conclave/{__version__} ({identity})"
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="conclave-api")

    def connection(self) -> Connection:
        """This client's server and credentials as they are now (see Connection.from_configuration)."""
        return Connection.from_configuration(self._api.configuration)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._api.close()

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

        ``guard`` is called on the worker thread right before each attempt is sent (a
        write queued while this replica led must not go out once it cannot prove it still
        does: after a freeze, say); whatever it raises is raised here.
        A 429 is waited out (its Retry-After) and sent again, until THROTTLED_PATIENCE."""
        loop = asyncio.get_running_loop()
        waited = 0.0
        while True:
            try:
                return await loop.run_in_executor(
                    self._executor, self._send, method, path, body, dict(query or {}), content_type, guard
                )
            except _Throttled as throttled:
                if waited + throttled.delay > THROTTLED_PATIENCE:
                    metrics.API_ERRORS.labels(verb=method.lower(), code="429").inc()
                    raise ApiError(429, "TooManyRequests", f"{method} {path}: {throttled.message}") from None
                await asyncio.sleep(throttled.delay)
                waited += throttled.delay

    def _send(
        self, method: str, path: str, body: Any, query: dict[str, str], content_type: str, guard: Guard | None
    ) -> JSON:
        verb = method.lower()
        if guard is not None:
            guard()
        try:
            request = self._api.param_serialize(
                method,
                path,
                query_params=list(query.items()),
                header_params={"Accept": JSON_CONTENT, "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(*request, _request_timeout=REQUEST_TIMEOUT)
            data = response.read()
        except (client.exceptions.ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            metrics.API_ERRORS.labels(verb=verb, code="0").inc()
            raise ApiError(0, "Unreachable", f"{method} {path}: {error}") from None
        if response.status == 429:
            raise _Throttled(_retry_after(response.headers, data), data[:200].decode(errors="replace"))
        if not 200 <= response.status <= 299:
            metrics.API_ERRORS.labels(verb=verb, code=str(response.status)).inc()
            details = _status_details(data)
            kind = _ERRORS.get(response.status, ApiError)
            raise kind(
                response.status,
                details.get("reason", ""),
                details.get("message", data[:200].decode(errors="replace")),
            )
        return json.loads(data) if data else {}

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


class _Throttled(Exception):  # a signal between _send and request, never raised past them
    def __init__(self, delay: float, message: str) -> None:
        super().__init__(message)
        self.delay = delay
        self.message = message


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

"""Erlang distribution for the rest of the operator: one client per cookie, the cookie read
from its Secret (and read again once a minute, so a rotated Secret takes effect), and spec
terms turned into the client's terms.

Probes, the mesh and pg lookups share these clients, so each member has one hidden
connection, kept open. Must never: log, count or show the cookie; decide anything.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from typing import Any

from conclave.adapters import erlang
from conclave.adapters.apiclient import ApiClient
from conclave.adapters.erlang import terms as wire
from conclave.api import kinds, terms
from conclave.errors import ApiError, ConclaveError, ForbiddenError, NotFoundError

logger = logging.getLogger(__name__)

COOKIE_TTL_SECONDS = 60.0


class CookieUnavailable(ConclaveError):
    """The cookie Secret could not be read; ``reason`` says why, as a view's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class CookieRef:
    namespace: str
    name: str
    key: str


def own_node_name(identity: str, host: str | None = None) -> str:
    """This replica's hidden node name: ``conclave-<identity>@<host>``, in Erlang's alphabet.

    Each replica has its own (a node answering ``alive`` would drop the other's connection);
    the host is the pod's IP (the Deployment sets POD_IP), else this machine's name.
    """
    alive = re.sub(r"[^A-Za-z0-9_-]", "-", f"conclave-{identity}")[:200]
    return f"{alive}@{host or os.environ.get('POD_IP') or socket.gethostname()}"


class Pool:
    """The operator's Erlang distribution clients: one per cookie, not per Secret.

    Every client is the same hidden node (``own_name``), so two holding the same cookie
    would each replace the other's connection at every node they both reach; topologies
    whose Secrets hold one cookie share one client, and so one connection per node. A node
    refuses a client with another cookie before its connection replaces anything. A client
    whose cookie no Secret holds any more (rotated) is kept until ``close``: a call may
    still be using it, and its connections give way at each node to the new cookie's.
    """

    def __init__(self, api: ApiClient, own_name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.own_name = own_name
        self._clock = clock
        self._clients: dict[str, erlang.Client] = {}
        self._cookies: dict[CookieRef, tuple[str, float]] = {}

    async def client(self, ref: CookieRef) -> erlang.Client:
        """The client for ``ref``'s cookie. Raises CookieUnavailable."""
        cached = self._cookies.get(ref)
        if cached is None or self._clock() - cached[1] > COOKIE_TTL_SECONDS:
            try:
                self._cookies[ref] = (await self._read(ref), self._clock())
            except CookieUnavailable:
                if cached is None:
                    raise
                logger.warning(
                    "Kept the last cookie of Secret %s/%s: it could not be read again",
                    ref.namespace,
                    ref.name,
                )
                self._cookies[ref] = (cached[0], self._clock())
        cookie = self._cookies[ref][0]
        if cookie not in self._clients:
            self._clients[cookie] = erlang.Client(self.own_name, cookie)
        return self._clients[cookie]

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    async def _read(self, ref: CookieRef) -> str:
        where = f"Secret {ref.namespace}/{ref.name}"
        try:
            secret = await self.api.get(kinds.of("Secret").path(ref.namespace, ref.name))
        except NotFoundError:
            raise CookieUnavailable("CookieSecretNotFound", f"{where} does not exist") from None
        except ForbiddenError:
            raise CookieUnavailable("CookieForbidden", f"RBAC forbids reading {where}") from None
        except ApiError as error:
            raise CookieUnavailable("CookieUnreadable", f"{where} could not be read: {error}") from None
        encoded = (secret.get("data") or {}).get(ref.key)
        if encoded is None:
            raise CookieUnavailable("CookieKeyNotFound", f"{where} has no key {ref.key!r}")
        try:
            return base64.b64decode(encoded, validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            raise CookieUnavailable("CookieKeyNotFound", f"{where} key {ref.key!r} is not text") from None


def to_erlang(term: terms.Term) -> Any:
    """A spec's term as the distribution client sends it."""
    if isinstance(term, terms.Atom):
        return wire.atom(term.name)
    if isinstance(term, bytes):
        return wire.Binary(term)
    if isinstance(term, tuple):
        return tuple(to_erlang(item) for item in term)
    if isinstance(term, list):
        return [to_erlang(item) for item in term]
    return term  # int, float, and str (a charlist)

"""Why a call to an Erlang node failed: one class per reason, each a stable CamelCase word.

ConclaveError
└── DistributionError                  ``reason`` (the class name) and ``node``
    ├── EpmdUnreachable                no usable EPMD at the address: refused, unreachable, garbage
    ├── NotRegistered                  EPMD answered that no node of that name is registered
    ├── ConnectionRefused (ConnectionRefusedError)
    │                                  nothing listens at the distribution port, or no route to it
    ├── HandshakeFailed                the peer broke off or garbled the handshake
    ├── ProtocolTooOld                 the peer speaks only distribution version 5 (OTP 22 or older)
    ├── CookieRejected                 the peer refused our digest, or its own did not prove the cookie
    ├── WrongNode                      the node at that address has another name
    ├── Timeout (TimeoutError)         no answer within the call's timeout
    ├── ConnectionLost                 the connection closed while a call waited for its reply
    ├── ProtocolError                  the peer sent a malformed packet after the handshake
    ├── BadRpc                         the node ran the call and answered ``{badrpc, Reason}``
    └── InvalidNodeName (ValueError)   not ``name@host``

Callers map ``reason`` to an unknown view; they never parse the message. Messages name the
node and what was seen; they never contain the cookie (nothing here is ever given it).
"""

from __future__ import annotations

from typing import Any

from conclave.errors import ConclaveError


class DistributionError(ConclaveError):
    """A call to an Erlang node failed; ``reason`` says how, ``node`` which node."""

    def __init__(self, node: str, message: str) -> None:
        super().__init__(f"{node}: {message}")
        self.node = node
        self.message = message

    @property
    def reason(self) -> str:
        """The stable CamelCase word for this failure: the class name."""
        return type(self).__name__


class EpmdUnreachable(DistributionError):
    """No usable EPMD at the node's address: refused, unreachable, or a malformed answer."""


class NotRegistered(DistributionError):
    """EPMD answered, and no node of that name is registered with it."""


class ConnectionRefused(DistributionError, ConnectionRefusedError):
    """Nothing accepted a connection at the node's distribution port (or there is no route)."""


class HandshakeFailed(DistributionError):
    """The peer closed or garbled the distribution handshake, or refused us for another reason."""


class ProtocolTooOld(DistributionError):
    """The peer does not speak distribution protocol version 6 (OTP 23 and later)."""


class CookieRejected(DistributionError):
    """The peer refused our challenge reply, or its acknowledgement did not prove the same cookie."""


class WrongNode(DistributionError):
    """The node that answered at the address has another name than the one asked for."""


class Timeout(DistributionError, TimeoutError):
    """No answer within the call's timeout."""


class ConnectionLost(DistributionError):
    """The connection closed while a call waited for its reply."""


class ProtocolError(DistributionError):
    """The peer sent a malformed or oversized packet after the handshake."""


class BadRpc(DistributionError):
    """The node ran the call and answered ``{badrpc, Reason}``; ``detail`` is the decoded Reason."""

    def __init__(self, node: str, message: str, detail: Any = None) -> None:
        super().__init__(node, message)
        self.detail = detail


class InvalidNodeName(DistributionError, ValueError):
    """The node name is not ``name@host`` with a non-empty name and host."""

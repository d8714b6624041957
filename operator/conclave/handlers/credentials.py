"""kopf logs in with the same credentials as conclave's own client (one kubeconfig)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf

from conclave.adapters.apiclient import Connection


def register(registry: kopf.OperatorRegistry, connect: Callable[[], Connection]) -> None:
    """Log kopf in with ``connect()``, called at each (re-)login: in a pod the token is rotated,
    and kopf logs in again when the server refuses the one it has."""

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        connection = connect()
        return kopf.ConnectionInfo(
            server=connection.server,
            ca_path=connection.ca_path,
            insecure=connection.insecure,
            certificate_path=connection.certificate_path,
            private_key_path=connection.private_key_path,
            token=connection.token,
        )

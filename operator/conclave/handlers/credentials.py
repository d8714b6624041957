"""kopf logs in with the same credentials as conclave's own client (one kubeconfig)."""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes import client


def register(registry: kopf.OperatorRegistry, configuration: client.Configuration) -> None:
    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        authorization = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
        token = authorization.removeprefix("Bearer ").strip() if authorization else None
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
            token=token,
        )

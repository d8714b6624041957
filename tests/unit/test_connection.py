"""kopf logs in with what conclave's own client uses: the client's configuration as plain data."""

from __future__ import annotations

import pytest
from kubernetes import client

from conclave.adapters.apiclient import ApiClient, Connection


def configuration(**fields: object) -> client.Configuration:
    configured = client.Configuration()
    for name, value in fields.items():
        setattr(configured, name, value)
    return configured


@pytest.mark.parametrize(
    ("api_key", "token"),
    [
        pytest.param({"authorization": "Bearer abc"}, "abc", id="a kubeconfig token loses its Bearer prefix"),
        pytest.param({"BearerToken": "Bearer xyz "}, "xyz", id="an in-cluster token is read the same way"),
        pytest.param({"BearerToken": "bearer xyz"}, "xyz", id="as the in-cluster loader writes it"),
        pytest.param({}, None, id="a certificate login has no token"),
    ],
)
def test_the_token_is_the_bearer_token_without_its_prefix(api_key: dict[str, str], token: str | None) -> None:
    assert Connection.from_configuration(configuration(api_key=api_key)).token == token


def test_the_server_and_tls_files_are_carried_as_they_are() -> None:
    configured = configuration(
        host="https://127.0.0.1:6443",
        ssl_ca_cert="/ca.crt",
        verify_ssl=False,
        cert_file="/client.crt",
        key_file="/client.key",
    )
    assert Connection.from_configuration(configured) == Connection(
        server="https://127.0.0.1:6443",
        ca_path="/ca.crt",
        insecure=True,
        certificate_path="/client.crt",
        private_key_path="/client.key",
        token=None,
    )


def test_a_client_s_connection_carries_its_refreshed_token() -> None:
    configured = configuration(api_key={"authorization": "Bearer old"})
    api = ApiClient(configured, identity="tests")  # nothing sent: no connection to close
    configured.api_key["authorization"] = "Bearer new"  # what the in-cluster refresh hook does
    assert api.connection().token == "new"

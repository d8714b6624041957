"""Helpers shared by the integration and e2e tests (plain functions, no fixtures)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client

T = TypeVar("T")

GROUP, VERSION = "conclave.dev", "v1alpha1"


def eventually(probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll until ``probe`` returns something truthy and return it; the cluster is asynchronous."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last result: {result!r}")
        time.sleep(interval)


def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def create(api_client: client.ApiClient, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", **body}
    created: dict[str, Any] = custom(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, body
    )
    return created


def read(api_client: client.ApiClient, namespace: str, plural: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = custom(api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )
    return found


def condition(body: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for entry in body.get("status", {}).get("conditions", []):
        if entry["type"] == kind:
            found: dict[str, Any] = entry
            return found
    return None


def raw_get(api_client: client.ApiClient, path: str, accept: str = "application/json") -> Any:
    """GET a path and decode its JSON body, e.g. to read the Table `kubectl get` prints."""
    request = api_client.param_serialize(
        "GET", path, header_params={"Accept": accept}, auth_settings=["BearerToken"]
    )
    response = api_client.call_api(*request)
    body = response.read()
    assert 200 <= response.status <= 299, f"GET {path}: {response.status} {body[:300]!r}"
    return json.loads(body)


def events_about(api_client: client.ApiClient, namespace: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, note) of the events about ``name``, read as JSON: the client's models
    refuse events that other controllers post without an eventTime."""
    found = raw_get(api_client, f"/apis/events.k8s.io/v1/namespaces/{namespace}/events")["items"]
    return [
        (e.get("type", ""), e.get("reason", ""), e.get("note", ""))
        for e in found
        if e.get("regarding", {}).get("name") == name
    ]

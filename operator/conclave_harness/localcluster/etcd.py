"""The local cluster's etcd through its JSON gateway (the v3 API over HTTP on its loopback
client URL): whether it is healthy, its current revision, and compaction.

For tests only: a compaction removes every revision older than the one given, so a watch
or a list that asks for an older resourceVersion is answered 410 Gone. It never talks to
an etcd but the local cluster's.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

TIMEOUT = 2.0


def _post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def healthy(url: str) -> bool:
    """True when etcd at ``url`` says it is healthy (it has a leader and serves reads)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=TIMEOUT) as response:
            return bool(json.loads(response.read()).get("health") == "true")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def revision(url: str) -> int:
    """etcd's current revision (what the API server calls the latest resourceVersion)."""
    key = base64.b64encode(b"/conclave-harness/revision").decode()
    return int(_post(url, "/v3/kv/range", {"key": key, "limit": 1})["header"]["revision"])


def kept(url: str, at: int) -> bool:
    """True while etcd still holds revision ``at`` (False once a compaction removed it)."""
    key = base64.b64encode(b"/conclave-harness/revision").decode()
    try:
        _post(url, "/v3/kv/range", {"key": key, "limit": 1, "revision": str(at)})
    except urllib.error.HTTPError as error:
        if b"compacted" in error.read():
            return False
        raise
    return True


def compact(url: str, to: int) -> None:
    """Compact etcd's history up to revision ``to``, physically (it waits until it is done)."""
    _post(url, "/v3/kv/compaction", {"revision": str(to), "physical": True})

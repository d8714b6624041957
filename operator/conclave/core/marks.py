"""The labels and annotations conclave puts on objects, and the ones apps put for it.

They are a contract with users and their apps (docs/singletons.md, docs/process-groups),
and the watches filter on some of them, so each key is spelt once, here.
"""

from __future__ import annotations

import functools
import hashlib

MEMBERS_LABEL = "conclave.dev/members-of"
"""On a topology's ``<name>-members`` ConfigMap; the operator watches only those."""
LEASE_LABEL = "conclave.dev/lease-of"
"""On every Lease conclave writes for a singleton; the operator watches only those."""
GROUP_LABEL = "conclave.dev/process-group"
"""On a ProcessGroup's Service and EndpointSlice: the group's name."""
MANAGED_BY = "conclave.dev"
"""The EndpointSlice ``managed-by`` value of conclave's slices (never the controller's)."""

OWNER_ANNOTATION = "conclave.dev/owner"
OWNER_POD_ANNOTATION = "conclave.dev/owner-pod"
OWNER_POD_UID_ANNOTATION = "conclave.dev/owner-pod-uid"
REASON_ANNOTATION = "conclave.dev/reason"
"""On a singleton's Lease: the owner granted last, its pod and pod uid, and why."""

ANNOTATION_PREFIX = "conclave.dev/singleton."
RELEASED_SUFFIX = ".released"
MAX_ANNOTATION_NAME = 63


@functools.lru_cache(maxsize=65536)  # asked of every singleton in every plan, ~3 times
def pod_annotation(singleton: str) -> str:
    """``conclave.dev/singleton.<name>`` on the owner's pod; a name too long for an
    annotation key (63 characters, with room for ``.released``) is cut and given a hash
    of the whole."""
    stem = f"singleton.{singleton}"
    if len(stem) + len(RELEASED_SUFFIX) > MAX_ANNOTATION_NAME:
        digest = hashlib.sha256(singleton.encode()).hexdigest()[:8]
        room = MAX_ANNOTATION_NAME - len(RELEASED_SUFFIX) - len("singleton.") - len(digest) - 1
        stem = f"singleton.{singleton[:room].rstrip('.-')}-{digest}"
    return f"conclave.dev/{stem}"


@functools.lru_cache(maxsize=65536)
def released_annotation(singleton: str) -> str:
    """What the app sets on its own pod, to the epoch, when it has stopped the singleton."""
    return pod_annotation(singleton) + RELEASED_SUFFIX

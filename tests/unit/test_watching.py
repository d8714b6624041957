"""The watches as kopf is told to run them: every kind conclave reads, handled by an index
and an event handler only, so kopf keeps no diff-base of any object."""

from __future__ import annotations

from typing import Any

import kopf

from conclave.adapters.cache import Cache
from conclave.handlers import watching


def test_kopf_needs_no_essence_of_any_object_because_nothing_detects_changes() -> None:
    registry = kopf.OperatorRegistry()
    watching.register(registry, Cache(), lambda key: None)
    settings = kopf.OperatorSettings()
    watching.configure(settings)
    resources = [kopf.Resource(w.kind.group, w.kind.version, w.kind.plural) for w in watching.WATCHED]
    assert not any(registry._changing.has_handlers(resource=r) for r in resources)  # none to compare for
    assert not any(registry._spawning.has_handlers(resource=r) for r in resources)
    assert all(registry._watching.has_handlers(resource=r) for r in resources)
    body: Any = kopf.Body({"metadata": {"name": "chat-0", "labels": {"app": "chat"}}, "spec": {"x": [1]}})
    assert settings.persistence.diffbase_storage.build(body=body) == {}
    assert settings.persistence.diffbase_storage.fetch(body=body) is None


def test_the_event_kopf_holds_loses_its_managed_fields_and_nothing_else() -> None:
    raw = {
        "metadata": {"name": "s-1", "labels": {"a": "b"}, "managedFields": [{"manager": "kubectl"}]},
        "spec": {"topology": "chat"},
    }
    watching.drop_managed_fields(kopf.Body(raw))
    assert raw == {"metadata": {"name": "s-1", "labels": {"a": "b"}}, "spec": {"topology": "chat"}}

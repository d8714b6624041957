"""The control-plane build's pure parts: the wrapper module and the cross-process lock."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from conclave_harness.localcluster import building

UPSTREAM_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tgithub.com/blang/semver/v4 v4.0.0
\tk8s.io/api v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-20260101
)
"""


def test_staging_modules_are_the_ones_mapped_to_the_staging_folder() -> None:
    assert building.staging_modules(UPSTREAM_GO_MOD) == ["k8s.io/api", "k8s.io/client-go"]


@pytest.mark.parametrize(
    ("kubernetes", "staging"),
    [("v1.37.2", "v0.37.2"), ("v1.33.13", "v0.33.13")],
    ids=["the pinned release", "a two-digit patch"],
)
def test_staging_version_follows_the_kubernetes_minor_and_patch(kubernetes: str, staging: str) -> None:
    assert building.staging_version(kubernetes) == staging


def test_a_pre_release_is_not_a_kubernetes_release() -> None:
    with pytest.raises(ValueError, match="not a Kubernetes release"):
        building.staging_version("v1.37.0-rc.1")


def test_wrapper_maps_every_staging_module_to_its_published_release() -> None:
    go_mod = building.kubernetes_wrapper_go_mod(UPSTREAM_GO_MOD, "1.26.0")
    assert go_mod.splitlines() == [
        "module conclave.dev/localcluster/kubernetes",
        "",
        "go 1.26.0",
        "",
        f"require k8s.io/kubernetes {building.KUBERNETES_VERSION}",
        "",
        "replace k8s.io/api => k8s.io/api v0.37.2",
        "replace k8s.io/client-go => k8s.io/client-go v0.37.2",
    ]


def test_missing_binaries_are_reported_as_not_cached(tmp_path: Path) -> None:
    assert building.cached_binaries(tmp_path) is None


def test_the_lock_keeps_a_second_builder_waiting_until_the_first_is_done(tmp_path: Path) -> None:
    order: list[str] = []
    first_holds = threading.Event()
    release_first = threading.Event()

    def first() -> None:
        with building.exclusive(tmp_path / "lock"):
            order.append("first in")
            first_holds.set()
            release_first.wait(5)
            order.append("first out")

    def second() -> None:
        first_holds.wait(5)
        with building.exclusive(tmp_path / "lock"):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    first_holds.wait(5)
    release_first.set()
    for thread in threads:
        thread.join(5)
    assert order == ["first in", "first out", "second in"]

"""Builds etcd, kube-apiserver and kube-controller-manager from their Go modules.

Owns the pinned versions, the wrapper Go modules and the binary cache under
``${XDG_CACHE_HOME:-~/.cache}/conclave/``. A build runs once per machine and version:
an exclusive file lock keeps two concurrent runs from building twice, and every binary
is written under a temporary name and renamed into place, so nobody ever reads a
half-written one. It never starts a binary; ``clusters`` does that.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from conclave_harness.errors import BuildError

KUBERNETES_VERSION = "v1.37.2"
"""The newest Kubernetes patch release that builds with Go 1.26 (it requires go 1.26.0)."""

ETCD_VERSION = "v3.7.0"
"""The etcd release that KUBERNETES_VERSION's own go.mod requires."""

MINIMUM_GO = (1, 26)

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Binaries:
    """Paths of the three control-plane binaries, all present and executable."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "conclave"


def kubernetes_dir(root: Path) -> Path:
    return root / "bin" / f"kubernetes-{KUBERNETES_VERSION}"


def etcd_dir(root: Path) -> Path:
    return root / "bin" / f"etcd-{ETCD_VERSION}"


def cached_binaries(root: Path | None = None) -> Binaries | None:
    """The cached binaries, or None when any of them is missing."""
    root = root or cache_root()
    binaries = Binaries(
        etcd=etcd_dir(root) / "etcd",
        kube_apiserver=kubernetes_dir(root) / "kube-apiserver",
        kube_controller_manager=kubernetes_dir(root) / "kube-controller-manager",
    )
    paths = dataclasses.astuple(binaries)
    return binaries if all(os.access(path, os.X_OK) for path in paths) else None


def staging_modules(kubernetes_go_mod: str) -> list[str]:
    """The staging modules that k8s.io/kubernetes maps to ./staging/src in its go.mod.

    Outside the kubernetes repository those local paths do not exist, so a wrapper
    module must map each of them to its published v0.X.Y release instead.
    """
    pattern = re.compile(r"^\s*(?:replace\s+)?(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", re.MULTILINE)
    return sorted(set(pattern.findall(kubernetes_go_mod)))


def staging_version(kubernetes_version: str) -> str:
    """k8s.io/kubernetes v1.37.2 goes with staging modules at v0.37.2."""
    match = re.fullmatch(r"v1\.(\d+)\.(\d+)", kubernetes_version)
    if not match:
        raise ValueError(f"not a Kubernetes release version: {kubernetes_version!r}")
    return f"v0.{match[1]}.{match[2]}"


def kubernetes_wrapper_go_mod(kubernetes_go_mod: str, go_directive: str) -> str:
    """The go.mod of a module that requires k8s.io/kubernetes and can build its commands."""
    version = staging_version(KUBERNETES_VERSION)
    lines = [
        "module conclave.dev/localcluster/kubernetes",
        "",
        f"go {go_directive}",
        "",
        f"require k8s.io/kubernetes {KUBERNETES_VERSION}",
        "",
    ]
    lines += [f"replace {module} => {module} {version}" for module in staging_modules(kubernetes_go_mod)]
    return "\n".join(lines) + "\n"


ETCD_MAIN = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""


def go_version(go: str) -> tuple[int, int]:
    output = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True)
    match = re.match(r"go(\d+)\.(\d+)", output.stdout.strip())
    if not match:
        raise BuildError(f"Could not read the Go version from {output.stdout.strip()!r}")
    return int(match[1]), int(match[2])


def find_go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "Go is not installed, and the local control plane is built from its Go modules "
            f"(Go >= {MINIMUM_GO[0]}.{MINIMUM_GO[1]} needed). Install Go, or set "
            "CONCLAVE_KUBECONFIG to the kubeconfig of an existing cluster to use that instead."
        )
    found = go_version(go)
    if found < MINIMUM_GO:
        raise BuildError(
            f"Go {found[0]}.{found[1]} is too old to build Kubernetes {KUBERNETES_VERSION} "
            f"(needs >= {MINIMUM_GO[0]}.{MINIMUM_GO[1]}). Install a newer Go, or set "
            "CONCLAVE_KUBECONFIG to the kubeconfig of an existing cluster."
        )
    return go


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock across processes: the second builder waits, then reuses."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_binaries(progress: Progress | None = None, root: Path | None = None) -> Binaries:
    """Return the cached binaries, building whatever is missing first.

    Raises BuildError with the failing command's output when Go is missing or a build fails.
    """
    root = root or cache_root()
    report = progress or (lambda message: print(message, file=sys.stderr, flush=True))
    binaries = cached_binaries(root)
    if binaries is not None:
        return binaries
    with exclusive(root / "bin" / ".build.lock"):
        binaries = cached_binaries(root)
        if binaries is not None:  # another process built them while we waited
            return binaries
        go = find_go()
        started = time.monotonic()
        report(
            f"Building the local control plane (Kubernetes {KUBERNETES_VERSION}, etcd "
            f"{ETCD_VERSION}) from Go modules; the first build takes several minutes"
        )
        builder = _GoBuilder(go=go, workdir=root / "build", report=report)
        if not os.access(etcd_dir(root) / "etcd", os.X_OK):
            builder.build_etcd(etcd_dir(root))
        kubernetes_targets = ("kube-apiserver", "kube-controller-manager")
        if not all(os.access(kubernetes_dir(root) / name, os.X_OK) for name in kubernetes_targets):
            builder.build_kubernetes(kubernetes_dir(root), kubernetes_targets)
        report(f"Built the local control plane in {time.monotonic() - started:.0f}s")
    binaries = cached_binaries(root)
    if binaries is None:
        raise BuildError(f"The build finished but binaries are missing under {root / 'bin'}")
    return binaries


@dataclasses.dataclass
class _GoBuilder:
    go: str
    workdir: Path
    report: Progress

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(CGO_ENABLED="0", GOFLAGS="-mod=mod", GOTOOLCHAIN="local")
        return env

    def run(self, args: list[str], cwd: Path, label: str) -> None:
        """Run a go command, reporting every compiled package as progress."""
        process = subprocess.Popen(
            [self.go, *args],
            cwd=cwd,
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        tail: list[str] = []
        packages = 0
        last_report = time.monotonic()
        for line in process.stdout:
            tail = [*tail[-40:], line.rstrip()]
            if not line.startswith(("go: ", "#")):
                packages += 1
            if time.monotonic() - last_report > 10:
                self.report(f"  {label}: {packages} packages so far")
                last_report = time.monotonic()
        if process.wait() != 0:
            joined = "\n".join(tail)
            raise BuildError(
                f"`go {' '.join(args)}` failed in {cwd} (exit {process.returncode}):\n{joined}\n"
                "Set CONCLAVE_KUBECONFIG to an existing cluster's kubeconfig to skip the build."
            )

    def build(self, module_dir: Path, package: str, output: Path, ldflags: str = "") -> None:
        partial = output.with_name(f".{output.name}.partial")
        flags = f"-s -w {ldflags}".strip()
        self.run(
            ["build", "-v", f"-ldflags={flags}", "-o", str(partial), package],
            module_dir,
            output.name,
        )
        os.replace(partial, output)
        self.report(f"  built {output}")

    def build_etcd(self, target: Path) -> None:
        module = self.workdir / f"etcd-{ETCD_VERSION}"
        module.mkdir(parents=True, exist_ok=True)
        (module / "go.mod").write_text(
            "module conclave.dev/localcluster/etcd\n\ngo 1.26.0\n\n"
            f"require go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n"
        )
        (module / "main.go").write_text(ETCD_MAIN)
        self.report(f"  etcd {ETCD_VERSION}: resolving modules")
        self.run(["mod", "tidy"], module, "etcd")
        target.mkdir(parents=True, exist_ok=True)
        self.build(module, ".", target / "etcd")

    def build_kubernetes(self, target: Path, commands: tuple[str, ...]) -> None:
        module = self.workdir / f"kubernetes-{KUBERNETES_VERSION}"
        module.mkdir(parents=True, exist_ok=True)
        self.report(f"  kubernetes {KUBERNETES_VERSION}: downloading its go.mod")
        upstream_go_mod = self.download_go_mod("k8s.io/kubernetes", KUBERNETES_VERSION)
        go_directive = re.search(r"^go\s+(\S+)", upstream_go_mod, re.MULTILINE)
        (module / "go.mod").write_text(
            kubernetes_wrapper_go_mod(upstream_go_mod, go_directive[1] if go_directive else "1.26.0")
        )
        minor = KUBERNETES_VERSION.split(".")[1]
        version_package = "k8s.io/component-base/version"
        ldflags = " ".join(
            [
                f"-X {version_package}.gitVersion={KUBERNETES_VERSION}",
                f"-X {version_package}.gitMajor=1",
                f"-X {version_package}.gitMinor={minor}",
                f"-X {version_package}.gitTreeState=clean",
            ]
        )
        target.mkdir(parents=True, exist_ok=True)
        for command in commands:
            self.report(f"  compiling {command} (minutes on a fresh machine)")
            self.build(module, f"k8s.io/kubernetes/cmd/{command}", target / command, ldflags)

    def download_go_mod(self, module: str, version: str) -> str:
        scratch = self.workdir / "download"
        scratch.mkdir(parents=True, exist_ok=True)
        if not (scratch / "go.mod").exists():
            (scratch / "go.mod").write_text("module conclave.dev/localcluster/download\n\ngo 1.26.0\n")
        result = subprocess.run(
            [self.go, "mod", "download", "-json", f"{module}@{version}"],
            cwd=scratch,
            env=self.environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BuildError(f"Could not download {module}@{version}: {result.stdout}{result.stderr}")
        match = re.search(r'"GoMod":\s*"([^"]+)"', result.stdout)
        if not match:
            raise BuildError(f"`go mod download` did not say where {module}'s go.mod is")
        return Path(match[1]).read_text()

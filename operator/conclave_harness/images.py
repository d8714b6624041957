"""The operator's image, built from the project's Dockerfile and run with Debian's podman.

No image registry is reachable from this workplace, so the Dockerfile's base
(``debian:bookworm-slim``, Debian 12) is made here: ``debootstrap --variant=minbase
bookworm`` from Debian's own packages, trimmed of documentation and locales as the slim
images are, packed once into a tarball under ``${XDG_CACHE_HOME:-~/.cache}/conclave/images/``
and imported under the Dockerfile's FROM name. The Dockerfile itself is unchanged for
builders that do reach a registry.

Podman keeps its images and layer cache in a store of conclave's own under the same cache
(``containers/``), not the machine's, so a second build reuses every layer and touches
nothing else. What this machine's kernel and sandbox need is set here, found by trying:

- ``runc``, not Debian's default crun: crun 1.8 refuses the hybrid cgroup layout (v1
  controllers with a v2 mount) ("cgroups in hybrid mode not supported"), and runc has no
  such check;
- explicit ``nofile``/``nproc`` limits: podman's defaults for root (about a million each)
  are above what the sandbox lets a process raise to ("setrlimit RLIMIT_NPROC: Operation not
  permitted");
- ``--network=host``: no CNI setup, and a container reaches the local API server on loopback;
- the overlay storage driver on the host's filesystem (vfs works too, at ~6 s per container
  for copying the base).

The build reaches PyPI and Debian's archive: pip's ``PIP_CERT`` (or the ``cert`` of
/etc/pip.conf) and ``PIP_INDEX_URL`` are passed through (the CA bundle mounted read-only)
when this machine sets them.
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import click

from conclave_harness.errors import BuildError
from conclave_harness.localcluster.building import cache_root, exclusive

ROOT = Path(__file__).resolve().parents[2]
"""The repository: the Dockerfile's build context."""

BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
"""The Dockerfile's default BASE; the locally made base is imported under this name."""
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
IMAGE = "localhost/conclave/operator:dev"

LIMITS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")
"""Below what the sandbox lets a process raise its limits to (see the module docstring)."""

TRIMMED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt/archives")
"""What the slim images leave out too: nothing the operator or apt needs."""


def images_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / "images"


def base_tarball(root: Path | None = None) -> Path:
    return images_dir(root) / f"debian-{DEBIAN_SUITE}-minbase.tar"


def ensure_base_tarball(root: Path | None = None) -> Path:
    """The base's root filesystem as a tarball, made with debootstrap the first time.

    Raises BuildError when debootstrap is missing or fails (its log in the message).
    """
    tarball = base_tarball(root)
    if tarball.exists():
        return tarball
    with exclusive(tarball.parent / ".base.lock"):
        if tarball.exists():  # made by another process while we waited
            return tarball
        debootstrap = shutil.which("debootstrap")
        if debootstrap is None:
            raise BuildError("debootstrap is needed to make the image's base; `make system-deps` installs it")
        with tempfile.TemporaryDirectory(dir=tarball.parent) as scratch:
            rootfs = Path(scratch) / "rootfs"
            result = subprocess.run(
                [debootstrap, "--variant=minbase", DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise BuildError(f"debootstrap failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
            for trimmed in TRIMMED:
                shutil.rmtree(rootfs / trimmed, ignore_errors=True)
            partial = Path(scratch) / "base.tar"
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
            os.replace(partial, tarball)
    return tarball


PIP_CONFIG = Path("/etc/pip.conf")


def pip_configured_cert(config: Path = PIP_CONFIG) -> str | None:
    """The CA bundle this machine's pip is configured with (``cert`` in /etc/pip.conf), if
    any: a build inside a container cannot read the host's pip configuration."""
    parser = configparser.ConfigParser()
    with contextlib.suppress(OSError, configparser.Error):
        parser.read(config)
    return parser.get("global", "cert", fallback=None)


@dataclasses.dataclass(frozen=True)
class Podman:
    """podman on conclave's own store (see the module docstring for each setting)."""

    store: Path

    @classmethod
    def cached(cls, root: Path | None = None) -> Podman:
        if shutil.which("podman") is None:
            raise BuildError("podman is needed to build the image; `make system-deps` installs it")
        return cls((root or cache_root()) / "containers")

    def command(self, *args: str) -> list[str]:
        return [
            "podman",
            "--root", str(self.store / "storage"),
            "--runroot", str(self.store / "run"),
            "--storage-driver", "overlay",
            "--runtime", "runc",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
            *args,
        ]  # fmt: skip

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run podman; raises BuildError with its output when it fails."""
        result = subprocess.run(
            self.command(*args), capture_output=True, text=True, check=False, timeout=timeout
        )
        if result.returncode != 0:
            raise BuildError(
                f"`podman {' '.join(args)}` failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
            )
        return result

    def has_image(self, name: str) -> bool:
        probe = subprocess.run(
            self.command("image", "exists", name), capture_output=True, check=False, timeout=60
        )
        return probe.returncode == 0

    def ensure_base(self, root: Path | None = None) -> None:
        """Import the debootstrapped base under the Dockerfile's FROM name, once per store."""
        if self.has_image(BASE_IMAGE):
            return
        with exclusive(self.store / ".import.lock"):
            if not self.has_image(BASE_IMAGE):
                tarball = ensure_base_tarball(root)
                self.run("import", "--change", 'CMD ["bash"]', str(tarball), BASE_IMAGE)

    def build(
        self, tag: str = IMAGE, context: Path = ROOT, environment: Mapping[str, str] | None = None
    ) -> float:
        """Build the Dockerfile in ``context`` as ``tag`` (layers cached in the store); return
        the seconds it took. Raises BuildError with the build's output."""
        environment = os.environ if environment is None else environment
        passed: list[str] = []
        certificate = environment.get("PIP_CERT") or pip_configured_cert()
        if environment.get("PIP_INDEX_URL"):
            passed += ["--build-arg", f"PIP_INDEX_URL={environment['PIP_INDEX_URL']}"]
        if certificate:
            passed += ["--volume", f"{certificate}:/run/conclave/pip-ca.crt:ro"]
            passed += ["--build-arg", "PIP_CERT=/run/conclave/pip-ca.crt"]
        started = time.monotonic()
        with exclusive(self.store / ".build.lock"):
            self.ensure_base()
            self.run("build", "--network=host", *LIMITS, *passed, "--tag", tag, str(context), timeout=1200)
        return time.monotonic() - started

    def start(self, name: str, image: str, options: Sequence[str], args: Sequence[str]) -> None:
        """Start a detached container ``name`` of ``image`` with these podman options, on the
        host network and within the sandbox's limits. Raises BuildError when podman refuses."""
        self.run("run", "--detach", "--name", name, "--network=host", *LIMITS, *options, image, *args)

    def remove(self, name: str) -> str:
        """Stop and remove the container ``name``; return its log (empty when it never ran)."""
        logs = subprocess.run(self.command("logs", name), capture_output=True, text=True, check=False)
        subprocess.run(self.command("rm", "--force", "--time", "5", name), capture_output=True, check=False)
        return logs.stdout + logs.stderr


@click.command("image")
@click.option("--tag", default=IMAGE, show_default=True, help="The tag to build.")
def image_command(tag: str) -> None:
    """Build the operator's image from the Dockerfile with podman (base made with debootstrap)."""
    try:
        seconds = Podman.cached().build(tag)
    except BuildError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Built {tag} in {seconds:.0f}s", err=True)

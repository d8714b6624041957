"""`pip install` of the repository with no extras, into a fresh venv, from PyPI: the declared
runtime dependencies are enough for `conclave run`, and the harness's commands stay out.
Needs no cluster, only the package index (the run fails, it does not skip, without it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import conclave

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_COMMANDS = ["crds", "run", "status", "version"]

LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'].lower() for d in m.distributions()))"
)


def run(*command: str | Path, timeout: float = 60) -> str:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return result.stdout


def commands_listed(help_text: str) -> list[str]:
    """The command names of a click group's --help, in order."""
    section = help_text.partition("\nCommands:\n")[2]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.strip()]


def test_an_install_without_extras_runs_the_operator_and_lacks_the_harness(tmp_path: Path) -> None:
    # Build from a copy, so the repository gets no build/ folder; the whole distribution,
    # harness included, as a user's clone would build it.
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "operator", source / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, source)
    (wheel,) = wheels.glob("*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # This venv's pip installs into the fresh one, resolving the runtime dependencies from the index.
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-input", wheel, timeout=240)

    installed = set(run(python, "-c", LIST_DISTRIBUTIONS).split())
    assert "conclave-operator" in installed
    assert "cryptography" not in installed

    command = venv / "bin" / "conclave"
    assert run(command, "version") == f"{conclave.__version__}\n"
    assert run(command, "run", "--help").startswith("Usage: conclave run [OPTIONS]")
    assert commands_listed(run(command, "--help")) == OPERATOR_COMMANDS

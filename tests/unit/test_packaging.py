"""What ships: `conclave run` loads nothing of the dev harness, and the image's build stage
makes a wheel without it. A real install into a fresh venv is tests/e2e/test_packaging.py."""

from __future__ import annotations

import email.parser
import json
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import conclave

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HARNESS_ONLY = {"conclave_harness", "cryptography"}

# Runs in a fresh interpreter, so nothing the test session imported counts.
RUN_HELP = f"""
import json, sys
from conclave import cli
try:
    cli.main(["run", "--help"], prog_name="conclave")
except SystemExit as exit:
    code = exit.code
loaded = sorted(name for name in sys.modules if name.partition(".")[0] in {sorted(HARNESS_ONLY)!r})
print(json.dumps({{"code": code, "loaded": loaded}}))
"""


def test_conclave_run_loads_neither_the_harness_nor_its_dependencies() -> None:
    result = subprocess.run(
        [sys.executable, "-c", RUN_HELP], capture_output=True, text=True, timeout=60, check=False
    )
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    assert json.loads(lines[-1]) == {"code": 0, "loaded": []}, result.stderr
    assert lines[0] == "Usage: conclave run [OPTIONS]"


def build_stage(dockerfile: str) -> list[tuple[str, str]]:
    """The instructions of the stage named ``build``, as (INSTRUCTION, arguments)."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    stage: str | None = None
    instructions = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            words = arguments.split()
            stage = words[-1] if len(words) == 3 and words[1].upper() == "AS" else None
        elif stage == "build":
            instructions.append((instruction.upper(), arguments.strip()))
    return instructions


def assemble(instructions: list[tuple[str, str]], filesystem: Path) -> Path:
    """Copy what the build stage's COPY lines copy from the repository into ``filesystem``
    (the stage's root), as Docker would; return the last WORKDIR there."""
    workdir = "/"
    for instruction, arguments in instructions:
        if instruction == "WORKDIR":
            workdir = posixpath.join(workdir, arguments)
        elif instruction == "COPY":
            *sources, destination = shlex.split(arguments)
            assert not [s for s in sources if s.startswith("--")], f"COPY {arguments}: flags are not modelled"
            target = filesystem / posixpath.join(workdir, destination).lstrip("/")
            into_directory = destination.endswith("/") or len(sources) > 1
            for source in sources:
                origin = ROOT / source
                if origin.is_dir():
                    shutil.copytree(
                        origin, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    path = target / origin.name if into_directory else target
                    path.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, path)
    return filesystem / workdir.lstrip("/")


def test_the_image_installs_a_wheel_of_the_operator_without_the_harness(tmp_path: Path) -> None:
    instructions = build_stage(DOCKERFILE.read_text())
    runs = " && ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    installs = [step.strip() for step in runs.split("&&") if "pip install " in step]
    # Dependencies only from the hashed lock; the wheel of the context, no extras, offline.
    assert all("--require-hashes" in step or "--no-index" in step for step in installs), installs
    assert re.search(r"pip wheel [^&]*--no-deps[^&]* \.(\s|$)", runs), runs
    context = assemble(instructions, tmp_path / "stage")
    wheels = tmp_path / "wheels"
    wheel_command = ["pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels)]
    subprocess.run([sys.executable, "-m", *wheel_command, str(context)], check=True, timeout=120)
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = email.parser.HeaderParser().parsestr(
            archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        )
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"conclave"}
    assert "conclave/cli.py" in names
    required = {
        re.split(r"[<>=!~;\[ ]", requirement)[0].lower()
        for requirement in metadata.get_all("Requires-Dist", [])
        if "extra ==" not in requirement
    }
    assert not required & HARNESS_ONLY


def test_the_image_is_labelled_with_the_operator_s_version() -> None:
    assert f'org.opencontainers.image.version="{conclave.__version__}"' in DOCKERFILE.read_text()

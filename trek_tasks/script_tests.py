"""Running a script's own unit tests (``tests/``) for the doit ``test:<id>`` task.

The tests run on trek's interpreter, which has pytest, the SDK and trek_tasks (a test
may start a local Marvin), with the script's environment on the path for the
handler's own requirements. That environment is the one the script runs in, so the
tests see the same package versions as ``trek run``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from trek_tasks.errors import StepFailed
from trek_tasks.project import Script


def test_files(script: Script) -> list[Path]:
    """What the tests depend on: the script's files and everything under ``tests/``."""
    tests = script.path / "tests"
    found = [
        p
        for p in sorted(tests.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    return script.files() + found


def has_tests(script: Script) -> bool:
    return (script.path / "tests").is_dir()


def site_packages(env_dir: Path) -> str:
    return sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)})


def run_tests(script: Script, env_dir: Path) -> None:
    """``pytest tests/`` in the script folder; a failure carries pytest's summary."""
    paths = [str(script.path), site_packages(env_dir), os.environ.get("PYTHONPATH", "")]
    print(f"testing {script.id}...")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=script.path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)},
        capture_output=True,
        text=True,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0:
        tail = "\n".join(lines[-15:] + done.stderr.strip().splitlines()[-5:])
        raise StepFailed(f"the tests of {script.id} failed:\n{tail}", script.id)
    print(lines[-1] if lines else f"{script.id}: tests passed")

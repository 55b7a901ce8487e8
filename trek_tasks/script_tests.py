"""Running a script's own unit tests for the doit ``test:<id>`` task.

The script's kind says which files the tests read and how they run (blcks: pytest on
trek's interpreter with the script's environment on the path, so the tests see the
same package versions as ``trek run``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from trek_tasks.errors import StepFailed
from trek_tasks.events import emit
from trek_tasks.project import Script


def test_files(script: Script) -> list[Path]:
    """What the tests depend on: the script's files and its tests' own files."""
    return script.files() + script.kind.test_files(script.path)


def has_tests(script: Script) -> bool:
    return bool(script.kind.test_files(script.path))


def run_tests(script: Script, env_dir: Path) -> None:
    """The kind's test command in the script folder; a failure carries its summary."""
    command = script.kind.test_command(script.path, env_dir)
    from trek_tasks.progress import TestsPassed, TestsStarted

    emit(TestsStarted(script.id))
    done = subprocess.run(
        command.args,
        cwd=script.path,
        env={**os.environ, **command.env},
        capture_output=True,
        text=True,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0:
        tail = "\n".join(lines[-15:] + done.stderr.strip().splitlines()[-5:])
        raise StepFailed(f"the tests of {script.id} failed", script.id, tail)
    emit(TestsPassed(script.id, lines[-1] if lines else f"{script.id}: tests passed"))

"""A standalone local Marvin as users start it: `python -m trek_tasks marvin serve` in a
subprocess on a free port with its own data folder, stopped by its pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO, kill

READY = "local Marvin listening on "
FIRST = "First start: made user 'trek' with password "


@dataclass
class Served:
    url: str
    data: Path
    lines: list[str]  # stdout up to the ready line
    proc: subprocess.Popen[str]

    @property
    def first_password(self) -> str | None:
        found = [line for line in self.lines if line.startswith(FIRST)]
        return found[0][len(FIRST) :].split()[0] if found else None

    def stop(self) -> tuple[int, str]:
        """SIGTERM it by pid; its exit code and the rest of its stdout."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=20)
        return self.proc.returncode, out


def serve_command(data: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "trek_tasks", "marvin", "serve", "--data", str(data), *more]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@contextmanager
def served(data: Path, *more: str, port: int = 0) -> Iterator[Served]:
    """A standalone Marvin on ``port`` (0: a free one) serving ``data``, until the block ends."""
    proc = subprocess.Popen(
        serve_command(data, "--port", str(port), *more),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
        cwd=data.parent,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(READY):
                break
        else:
            raise AssertionError(f"no ready line: {lines} {proc.communicate(timeout=10)}")
        yield Served(lines[-1][len(READY) :].strip(), data, lines, proc)
    finally:
        if proc.poll() is None:
            kill(proc.pid)
        proc.communicate(timeout=20)

"""What the portal's buttons start: ``trek run`` and ``trek shutdownenv -a`` as subprocesses.

A run started from the page is the CLI's own ``python -m trek_tasks run -p PROJECT``: the
same code, a crash that cannot take the portal down, and the run lock (``localrun.
run_lock``) deciding, as for two terminals, that one of two runs of a project at once
is refused. Its node states reach the page through the run's event stream
(``runlog.py``), which a run from a terminal writes too. The portal starts one action
per project at a time; what it printed is kept in ``.trek/portal/action.log``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trek_tasks.errors import BadInput
from trek_tasks.runtimes.process import tail_lines
from trek_tasks.state import StateLayout

OUTPUT_TAIL = 20


@dataclass
class Action:
    """One subprocess started for a project."""

    name: str  # run | run --reuse | shutdown
    proc: subprocess.Popen[bytes]
    log: Path
    started: float

    def to_json(self) -> dict[str, Any]:
        code = self.proc.poll()
        return {
            "name": self.name,
            "pid": self.proc.pid,
            "started": self.started,
            "state": "running" if code is None else "finished",
            "exit_code": code,
            "output": tail_lines(self.log, OUTPUT_TAIL),
        }


class Busy(BadInput):
    """The project's last action from the page is still going."""


class Actions:
    """The subprocesses the portal started, by project root (one at a time each)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: dict[Path, Action] = {}

    def status(self, root: Path) -> dict[str, Any] | None:
        action = self.started.get(root)
        return action.to_json() if action else None

    def run(self, root: Path, reuse: bool) -> Action:
        """Start ``trek run`` on ``root`` (incremental; ``--reuse`` when asked)."""
        args = ["run", "-p", str(root), *(["--reuse"] if reuse else [])]
        return self._start(root, "run --reuse" if reuse else "run", args)

    def shutdown(self, root: Path) -> Action:
        """Start ``trek shutdownenv -a`` on ``root``: every script and the local Marvin."""
        return self._start(root, "shutdown", ["shutdownenv", "-a", "-p", str(root)])

    def _start(self, root: Path, name: str, args: list[str]) -> Action:
        with self.lock:
            going = self.started.get(root)
            if going is not None and going.proc.poll() is None:
                raise Busy(
                    f"the {going.name} started from this page is still going "
                    f"(pid {going.proc.pid}); wait for it"
                )
            log = StateLayout.for_project(root).portal_log
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "trek_tasks", *args],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=root,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            action = Action(name, proc, log, time.time())
            self.started[root] = action
            return action

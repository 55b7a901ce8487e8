"""A run as it goes and as it was: the event stream and the run records under ``.trek/runs/``.

While a run goes, :class:`EventLog` (an engine subscriber ``localrun`` attaches to every
run, the CLI's and the portal's alike) appends one JSON line per engine event to
``<id>.events.jsonl``, each with one ``write`` on a file opened for appending; a reader
takes only lines that end in a newline, so it never sees half an event. When the run
finishes, its record ``<id>.json`` (and ``last.json``) is written atomically
(``localrun.save_record``), so a reader sees the old record or the whole new one.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trek_tasks.engine import (
    NodeFailed,
    NodeFinished,
    NodeReused,
    NodeSkipped,
    NodeStarted,
    RunFinished,
    RunStarted,
)
from trek_tasks.errors import BadInput
from trek_tasks.runtimes import process
from trek_tasks.state import StateLayout

EVENTS_SUFFIX = ".events.jsonl"
LAST = "last.json"
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a run id names a file of .trek/runs/
KNOWN_SHOWN = 10  # the newest run ids an unknown one's message lists


class EventLog:
    """An engine subscriber appending each event of a run to its ``<id>.events.jsonl``."""

    def __init__(self, state: StateLayout) -> None:
        self.state = state
        self.fd: int | None = None

    def __call__(self, event: object) -> None:
        line = self._line(event)
        if line is None:
            return
        if isinstance(event, RunStarted):
            path = self.state.run_events(event.run_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if self.fd is None:
            return
        os.write(self.fd, (json.dumps(line, ensure_ascii=False) + "\n").encode())
        if isinstance(event, RunFinished):
            os.close(self.fd)
            self.fd = None

    @staticmethod
    def _line(event: object) -> dict[str, Any] | None:
        now = round(time.time(), 3)
        if isinstance(event, RunStarted):
            return {"event": "started", "run_id": event.run_id, "pid": os.getpid(), "time": now}
        if isinstance(event, NodeStarted):
            return {"event": "node", "node": event.node.id, "status": "running", "time": now}
        if isinstance(event, NodeFinished | NodeFailed | NodeReused):
            run = event.run
            return {
                "event": "node",
                "node": run.id,
                "status": run.status,
                "duration": run.duration,
                "error": run.error,
                "time": now,
            }
        if isinstance(event, NodeSkipped):
            return {
                "event": "node",
                "node": event.node.id,
                "status": "skipped",
                "reason": event.reason,
                "time": now,
            }
        if isinstance(event, RunFinished):
            result = event.result
            return {
                "event": "finished",
                "status": result.status,
                "error": result.error,
                "duration": result.duration,
                "time": now,
            }
        return None


def read_lines(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The whole event lines of ``path`` from byte ``offset`` on, and the offset after the
    last of them (a line still being written is left for the next read)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    events = []
    for raw in data[:end].splitlines():
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if isinstance(item, dict):
            events.append(item)
    return events, offset + end


@dataclass
class LiveRun:
    """A run folded from its event stream: each node's status as far as it went."""

    run_id: str
    status: str = "running"  # running | done | failed | interrupted | lost
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str = ""
    pid: int = 0

    def take(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "started":
            self.pid = int(event.get("pid") or 0)
        elif kind == "node" and isinstance(event.get("node"), str):
            self.nodes[event["node"]] = {k: v for k, v in event.items() if k != "event"}
        elif kind == "finished":
            self.status = str(event.get("status", "done"))
            self.error = str(event.get("error", ""))

    def to_json(self) -> dict[str, Any]:
        """The run as the portal shows it: ``lost`` when it stopped without finishing (its
        process is gone: killed)."""
        lost = self.status == "running" and self.pid and not process.pid_alive(self.pid)
        status = "lost" if lost else self.status
        return {"run_id": self.run_id, "status": status, "error": self.error, "nodes": self.nodes}


def newest_events(state: StateLayout) -> Path | None:
    """The event stream of the newest run (run ids begin with their start time)."""
    if not state.runs.is_dir():
        return None
    found = sorted(p for p in state.runs.glob(f"*{EVENTS_SUFFIX}") if not p.name.startswith("."))
    return found[-1] if found else None


def live_run(path: Path) -> LiveRun:
    """The run ``path`` streams, folded."""
    run = LiveRun(path.name.removesuffix(EVENTS_SUFFIX))
    events, _ = read_lines(path)
    for event in events:
        run.take(event)
    return run


def record_ids(state: StateLayout) -> list[str]:
    """The ids of the recorded runs, newest first."""
    if not state.runs.is_dir():
        return []
    ids = [
        p.stem for p in state.runs.glob("*.json") if p.name != LAST and not p.name.startswith(".")
    ]
    return sorted(ids, reverse=True)


def read_record(path: Path) -> dict[str, Any] | None:
    """A run record as saved, or None when it is missing or not a record."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return None
    return data


def named_record(state: StateLayout, run_id: str) -> dict[str, Any] | None:
    """The record of ``run_id`` (``last``: the last run's); None when there is no such run
    or the id names no file of ``.trek/runs/``."""
    if run_id == "last":
        return read_record(state.last_run)
    if not RUN_ID.fullmatch(run_id):
        return None
    return read_record(state.run_record(run_id))


def record_of(state: StateLayout, run_id: str) -> dict[str, Any]:
    """The record of ``run_id`` (``last`` too), else BadInput naming the known runs."""
    record = named_record(state, run_id)
    if record is not None:
        return record
    known = record_ids(state)
    if not known:
        raise BadInput(f"no run '{run_id}': no run is recorded yet; run `trek run` first")
    listed = ", ".join(["last", *known[:KNOWN_SHOWN]])
    more = f" and {len(known) - KNOWN_SHOWN} older" if len(known) > KNOWN_SHOWN else ""
    raise BadInput(f"no run '{run_id}'; known runs (newest first): {listed}{more}")


def records(state: StateLayout, limit: int = 200) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """The newest ``limit`` records by id (None for one that cannot be read)."""
    for run_id in record_ids(state)[:limit]:
        yield run_id, read_record(state.run_record(run_id))

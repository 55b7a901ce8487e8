"""What a command asks of the doit tasks it runs, as one frozen value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Watch mode waits this long without further changes before it runs: the events of one save
# spread over at most 17 ms here (vim with a backup file; a plain or atomic write: under
# 5 ms; bench/bench_devloop.py "save_bursts"), so 50 ms groups a save and costs little.
WATCH_DEBOUNCE_MS = 50


@dataclass(frozen=True)
class TaskOptions:
    """Options the task creators read (``trek run --detail``, ``trek pack --auto-pos`` ...)."""

    detail: bool = False  # print what each script logged while its node ran
    interval: float = 0.0  # seconds to wait between nodes
    reuse: bool = False  # take unchanged nodes' outputs from the last run record
    always_run: bool = False  # run the workflow even when nothing it reads changed
    auto_pos: bool = False  # pack:workflow lays out node positions
    runtime: str = ""  # --runtime: where scripts run for this command ("" = config's runtime)
    overwrite: bool = False  # deploy: replace Marvin's other content of an id+version
    autobuildpush: bool = False  # deploy: push the images first (doit: autobuildpush=1)
    projects: tuple[str, ...] = ()  # deploy: Marvin projects to assign the workflow to
    event: dict[str, Any] | None = None  # serve: the trigger's event (None: inputs/event.yml)

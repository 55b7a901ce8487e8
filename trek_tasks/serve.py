"""``trek serve``: keep a project's runtimes up and run its workflow when the trigger says.

Fires come from the trigger's cron sources (``triggers.py``), from events POSTed to the
local Marvin (``POST /api/v1/workflows/<templateId>/events``, checked against the fields
the trigger declares) and from manual runs (Enter on stdin, or ``POST .../run``). Each
fire runs the ``execute`` task, as ``trek run`` does, so it writes its run record. Edits
are applied between runs: the ``initenv`` task restarts what changed (``trek watch``'s
watcher notices them) and a changed trigger is read again.

One run at a time. A fire that comes during a run waits for it to end; then every
waiting event runs, in order (each carries its own data), and one of the waiting cron
and manual fires runs: the others are skipped, and serve says so (docs/serve.md).
"""

from __future__ import annotations

import functools
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trek_tasks.errors import INTERRUPTED, TrekError
from trek_tasks.events import emit
from trek_tasks.options import TaskOptions
from trek_tasks.project import Project
from trek_tasks.triggers import Trigger, read_trigger, shown_time

if TYPE_CHECKING:
    from trek_tasks.marvin.client import MarvinClient

TAKE_WAIT = 5  # seconds one take of fires waits at the local Marvin (its read timeout: 10)
MAX_MISSED = 100  # cron times passed during one run that are said one by one
RETRY_PAUSE = 0.5  # seconds before asking a local Marvin that did not answer again


@dataclass(frozen=True)
class Fire:
    """One reason to run: ``kind`` cron | event | manual; ``event`` None: inputs/event.yml."""

    kind: str
    what: str
    event: dict[str, Any] | None = None


@dataclass(frozen=True)
class Change:
    """Files the runs read changed (``shown``: which, for the message)."""

    shown: str


def _note(text: str) -> None:
    from trek_tasks.progress import WatchNote

    emit(WatchNote(text))


def _error(error: TrekError) -> None:
    from trek_tasks.progress import WatchError

    emit(WatchError(f"trek: error: {error}"))
    if error.detail:
        emit(WatchError(error.detail))


def next_fires(root: Path, count: int, after: datetime | None = None) -> list[tuple[str, str]]:
    """The next ``count`` cron fires of the project's trigger after ``after`` (now): each
    as (the time in its zone, the cron source). ``BadInput`` for a bad source."""
    trigger = read_trigger(Project.load(root))
    start = after or datetime.now(timezone.utc)
    return [
        (shown_time(when, cron.zone), cron.text) for when, cron in trigger.next_fires(start, count)
    ]


class Server:
    """One ``trek serve``: the fires waiting, the trigger in force, the local Marvin used."""

    def __init__(self, root: Path, options: TaskOptions, verbose: bool) -> None:
        self.root = root
        self.options = options
        self.verbose = verbose
        self.inbox: queue.Queue[Fire | Change] = queue.Queue()
        self.stop = threading.Event()
        self.project = Project.load(root)
        self.trigger: Trigger = read_trigger(self.project)  # bad input: before anything starts
        self.marvin: MarvinClient | None = None  # the local Marvin's client, once it is up
        self._lock = threading.Lock()
        self.cron_from = datetime.now(timezone.utc)  # cron times up to this one are handled

    # the environment

    def apply(self) -> None:
        """Bring the runtimes and the local Marvin up to date, and register the trigger."""
        from trek_tasks.environment import Environment
        from trek_tasks.marvin import target
        from trek_tasks.runner import run_tasks

        self.project = Project.load(self.root)
        self.trigger = read_trigger(self.project)
        run_tasks(self.project, ["validate", "initenv"], self.options, self.verbose)
        found = target.resolve(self.project.config, Environment(self.project))
        with self._lock:
            self.marvin = found.client if found.local else None
        self.register()

    def register(self) -> None:
        with self._lock:
            marvin, trigger = self.marvin, self.trigger
        if marvin is not None:
            body = {"events": trigger.events, "outputs": trigger.outputs}
            marvin.put(f"/api/v1/workflows/{trigger.workflow}/trigger", body)

    # the sources of fires, each a daemon thread putting into the inbox

    def take_fires(self) -> None:
        """Long-poll the local Marvin for POSTed events and manual runs."""
        from trek_tasks.http import HttpError

        while not self.stop.is_set():
            with self._lock:
                marvin, workflow = self.marvin, self.trigger.workflow
            if marvin is None:
                time.sleep(RETRY_PAUSE)
                continue
            try:
                taken = marvin.post(f"/api/v1/workflows/{workflow}/fires/take?wait={TAKE_WAIT}")
            except HttpError as err:
                if err.status == 404:  # a restarted local Marvin forgot the trigger
                    self._register_quietly()
                time.sleep(RETRY_PAUSE)
                continue
            for fire in taken:
                kind = str(fire.get("kind"))
                event = fire.get("event") if kind == "event" else None
                self.inbox.put(Fire(kind, f"{kind} {fire.get('id')} from the local Marvin", event))

    def _register_quietly(self) -> None:
        from trek_tasks.http import HttpError

        try:
            self.register()
        except HttpError:
            pass  # not up yet: the next take tries again

    def read_enter(self, fd: int) -> None:
        """Each line typed on ``fd`` (Enter on stdin) is a manual run. Read raw, without a
        buffered reader's lock, so this daemon thread never holds up the interpreter's exit."""
        while not self.stop.is_set():
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            for _ in range(chunk.count(b"\n")):
                self.inbox.put(Fire("manual", "manual run (Enter)"))

    def watch_files(self, debounce_ms: int) -> None:
        """Put a Change into the inbox whenever a file the runs read changes."""
        from trek_tasks.watch import Watcher, describe, project_watch

        watcher = Watcher(debounce_ms, self.stop)
        try:
            while not self.stop.is_set():
                watch = project_watch(str(self.root), None)
                changed = watcher.arm(watch, time.time()) or watcher.wait()
                self.inbox.put(Change(describe(changed, watch)))
        except KeyboardInterrupt:
            return
        finally:
            watcher.close()

    # the loop

    def next_batch(self) -> list[Fire | Change]:
        """Wait for a fire, a change or the next cron time; then take whatever else waits,
        with every cron time passed meanwhile (during a run, say)."""
        due = self.trigger.next_fire(self.cron_from)
        now = datetime.now(timezone.utc)
        timeout = max(0.0, (due[0] - now).total_seconds()) if due else None
        batch: list[Fire | Change] = []
        try:
            batch.append(self.inbox.get(timeout=timeout))
        except queue.Empty:
            pass
        while True:
            try:
                batch.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        end = datetime.now(timezone.utc)
        for when, cron in self.trigger.next_fires(self.cron_from, MAX_MISSED):
            if when <= end:
                batch.append(Fire("cron", f"cron {cron.text} at {shown_time(when, cron.zone)}"))
        self.cron_from = end
        return batch

    def handle(self, batch: list[Fire | Change]) -> None:
        """Apply the edits, then run the fires by the overlap rule."""
        changes = [item for item in batch if isinstance(item, Change)]
        if changes:
            _note(f"-- change: {'; '.join(c.shown for c in changes)}; applying it")
            self._try(self.apply)
        first: Fire | None = None
        for fire in (item for item in batch if isinstance(item, Fire)):
            if self.stop.is_set():
                return
            if fire.kind != "event" and first is not None:
                _note(f"-- skipped {fire.what}: {first.what} came first (one cron or manual run)")
                continue
            if fire.kind != "event":
                first = fire
            _note(f"-- fire: {fire.what}; running {self.trigger.workflow}")
            self._try(functools.partial(self.run, fire))

    def run(self, fire: Fire) -> None:
        from trek_tasks.runner import run_tasks

        options = replace(self.options, always_run=True, event=fire.event)
        run_tasks(self.project, ["execute"], options, self.verbose)

    def _try(self, step: Callable[[], object]) -> None:
        try:
            step()
        except TrekError as err:
            _error(err)

    def announce(self) -> None:
        trigger = self.trigger
        with self._lock:
            marvin = self.marvin
        ways = [f"cron {cron.text}" for cron in trigger.crons]
        if marvin is not None:
            base = f"{marvin.url}/api/v1/workflows/{trigger.workflow}"
            if trigger.events:
                ways.append(f"events: POST {base}/events")
            ways.append(f"manual: Enter or POST {base}/run")
        else:
            ways.append("manual: Enter")
        _note(f"-- serving {trigger.workflow}: {', '.join(ways)} (Ctrl-C to stop)")
        due = trigger.next_fire(self.cron_from)
        if due is not None:
            _note(f"-- next cron fire: {shown_time(due[0], due[1].zone)}")


def serve(
    root: Path, options: TaskOptions, enter_fd: int | None, verbose: bool, debounce_ms: int
) -> int:
    """Serve until Ctrl-C (returns ``INTERRUPTED``); runtimes stay up. ``enter_fd``: each
    line read from it is a manual run (stdin; None: none)."""
    server = Server(root, options, verbose)

    def on_interrupt(signum: int, frame: Any) -> None:
        server.stop.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        server.apply()
        sources: list[Callable[[], None]] = [
            server.take_fires,
            functools.partial(server.watch_files, debounce_ms),
        ]
        if enter_fd is not None:
            sources.append(functools.partial(server.read_enter, enter_fd))
        for source in sources:
            threading.Thread(target=source, daemon=True).start()
        server.announce()
        while not server.stop.is_set():
            server.handle(server.next_batch())
    except KeyboardInterrupt:
        server.stop.set()
    finally:
        signal.signal(signal.SIGINT, previous)
    _note("-- stopped serving")
    return INTERRUPTED

"""Watch mode: ``doit auto`` and ``trek watch`` re-run tasks whenever a file they read changes.

``AutoCommand`` is a doit command plugin (entry point ``doit.COMMAND: auto``). Every cycle
reloads the task list (so a new script or an edited graph is seen), runs the selected tasks
through doit's own ``run`` command, then waits (``watchfiles``) for a change to a file those
tasks or their ``task_dep`` closure depend on, or to a Trek project's sources. A failing task
or a broken project is reported and the watch goes on; Ctrl-C ends it with exit code 130
(``errors.INTERRUPTED``).

The dodo file itself is re-read every cycle; modules it imports are not reloaded.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doit.cmd_base import DodoTaskLoader, DoitCmdBase
from doit.cmd_run import Run
from doit.exceptions import InvalidCommand, InvalidDodoFile, InvalidTask

from trek_tasks.errors import INTERRUPTED
from trek_tasks.events import emit
from trek_tasks.options import WATCH_DEBOUNCE_MS
from trek_tasks.state import STATE_DIR

# What a Trek project's tasks read besides their file_dep and its configured folders.
PROJECT_FILES = ("packages.json", "manifest.json", f"{STATE_DIR}/config.json")
INPUT_KEYS = ("input_data_path", "input_event_path", "local_inventory_file")
STATE_FILES_WATCHED = frozenset({"config.json"})
# Inside watched folders: output, caches and editor temp files never call for a re-run.
IGNORED_DIRS = frozenset(
    {
        "__pycache__",
        ".git",
        "bin",
        ".venv",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".hg",
        ".svn",
        ".idea",
    }
)
TEMP_NAME = re.compile(r"\.sw.$|~$|^\.#|^#.*#$|^4913$|\.tmp$|\.py[cod]$|___jb_\w+___$|^\.DS_Store$")

DEFAULT_QUIET_MS = WATCH_DEBOUNCE_MS
MAX_GROUP_MS = 1600
IDLE_MS = 500

opt_max_cycles = {
    "name": "max_cycles",
    "short": "",
    "long": "max-cycles",
    "type": int,
    "default": 0,
    "help": "stop after N runs, for tests and CI (0: watch until Ctrl-C) [default: %(default)s]",
}
opt_debounce = {
    "name": "debounce",
    "short": "",
    "long": "debounce",
    "type": int,
    "default": DEFAULT_QUIET_MS,
    "help": "milliseconds without further changes before re-running, so a burst of saves "
    "makes one run [default: %(default)s]",
}


def is_noise(relative: str) -> bool:
    """Whether a path inside a watched folder is output, cache or an editor's temp file.

    In a ``.trek`` folder only ``config.json`` is written by people; the rest is state.
    """
    parts = relative.split(os.sep)
    if TEMP_NAME.search(parts[-1]) or IGNORED_DIRS.intersection(parts):
        return True
    in_state = STATE_DIR in parts[:-1]
    return in_state and (parts[-2] != STATE_DIR or parts[-1] not in STATE_FILES_WATCHED)


def nearest_dir(path: str) -> str:
    """``path`` if it is a folder, else its nearest existing ancestor."""
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


@dataclass(frozen=True)
class WatchSet:
    """What one cycle's tasks read (files, folders watched recursively) and what they write."""

    files: frozenset[str] = frozenset()
    folders: frozenset[str] = frozenset()
    targets: frozenset[str] = frozenset()
    root: str | None = field(default=None, compare=False)

    def wants(self, path: str) -> bool:
        """Whether a change to ``path`` calls for a re-run (targets are doit's own writes)."""
        if path in self.targets or any(path.startswith(t + os.sep) for t in self.targets):
            return False
        if path in self.files:
            return True
        for folder in self.folders:
            if path == folder:
                return True
            if path.startswith(folder + os.sep):
                return not is_noise(path[len(folder) + 1 :])
        return False

    def roots(self) -> tuple[str, ...]:
        """The fewest existing folders whose recursive watch covers every watched path."""
        wanted = {nearest_dir(os.path.dirname(f)) for f in self.files}
        wanted |= {nearest_dir(f) for f in self.folders}
        if not wanted:
            wanted = {os.getcwd()}
        roots: list[str] = []
        for path in sorted(wanted):
            if not any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
                roots.append(path)
        return tuple(roots)

    def changed_since(self, started: float) -> list[str]:
        """Watched paths modified after ``started`` (what a watcher started late would miss)."""
        found = [f for f in self.files if self.wants(f) and _mtime(f) > started]
        for folder in self.folders:
            for top, dirs, names in os.walk(folder):
                dirs[:] = [d for d in dirs if d not in IGNORED_DIRS]
                found += [
                    path
                    for path in (os.path.join(top, n) for n in names)
                    if self.wants(path) and _mtime(path) > started
                ]
        return sorted(set(found))

    def union(self, other: WatchSet) -> WatchSet:
        return WatchSet(
            self.files | other.files,
            self.folders | other.folders,
            self.targets | other.targets,
            self.root or other.root,
        )

    def show(self, path: str) -> str:
        """``path`` relative to the project root (or the current folder) for messages."""
        base = self.root or os.getcwd()
        relative = os.path.relpath(path, base)
        return path if relative.startswith(os.pardir) else relative


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def task_closure(tasks: dict[str, Any], selected: Iterable[str]) -> Iterator[Any]:
    """The selected doit tasks and every task they depend on (task_dep, setup, calc_dep)."""
    seen: set[str] = set()
    todo = list(selected)
    while todo:
        name = todo.pop()
        if name in seen or name not in tasks:
            continue
        seen.add(name)
        task = tasks[name]
        yield task
        todo += [*task.task_dep, *task.setup_tasks, *task.calc_dep]


def trek_root(dep_file: str) -> str | None:
    """The Trek project whose tasks keep their dep file in ``<root>/.trek/``, if any."""
    state = os.path.dirname(os.path.abspath(dep_file))
    root = os.path.dirname(state)
    if os.path.basename(state) == STATE_DIR and os.path.isfile(os.path.join(root, "manifest.json")):
        return root
    return None


def project_watch(root: str | None, dodo_file: str | None) -> WatchSet:
    """What to watch whatever the tasks are: a Trek project's sources and the dodo file."""
    files = {os.path.abspath(dodo_file)} if dodo_file else set()
    folders: set[str] = set()
    if root:
        folders = project_folders(root)
        files |= {os.path.join(root, *name.split("/")) for name in PROJECT_FILES}
    return WatchSet(frozenset(files), frozenset(folders), frozenset(), root)


def project_folders(root: str) -> set[str]:
    """The folders a Trek project's tasks read, where its manifest and config put them
    (the defaults when those cannot be read): the workflow's folder, each script kind's
    code base, the folders of the input files and trek_packages/."""
    from trek_tasks.config import DEFAULTS
    from trek_tasks.errors import TrekError
    from trek_tasks.kinds import code_base_defaults
    from trek_tasks.project import DEFAULT_ENTRY, INSTALLED_DIR, Project

    base = Path(root)
    config: Mapping[str, Any] = DEFAULTS
    entry = base / DEFAULT_ENTRY
    with contextlib.suppress(TrekError):
        project = Project.load(base, workflow=False)
        config, entry = project.config.values, project.entry
    folders = [entry.parent, base / INSTALLED_DIR]
    folders += [base / str(config[key]) for key in code_base_defaults()]
    folders += [(base / str(config[key])).parent for key in INPUT_KEYS]
    return {os.path.normpath(folder) for folder in folders}


def tasks_watch(tasks: dict[str, Any], selected: Iterable[str], base: str | None) -> WatchSet:
    """The file_dep and ``watch`` paths of the selected tasks' closure; all tasks' targets.

    Relative paths are read from ``base``: a Trek project's root (its tasks name their
    files relative to it, see ``depstate``), else the current folder, as doit does."""

    def absolute(path: str) -> str:
        return os.path.abspath(os.path.join(base, path) if base else path)

    files: set[str] = set()
    folders: set[str] = set()
    for task in task_closure(tasks, selected):
        files |= {absolute(p) for p in task.file_dep}
        for path in map(absolute, task.watch):
            (folders if os.path.isdir(path) else files).add(path)
    targets = {absolute(t) for task in tasks.values() for t in task.targets}
    return WatchSet(frozenset(files), frozenset(folders), frozenset(targets))


def describe(paths: list[str], watch: WatchSet, limit: int = 3) -> str:
    shown = [watch.show(p) for p in paths[:limit]]
    more = f" (+{len(paths) - limit} more)" if len(paths) > limit else ""
    return ", ".join(shown) + more


@dataclass
class Cycle:
    """The outcome of one run: doit's exit code and what to watch next."""

    code: int
    watch: WatchSet
    loaded: bool


class Watcher:
    """One ``watchfiles`` watch kept across cycles, so a change made during a run is not lost.

    It is restarted only when the folders to watch change; a restarted watch looks for files
    modified since the run started once it is in place.
    """

    def __init__(self, quiet_ms: int, stop: threading.Event) -> None:
        self.quiet_ms = max(quiet_ms, 1)
        self.stop = stop
        self.watch = WatchSet()
        self._roots: tuple[str, ...] = ()
        self._changes: Iterator[set[tuple[Any, str]]] | None = None

    def _accept(self, change: Any, path: str) -> bool:
        return self.watch.wants(path)

    def arm(self, watch: WatchSet, started: float) -> list[str]:
        """Watch what ``watch`` names; returns what changed since ``started`` and was missed."""
        import watchfiles

        self.watch = watch
        roots = watch.roots()
        if self._changes is not None and roots == self._roots:
            return []
        self.close()
        self._roots = roots
        self._changes = watchfiles.watch(
            *roots,
            watch_filter=self._accept,
            step=self.quiet_ms,
            debounce=max(MAX_GROUP_MS, 2 * self.quiet_ms),
            rust_timeout=IDLE_MS,
            yield_on_timeout=True,
            stop_event=self.stop,
        )
        # The first batch comes once the watch is in place (empty after IDLE_MS).
        first = {path for _, path in next(self._changes, set())}
        return sorted(first.union(watch.changed_since(started)))

    def wait(self) -> list[str]:
        """Block until a watched path changes; returns the changed paths, sorted.

        Raises KeyboardInterrupt once a stop was asked for."""
        assert self._changes is not None, "arm() first"
        batch = next((changes for changes in self._changes if changes), None)
        if batch is None or self.stop.is_set():
            raise KeyboardInterrupt
        return sorted({path for _, path in batch})

    def close(self) -> None:
        if self._changes is not None:
            self._changes.close()  # type: ignore[attr-defined]
            self._changes = None


class AutoCommand(DoitCmdBase):
    """``doit auto [TASK ...]``: run tasks, then again whenever what they read changes."""

    name = "auto"
    doc_purpose = "run tasks, then run them again whenever a file they depend on changes"
    doc_usage = "[run] [TASK ...]"
    doc_description = (
        "Runs the tasks like `run` (same options), then watches the file_dep of the tasks "
        "and of everything they depend on, plus a Trek project's workflow, code and input "
        "folders (src/, inputs/ by default), trek_packages/, packages.json, manifest.json "
        "and .trek/config.json. After each "
        "change (a burst of saves counts once) it reloads the task list and runs the tasks "
        "again. A failure is reported and the watch goes on; Ctrl-C stops it. "
        "`doit auto run` is `doit auto` (the default tasks)."
    )
    execute_tasks = True
    cmd_options = (*Run.cmd_options, opt_max_cycles, opt_debounce)
    error_prefix = "ERROR: "

    def __init__(self, task_loader: Any, **kwargs: Any) -> None:
        super().__init__(task_loader, **kwargs)
        # One ``run`` command for every cycle: making one looks up doit's plugins (entry
        # points of every installed package), which cost more than a cycle's own checks.
        self.run = Run(task_loader=self.loader, config=self.config, bin_name=self.bin_name)
        self.cmdparser["reporter"].choices = self.run.cmdparser["reporter"].choices

    def _say(self, text: str) -> None:
        from trek_tasks.progress import WatchNote

        emit(WatchNote(text))

    def _error(self, text: str) -> None:
        from trek_tasks.progress import WatchError

        emit(WatchError(f"{self.error_prefix}{text}"))

    def _forget_dodo(self) -> None:
        """Drop the imported dodo module so the next load reads the file again."""
        if not isinstance(self.loader, DodoTaskLoader):
            return
        namespace = self.loader.namespace or {}
        name = str(namespace.get("__name__", ""))
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None) == namespace.get("__file__"):
            del sys.modules[name]
            importlib.invalidate_caches()

    def cycle(self, params: Any, args: list[str]) -> Cycle:
        """Reload the tasks and run them once; report a loader error instead of raising."""
        self._forget_dodo()
        run = self.run
        code, tasks, loaded = 3, WatchSet(), False
        try:
            code = run.execute(params, args)  # reads the dodo's DOIT_CONFIG into params
            root = trek_root(params["dep_file"])
            tasks = tasks_watch(run.control.tasks, run.control.selected_tasks, root)
            loaded = True
        except InvalidCommand as err:
            err.cmd_used, err.bin_name = self.name, self.bin_name
            self._error(str(err))
        except (InvalidDodoFile, InvalidTask) as err:
            self._error(str(err))
        except Exception:
            from trek_tasks.progress import WatchError

            emit(WatchError(traceback.format_exc().rstrip("\n")))
        finally:
            if run.dep_manager is not None:
                run.dep_manager.close()
                run.dep_manager = None  # the next cycle opens the dep file anew
        namespace = getattr(self.loader, "namespace", None) or {}
        dodo = namespace.get("__file__")
        found = project_watch(trek_root(params["dep_file"]), dodo if dodo else None)
        return Cycle(code, found.union(tasks), loaded)

    def execute(self, params: Any, args: list[str]) -> int:
        """Loop: run, wait for a change, run again (until Ctrl-C: ``INTERRUPTED``, or
        ``--max-cycles``: the last run's code)."""
        from trek_tasks import reporter

        reporter.attach()  # plain `doit auto` too: a dodo that fails to load attaches nothing
        if args[:1] == [Run.get_name()]:
            # `doit auto run` reads as "auto-run": no task may be named like a command.
            args = args[1:]
        stop = threading.Event()

        def on_interrupt(signum: int, frame: Any) -> None:
            # Remembered as well as raised: a step may swallow the KeyboardInterrupt.
            stop.set()
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, on_interrupt)
        watcher = Watcher(int(params["debounce"]), stop)
        watch = WatchSet()
        cycles = 0
        told = False
        stopped = ""  # what Ctrl-C stopped, when a step says (``errors.Interrupted``)
        try:
            while not stop.is_set():
                started = time.time()
                result = self.cycle(params, args)
                if stop.is_set():
                    break
                watch = result.watch if result.loaded else watch.union(result.watch)
                cycles += 1
                if params["max_cycles"] and cycles >= params["max_cycles"]:
                    return result.code
                changed = watcher.arm(watch, started)
                if not changed and not told:
                    self._say("-- watching for changes (Ctrl-C to stop)")
                    told = True
                changed = changed or watcher.wait()
                wanted = " ".join(args or params.get("default_tasks") or ["all tasks"])
                self._say(f"-- change: {describe(changed, watch)}; running {wanted}")
        except KeyboardInterrupt as err:
            stopped = str(err)
        finally:
            signal.signal(signal.SIGINT, previous)
            watcher.close()
        self._say(f"-- stopped watching ({stopped})" if stopped else "-- stopped watching")
        return INTERRUPTED


class TrekAutoCommand(AutoCommand):
    """``auto`` as ``trek watch`` uses it: errors in Trek's words."""

    error_prefix = "trek: error: "

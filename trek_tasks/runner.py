"""The one place doit is driven from: run tasks, mark tasks done, watch a project.

Everything runs in-process with the project's dep file (``.trek/doit.db``), the same
one a project's ``dodo.py`` uses, so ``trek`` and ``doit`` share up-to-date state.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sqlite3
from pathlib import Path
from typing import Any

from doit.cmd_base import ModuleTaskLoader, NamespaceTaskLoader
from doit.cmd_run import Run
from doit.doit_cmd import DoitMain

from trek_tasks.errors import StepFailed, TrekError
from trek_tasks.events import emit
from trek_tasks.options import TaskOptions
from trek_tasks.plan import is_step
from trek_tasks.project import Project
from trek_tasks.tasks import namespace
from trek_tasks.watch import TrekAutoCommand


class TrekReporter:
    """A doit reporter that leaves output to the steps and keeps failures for the CLI.

    Steps report Trek-style lines themselves (as events); with ``verbose`` the reporter
    also says which tasks ran and which were up to date. With ``report_up_to_date`` a
    task the command asked for that has nothing to do says so (``UpToDate``).
    """

    def __init__(
        self, verbose: bool = False, report_up_to_date: bool = False, root: Path | None = None
    ) -> None:
        self.verbose = verbose
        self.report_up_to_date = report_up_to_date
        self.root = root or Path.cwd()  # task targets are relative to the project root
        self.selected: set[str] = set()
        self.failures: list[tuple[str, Any]] = []
        self.errors: list[str] = []
        self.executed: list[str] = []
        self.state_error: sqlite3.Error | None = None  # doit's dep file (sqlite3) failed

    def _say(self, text: str) -> None:
        if self.verbose:
            from trek_tasks.progress import TaskNote

            emit(TaskNote(text))

    def initialize(self, tasks: Any, selected_tasks: Any) -> None:
        self.selected = set(selected_tasks or ())

    def get_status(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        if is_step(task):
            self.executed.append(task.name)
            self._say(f".  {task.name}")

    def add_failure(self, task: Any, fail: Any) -> None:
        self.failures.append((task.name, fail))

    def add_success(self, task: Any) -> None:
        pass

    def skip_uptodate(self, task: Any) -> None:
        self._say(f"-- {task.name} (up to date)")
        asked = task.name in self.selected or task.name.split(":")[0] in self.selected
        helper = task.name.rpartition(":")[2].startswith("_")
        if self.report_up_to_date and asked and not helper:
            from trek_tasks.progress import UpToDate

            emit(UpToDate(task.name, tuple(self.root / t for t in task.targets)))

    def skip_ignore(self, task: Any) -> None:
        self._say(f"!! {task.name} (ignored)")

    def cleanup_error(self, exception: Any) -> None:
        self.errors.append(str(exception))

    def runtime_error(self, msg: str) -> None:
        self.errors.append(msg)

    def teardown_task(self, task: Any) -> None:
        pass

    def complete_run(self) -> None:
        pass


def _summary(fail: Any) -> str:
    """doit's message plus the exception line (doit alone says only "PythonAction Error")."""
    last = fail.traceback[-1].strip() if fail.traceback else ""
    return f"{fail.message}: {last}" if last else str(fail.message)


def failure_error(name: str, fail: Any, verbose: bool) -> TrekError:
    """A doit task failure as the TrekError to report: the step's own one when it has
    one, else the task name and doit's message (with the traceback when ``verbose``)."""
    error = getattr(fail, "trek_error", None)
    if isinstance(error, TrekError):
        return error
    detail = fail.get_msg() if verbose else _summary(fail)
    return StepFailed(f"task {name} failed: {detail.strip()}")


def run_tasks(
    project: Project,
    tasks: list[str],
    options: TaskOptions | None = None,
    verbose: bool = False,
    always: bool = False,
    report_up_to_date: bool = False,
) -> list[str]:
    """Run doit ``tasks`` of ``project``; return the names of the tasks executed.

    A failing step re-raises its ``TrekError`` so the CLI prints one line with the
    right exit code. With ``report_up_to_date``, each of ``tasks`` (or of their
    sub-tasks) that had nothing to do says so.
    """
    reporter = TrekReporter(verbose, report_up_to_date, project.root)
    ns = namespace(project.root, project, options)
    ns["DOIT_CONFIG"] = {**ns["DOIT_CONFIG"], "reporter": reporter}
    args = ["run", *(["--always-execute"] if always else []), *tasks]
    code = TrekMain(ModuleTaskLoader(ns)).run(args)
    for name, fail in reporter.failures:
        raise failure_error(name, fail, verbose)
    if reporter.state_error is not None:
        raise dep_file_error(project, reporter.state_error)
    if reporter.errors or code != 0:
        raise StepFailed("; ".join(reporter.errors) or f"doit exited with code {code}")
    return reporter.executed


def mark_done(project: Project, tasks: list[str]) -> None:
    """Record in doit's state that ``tasks`` are up to date: their work was done outside
    doit (``trek install`` did what the ``install`` task does)."""
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        DoitMain(ModuleTaskLoader(namespace(project.root, project))).run(["reset-dep", *tasks])


def mark_installed(root: Path) -> None:
    """After ``trek install``/``uninstall``: the ``install`` task is up to date, so
    ``doit install`` right after runs nothing.

    Best effort: when the project's tasks cannot be built (say graph.yml is broken), the
    next ``doit install`` runs once, finds nothing to do, and reports that problem itself.
    """
    from trek_tasks.install import in_sync

    if not in_sync(root):
        return
    try:
        project = Project.load(root)
    except TrekError:
        return
    mark_done(project, ["install"])


def watch_project(
    root: Path, options: TaskOptions, verbose: bool = False, debounce_ms: int | None = None
) -> int:
    """Run the project's workflow (task ``execute``) now and after every change until Ctrl-C.

    Runtimes stay up afterwards. Returns the exit code (130 after Ctrl-C).
    """
    quiet = [] if debounce_ms is None else [f"--debounce={debounce_ms}"]
    code = WatchMain(ProjectLoader(root, options, verbose)).run(["auto", *quiet, "execute"])
    return int(code)


class CycleReporter(TrekReporter):
    """Trek's quiet reporter that prints each failure as one ``trek: error:`` line per cycle."""

    def complete_run(self) -> None:
        from trek_tasks.progress import WatchError

        for name, fail in self.failures:
            error = failure_error(name, fail, self.verbose)
            emit(WatchError(f"trek: error: {error}"))
            if error.detail:
                emit(WatchError(error.detail))
        for message in self.errors:
            emit(WatchError(f"trek: error: {message}"))


class ProjectLoader(NamespaceTaskLoader):
    """One Trek project's tasks, built afresh at every load so each cycle sees the edits."""

    def __init__(self, root: Path, options: TaskOptions, verbose: bool = False) -> None:
        super().__init__()
        self.root = root
        self.options = options
        self.verbose = verbose

    def setup(self, opt_values: dict[str, Any]) -> None:
        self.namespace = namespace(self.root, None, self.options)

    def load_doit_config(self) -> dict[str, Any]:
        config = dict(super().load_doit_config())
        config["reporter"] = CycleReporter(self.verbose)
        return config


def dep_file_error(project: Project, err: sqlite3.Error) -> StepFailed:
    """doit's dep file (``.trek/doit.db``) failing to open or save, as one line naming it."""
    from trek_tasks.files import display, write_problem

    path = project.state.dep_file
    if getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        problem = write_problem(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    elif not path.exists():
        problem = "removed during the run; doit's record of what it ran is lost"
    else:
        problem = f"cannot save doit's state: {err}"
    return StepFailed(problem, display(path, project.root))


class TrekRun(Run):
    """doit's ``run``, whose dep file failing (a full disk, ``.trek/`` removed meanwhile)
    is the reporter's ``state_error``, not doit's traceback and exit code 3."""

    def execute(self, params: Any, args: list[str]) -> Any:
        try:
            return super().execute(params, args)
        except sqlite3.Error as err:  # only the dep file is SQLite (backend "sqlite3")
            reporter = params.get("reporter")
            if not isinstance(reporter, TrekReporter):
                raise
            reporter.state_error = err
            return 3


class TrekMain(DoitMain):
    """doit with Trek's ``run`` command."""

    def get_cmds(self) -> Any:
        commands = super().get_cmds()
        commands["run"] = TrekRun
        return commands


class WatchMain(DoitMain):
    """doit with Trek's ``auto`` command, whether or not the entry point is installed."""

    def get_cmds(self) -> Any:
        commands = super().get_cmds()
        commands["auto"] = TrekAutoCommand
        return commands

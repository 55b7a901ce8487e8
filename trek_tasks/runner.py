"""Running doit tasks from the ``trek`` CLI, in-process, with the project's dep file."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from trek_tasks.errors import StepFailed, TrekError
from trek_tasks.project import Project


class TrekReporter:
    """A doit reporter that leaves output to the steps and keeps failures for the CLI.

    Steps print Trek-style lines themselves; with ``verbose`` the reporter also says
    which tasks ran and which were up to date.
    """

    def __init__(self, verbose: bool = False, out: TextIO | None = None) -> None:
        self.verbose = verbose
        self.out = out or sys.stdout
        self.failures: list[tuple[str, Any]] = []
        self.errors: list[str] = []
        self.executed: list[str] = []

    def _say(self, text: str) -> None:
        if self.verbose:
            self.out.write(text + "\n")

    def initialize(self, tasks: Any, selected_tasks: Any) -> None:
        pass

    def get_status(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        if task.actions and not task.name.startswith("_"):
            self.executed.append(task.name)
            self._say(f".  {task.name}")

    def add_failure(self, task: Any, fail: Any) -> None:
        self.failures.append((task.name, fail))

    def add_success(self, task: Any) -> None:
        pass

    def skip_uptodate(self, task: Any) -> None:
        self._say(f"-- {task.name} (up to date)")

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
    options: dict[str, Any] | None = None,
    verbose: bool = False,
    always: bool = False,
) -> list[str]:
    """Run doit ``tasks`` of ``project``; return the names of the tasks executed.

    A failing step re-raises its ``TrekError`` so the CLI prints one line with the
    right exit code.
    """
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from trek_tasks.tasks import namespace

    reporter = TrekReporter(verbose)
    ns = namespace(project.root, project, options)
    ns["DOIT_CONFIG"] = {**ns["DOIT_CONFIG"], "reporter": reporter}
    args = ["run", *(["--always-execute"] if always else []), *tasks]
    code = DoitMain(ModuleTaskLoader(ns)).run(args)
    for name, fail in reporter.failures:
        raise failure_error(name, fail, verbose)
    if reporter.errors or code != 0:
        raise StepFailed("; ".join(reporter.errors) or f"doit exited with code {code}")
    return reporter.executed

"""``trek plan`` and ``trek why``: what a run would do now, and why, without doing it.

The plan asks doit's own dependency manager for the status of every task the command
would run (``Dependency.get_status``, the call doit's runner makes), against the same
dep file (``.trek/doit.db``, opened without saving). The tasks' ``uptodate`` entries are
:class:`checks.Check`s: the call that decides keeps its reason, and the plan reads it
from the status, so a reason is never worked out apart from the decision. Nothing runs:
no action, no ``up``, no script.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from trek_tasks.checks import READS_DEPS, Check
from trek_tasks.errors import BadInput
from trek_tasks.options import TaskOptions
from trek_tasks.project import Project

RUN_TASKS = ("execute",)  # what `trek run` runs
INSTALL = "install"  # the task the others are created after (``tasks.after_install``)


@dataclass(frozen=True)
class Step:
    """A task that would execute, and why (``up:detectredis: handler/handler.py changed``)."""

    task: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class NodeStep:
    """What ``trek run --reuse`` would do with an action node, and why."""

    node: str
    script: str
    action: str  # run | reuse | fail | skip
    reason: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        verb = {"run": "runs", "reuse": "reused", "fail": "fails", "skip": "skipped"}[self.action]
        return f"node {self.node} ({self.script}): {verb}: {self.reason}"


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]  # each after the tasks it depends on (doit may swap the others)

    def step(self, task: str) -> Step | None:
        return next((s for s in self.steps if s.task == task), None)


def is_step(task: Any) -> bool:
    """A doit task that does something of its own: it has actions and is no helper (a
    ``_`` name); a group (``up``) only orders its sub-tasks. The runner reports the tasks
    executed by the same rule, so a plan and a run name the same tasks."""
    return bool(task.actions) and not task.name.startswith("_")


def plan_tasks(project: Project, names: Iterable[str] = RUN_TASKS) -> Plan:
    """What running doit ``names`` would execute now, each with the reason its checks
    give (``trek run`` re-runs ``execute`` however it stands; the plan says whether
    ``execute`` has anything new to run). A task runs after the tasks it depends on;
    one whose check reads what such a task makes (a zip, an image; ``READS_DEPS``) or
    whose ``file_dep`` is its target runs because that task runs."""
    from doit.dependency import Dependency

    from trek_tasks.depstate import project_checker

    ns, tasks = _tasks(project, TaskOptions())
    asked = list(names)
    unknown = [name for name in asked if name not in tasks]
    if unknown:
        known = ", ".join(_known(tasks))
        raise BadInput(f"no task {', '.join(unknown)}; the tasks are {known}")
    dep_file = project.state.dep_file
    backend = str(dep_file) if dep_file.is_file() else ":memory:"
    dependency = Dependency(_read_only, backend, checker_cls=project_checker(project.root))
    try:
        steps: dict[str, Step] = {}
        made_by = {target: task.name for task in tasks.values() for target in task.targets}
        after = _delayed_after(ns)
        for task in _in_run_order(asked, tasks, after):
            reason = _reason(task, tasks, dependency, steps, made_by)
            if reason is not None and is_step(task):
                steps[task.name] = Step(task.name, reason)
    finally:
        dependency.close()
    first = steps.get(INSTALL)
    if first is not None and after:
        note = "the tasks after it are planned from the scripts installed now"
        steps[INSTALL] = Step(INSTALL, f"{first.reason}; {note}")
    return Plan(tuple(steps.values()))


def known_tasks(project: Project) -> tuple[str, ...]:
    """The tasks ``plan`` and ``why`` take (a helper's ``_`` name aside), checking none."""
    return _known(_tasks(project, TaskOptions())[1])


def _tasks(project: Project, options: TaskOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """The project's doit namespace and every task by name, those created after
    ``install`` included (as ``doit list`` makes them: from the scripts installed now)."""
    from doit.control import TaskControl
    from doit.loader import load_tasks

    from trek_tasks.tasks import namespace

    ns = namespace(project.root, project, options)
    return ns, TaskControl(load_tasks(ns)).tasks


def _known(tasks: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(n for n in tasks if not n.rpartition(":")[2].startswith("_")))


def _delayed_after(ns: Mapping[str, Any]) -> dict[str, str]:
    """Task basename -> the task doit executes before creating it (``create_after``)."""
    after = {}
    for key, creator in ns.items():
        delayed = getattr(creator, "doit_create_after", None)
        if key.startswith("task_") and delayed is not None and delayed.task_dep:
            after[key.removeprefix("task_")] = str(delayed.task_dep)
    return after


def _in_run_order(
    asked: list[str], tasks: Mapping[str, Any], after: Mapping[str, str]
) -> Iterator[Any]:
    """``asked`` and what they depend on, each after its dependencies, as doit orders them."""
    seen: set[str] = set()

    def visit(name: str) -> Iterator[Any]:
        if name in seen:
            return
        seen.add(name)
        task = tasks[name]
        first = after.get(name.partition(":")[0])
        for dep in [*([first] if first else []), *task.setup_tasks, *task.task_dep]:
            if dep in tasks:
                yield from visit(dep)
        yield task

    for name in asked:
        yield from visit(name)


def _reason(
    task: Any,
    tasks: Mapping[str, Any],
    dependency: Any,
    steps: Mapping[str, Step],
    made_by: Mapping[str, str],
) -> str | None:
    """Why ``task`` would execute, or None when doit would find it up to date."""
    ran_before = dependency._in(task.name)  # before get_status, which caches what it reads
    status = dependency.get_status(task, tasks, get_log=True)
    if status.status == "error":
        return f"fails: {status.get_error_message()}"
    if status.status == "run":
        return "; ".join(dict.fromkeys(_words(status.reasons, ran_before)))
    read = [name for name in (task.meta or {}).get(READS_DEPS, []) if name in steps]
    if read:
        return f"{read[0]} runs"
    for path in sorted(task.file_dep):
        maker = made_by.get(path)
        if maker in steps:
            return f"{maker} runs (it makes {path})"
    return None


def _words(reasons: Mapping[str, Any], ran_before: bool) -> Iterator[str]:
    """doit's reasons (``DependencyStatus.reasons``) in Trek's words; a task doit has no
    record of says so once instead of listing every file it reads as changed."""
    checks = [
        (check.reason if isinstance(check, Check) else None)
        or f"its check {check!r} says it is not up to date"
        for check, _, _ in reasons.get("uptodate_false", [])
    ]
    if reasons.get("has_no_dependencies"):
        checks.append("it has no up-to-date check: it always runs")
    if not ran_before:  # every file it reads counts as changed
        yield from checks or ["never run"]
        return
    yield from checks
    for target in reasons.get("missing_target", []):
        yield f"{target} missing"
    if reasons.get("checker_changed"):
        yield "doit's file checker changed"
    for path in reasons.get("added_file_dep", []):
        yield f"now reads {path}"
    for path in reasons.get("removed_file_dep", []):
        yield f"no longer reads {path}"
    changed = reasons.get("changed_file_dep") or []
    if changed:
        yield f"{', '.join(changed)} changed"


def _read_only(name: str, codec: Any, module_name: str | None = None) -> Any:
    """doit's SQLite dep file, read and never saved: closing drops what a check set (doit
    forgets a task's state when its checker changed)."""
    from doit.dependency import SqliteDB

    class ReadOnlyDB(SqliteDB):  # type: ignore[misc]  # doit has no type hints
        def dump(self) -> None:
            self._conn.rollback()
            self._conn.close()

    return ReadOnlyDB(name, codec)


def plan_nodes(project: Project) -> tuple[NodeStep, ...]:
    """What ``trek run --reuse`` would do with each action node, decided by the
    engine itself: a run of the real :class:`engine.Engine` whose scripts are not called,
    each node that must run giving its outputs of the last run (``engine.must_run`` says
    why it must; a node downstream is then reused when early cutoff holds, which the
    real run confirms only when that node's outputs come out the same). The local
    Marvin's state is probed as the run would (not running: unknown, so nothing reused)."""
    from trek_tasks.engine import Engine, must_run
    from trek_tasks.environment import Environment
    from trek_tasks.errors import TrekError
    from trek_tasks.localrun import last_run, run_settings
    from trek_tasks.marvin import target
    from trek_tasks.marvin.client import StateProbe

    env = Environment(project)
    try:
        marvin = target.resolve(project.config, env)
    except TrekError:  # the local Marvin is not running: `up:marvin` would start it
        marvin = target.NO_MARVIN
    probe = StateProbe(marvin.url, marvin.token, env.state.marvin_db) if marvin.local else None
    settings = run_settings(env, marvin, True, probe)
    last = last_run(project)
    try:
        result = Engine(project.workflow, settings, _LastOutputs(last)).run()
    finally:
        if probe is not None:
            probe.close()
    found = []
    for node_id, run in result.nodes.items():
        if run.type != "action":
            continue
        if run.status == "reused":
            reason = run.reason or "same code, inputs and Marvin state as the last run"
            found.append(NodeStep(node_id, run.script_id, "reuse", reason))
        elif run.status == "done":
            para = settings.paras.get(run.script_id, {})
            why = must_run(last.get(node_id), run, para) or "its outputs may differ"
            found.append(NodeStep(node_id, run.script_id, "run", why))
        elif run.status == "failed":
            found.append(NodeStep(node_id, run.script_id, "fail", run.error))
        else:
            why = run.reason or "not reached: a node before it fails"
            found.append(NodeStep(node_id, run.script_id, "skip", why))
    return tuple(found)


class _LastOutputs:
    """An invoker calling no script: a node gives what it gave in the last run (found by
    its script and inputs, else the script's only node there; ``{}`` for a new one)."""

    def __init__(self, last: Mapping[str, Any]) -> None:
        self.last = last

    def __call__(self, script_id: str, event: dict[str, Any], timeout: float) -> dict[str, Any]:
        import json

        inputs = json.loads(event["body"])
        same = [n for n in self.last.values() if n.script_id == script_id]
        exact = [n for n in same if n.inputs == inputs]
        chosen = exact or (same if len(same) == 1 else [])
        return dict(chosen[0].outputs) if chosen else {}

"""Local runs: bring the environment up, run the workflow, record it.

``trek initenv/shutdownenv/logs/run/run<kind>`` and the doit ``up:*``/``run`` tasks
call these functions. They print nothing: progress goes out as events
(``trek_tasks.events``), results are returned, and the commands print them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from trek_tasks import __version__
from trek_tasks.engine import (
    Engine,
    NodeFailed,
    NodeFinished,
    NodeRun,
    RunFinished,
    RunResult,
    RunSettings,
    Subscriber,
    script_event,
)
from trek_tasks.environment import Environment
from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.events import emit
from trek_tasks.files import content_digest, display, dump_json, load_yaml, write_atomic
from trek_tasks.invoker import HttpInvoker
from trek_tasks.lock import Held, file_lock
from trek_tasks.marvin import target
from trek_tasks.marvin.client import MarvinClient, StateProbe
from trek_tasks.progress import RunReported, ScriptLogged, Starting, Stopping
from trek_tasks.project import Project, Script
from trek_tasks.runlog import EventLog
from trek_tasks.runtimes.base import file_digests, sdk_hash
from trek_tasks.state import StateLayout

LOG_TAIL = 20


def readable(lines: Iterable[str]) -> list[str]:
    """Log lines for a person: a JSON record's ``traceback`` (the blcks logger's json
    mode keeps it as one escaped string) is taken out and shown as its own lines."""
    shown: list[str] = []
    for line in lines:
        record = _json_record(line)
        trace = record.pop("traceback", None) if record else None
        if not isinstance(trace, str):
            shown.append(line)
            continue
        shown.append(json.dumps(record, ensure_ascii=False))
        shown.extend(trace.splitlines())
    return shown


def _json_record(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def select_scripts(project: Project, actions: tuple[str, ...]) -> list[Script]:
    """The scripts named by ``actions`` (script ids), or every script the graph uses."""
    if not actions:
        return project.used_scripts()
    scripts = project.scripts
    unknown = [a for a in actions if a not in scripts]
    if unknown:
        raise BadInput(
            f"unknown script {', '.join(unknown)}; known: {', '.join(sorted(scripts)) or 'none'}",
            "ACTIONS",
        )
    return [scripts[a] for a in actions]


def bring_up(
    name: str, label: str, reason: str | None, force: bool, start: Callable[[], object]
) -> str | None:
    """Start (or restart, saying why) what is not up to date; returns the reason, if any."""
    if reason is None and force:
        reason = "restart requested"
    if reason is None:
        return None
    emit(Starting(name, label, reason))
    start()
    return reason


def script_label(project: Project, script_id: str) -> str:
    """``<kind> <id>`` (``blcks detectredis``) in progress lines; ``script <id>`` for one
    the project no longer has."""
    script = project.scripts.get(script_id)
    return f"{script.kind.name if script else 'script'} {script_id}"


def up_script(env: Environment, script: Script, force: bool = False) -> str | None:
    """Start or restart ``script`` when it is not up to date."""
    with file_lock(env.state.up_lock):  # checked again under the lock: another run may
        reason = env.stale_reason(script)  # have just started it
        return bring_up(
            script.id, script_label(env.project, script.id), reason, force, lambda: env.up(script)
        )


def up_marvin(env: Environment, force: bool = False) -> str | None:
    """Start or restart the local Marvin when needed (never for a remote ``marvin_url``)."""
    if target.is_remote(env.project.config):
        return None
    with file_lock(env.state.up_lock):
        reason = env.marvin_stale_reason()
        return bring_up("local Marvin", "local Marvin", reason, force, env.marvin_up)


def check_installed(project: Project, actions: tuple[str, ...]) -> None:
    """Refuse to bring the graph's scripts up while some of them are not installed."""
    missing = project.missing_scripts() if not actions else []
    if missing:
        raise BadInput(f"scripts not installed: {', '.join(missing)}; run `trek install`")


def close_unused(env: Environment, keep: tuple[str, ...] = ()) -> None:
    """Stop the scripts of this project that run although the graph no longer uses them
    (``keep``: ids asked for by name)."""
    for script_id in env.unused_ids():
        if script_id not in keep:
            emit(Stopping(script_label(env.project, script_id), "no longer in the graph"))
            env.down(script_id)


def initenv(project: Project, actions: tuple[str, ...], no_overwrite: bool) -> None:
    """Start the runtime of each script (all the graph uses by default) and the local
    Marvin; stop the scripts the graph no longer uses."""
    check_installed(project, actions)
    env = Environment(project)
    close_unused(env, actions)
    up_marvin(env, force=not no_overwrite)  # first: a bad router_port stops before any restart
    for script in select_scripts(project, actions):
        up_script(env, script, force=not no_overwrite)


def shutdownenv(project: Project, actions: tuple[str, ...], all_: bool) -> None:
    """Stop the named scripts, or (none named, or ``all_``) everything and the local Marvin."""
    env = Environment(project)
    if all_ or not actions:
        for script_id in env.running_ids():
            emit(Stopping(script_label(project, script_id)))
        if env.marvin_running():
            emit(Stopping("local Marvin"))
        env.shutdown_all()
    else:
        for script in select_scripts(project, actions):
            emit(Stopping(script_label(project, script.id)))
            env.down(script.id)


def log_lines(
    project: Project, actions: tuple[str, ...], follow: bool, tail: int | None
) -> Iterator[str]:
    """The log lines of the named scripts (default: every one with a log; a stopped
    script's last log), each prefixed with its script id when there are several; with
    ``follow`` (one running script), new lines as they come."""
    env = Environment(project)
    logged = env.logged_ids()
    ids = list(actions) or logged
    for script_id in ids:
        if script_id not in logged:
            raise BadInput(f"{script_id} has no logs; start it with `trek initenv`", "ACTIONS")
    if follow and len(ids) > 1:
        raise BadInput("--follow takes one script", "ACTIONS")
    if follow and ids and env.handle(ids[0]) is None:
        raise BadInput(
            f"{ids[0]} is not running; without --follow `trek logs` shows its last log",
            "ACTIONS",
        )
    for script_id in ids:
        prefix = f"[{script_id}] " if len(ids) > 1 else ""
        for line in env.logs(script_id, follow, tail):
            yield prefix + line


@contextlib.contextmanager
def run_lock(project: Project) -> Iterator[None]:
    """One run per project at a time."""
    try:
        with file_lock(project.state.run_lock, wait=False):
            yield
    except Held as held:
        raise StepFailed(
            f"another `trek run` is in progress on this project (pid {held.holder}); "
            "wait for it or stop it"
        ) from None


def read_overrides(project: Project) -> dict[str, Any]:
    path = project.path("input_data_path")
    data = load_yaml(path, project.root) if path.is_file() else None
    return data if isinstance(data, dict) else {}


def read_event(project: Project) -> dict[str, Any]:
    path = project.path("input_event_path")
    data = load_yaml(path, project.root) if path.is_file() else None
    if data is not None and not isinstance(data, dict):
        raise BadInput("the trigger event must be a mapping", display(path))
    return data or {}


def read_paras(project: Project) -> dict[str, dict[str, Any]]:
    paras = {}
    for script in project.used_scripts():
        data = load_yaml(script.para_path, project.root)
        paras[script.id] = data if isinstance(data, dict) else {}
    return paras


def last_message_id(marvin: MarvinClient) -> int:
    return max((int(m["id"]) for m in marvin.get("/api/v1/messages")), default=0)


class LogFollower:
    """An engine subscriber reporting what each script logged while its node ran
    (``--detail``); subscribed before the printer, so the lines come before the node's."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.seen = {script_id: len(list(env.logs(script_id))) for script_id in env.started_ids()}

    def __call__(self, event: object) -> None:
        if not isinstance(event, NodeFinished | NodeFailed) or not event.run.script_id:
            return
        script_id = event.run.script_id
        lines = list(self.env.logs(script_id))
        start = self.seen.get(script_id, 0)
        self.seen[script_id] = len(lines)
        if lines[start:]:
            emit(ScriptLogged(script_id, tuple(readable(lines[start:]))))


class RecordWriter:
    """An engine subscriber saving the run record when the run finishes (``read``: the
    digests of the files it read, see ``save_record``)."""

    def __init__(self, project: Project, read: dict[str, str] | None = None) -> None:
        self.project = project
        self.read = read

    def __call__(self, event: object) -> None:
        if isinstance(event, RunFinished):
            save_record(self.project, event.result, self.read)


def files_read(env: Environment) -> dict[str, str]:
    """What a run with the local Marvin read besides its nodes' inputs, by content digest
    at its start: the inventory the Marvin serves and ``data.yml`` (``trek record`` checks
    the files it copies into a fixture are these)."""
    return {
        "inventory": env.inventory_digest(),
        "data": content_digest(env.project.path("input_data_path")),
    }


def save_record(project: Project, result: RunResult, read: dict[str, str] | None = None) -> Path:
    path = project.state.run_record(result.run_id)
    text = dump_json({**result.to_json(), **({"read": read} if read is not None else {})})
    write_atomic(path, text, root=project.root)
    write_atomic(project.state.last_run, text, root=project.root)
    return path


def code_parts(env: Environment, script: Script) -> dict[str, Any]:
    """What ``script`` runs, besides its inputs and the Marvin state it reads: its files,
    config envs, environment (requirements, Python) and the blcks SDK."""
    return {
        "files": file_digests(script),
        "envs": env.script_env(script),
        "environment": env.runtime.env_key(script),
        "sdk": sdk_hash(),
    }


def code_digests(env: Environment) -> dict[str, str]:
    """Per script the graph uses: a digest of its ``code_parts``."""
    return {script.id: _digest(code_parts(env, script)) for script in env.project.used_scripts()}


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)  # YAML dates, in a graph
    return hashlib.sha256(text.encode()).hexdigest()


# A run input is named "<what>" or "<what>" PART "<part>": the file or setting, and the part
# of it (``workflow_parts``); ``run_changes`` words a difference by them.
PART = "\x1f"  # the ASCII unit separator: in no file name or setting


def run_inputs(project: Project) -> dict[str, str]:
    """What a run's result depends on, input by input (name -> digest): what the graph,
    the edge data and the trigger event say (their parsed content: a comment or layout
    edit changes nothing), node by node and edge by edge, the code of every script the
    graph uses, file by file, the inventory, trek's version and the settings the engine
    reads. ``execute`` keeps them, so it says which of them changed (``run_changes``)."""
    env = Environment(project)
    remote = target.remote(project.config)
    root = project.root
    inputs: dict[str, str] = {"trek version": __version__}
    inputs.update(data_parts(project))
    event = project.path("input_event_path")
    inputs[display(event, root)] = content_digest(event)
    inputs.update(workflow_parts(project))
    inputs["action_timeout"] = str(project.config["action_timeout"])
    inputs["the remote Marvin's URL"] = remote.url if remote else ""
    inputs[display(env.inventory, root)] = env.inventory_digest()
    for script in project.used_scripts():
        parts = code_parts(env, script)
        for name, digest in parts.pop("files").items():
            inputs[display(script.path / name, root)] = digest
        inputs[f"{script.id}'s config envs"] = _digest(parts.pop("envs"))
        inputs[f"{script.id}'s requirements"] = _digest(parts.pop("environment"))
        inputs["blcks SDK"] = str(parts.pop("sdk"))
    return inputs


def data_parts(project: Project) -> dict[str, str]:
    """``data.yml``'s digest edge by edge (``inputs/data.yml|edge 4-5``: its keys are edge
    keys); one part when it is not a mapping (its validation reports it)."""
    path = project.path("input_data_path")
    shown = display(path, project.root)
    try:
        data = load_yaml(path, project.root) if path.is_file() else {}
    except BadInput:
        data = None
    if not isinstance(data, dict):
        return {shown: content_digest(path)}
    return {f"{shown}{PART}edge {key}": _digest(value) for key, value in data.items()}


def workflow_parts(project: Project) -> dict[str, str]:
    """The workflow's digest part by part (``src/graph.yml|node 2``, ``...|edge 2-4
    binding``), so an edit is named by the node or edge field it touched; a workflow
    that does not parse is one part (its validation reports it)."""
    shown = display(project.entry, project.root)
    try:
        data = load_yaml(project.entry, keep=project.state.parsed_workflow)
        graph = dict(data["graph"])
        nodes = list(graph.pop("nodes"))
        edges = list(graph.pop("edges"))
        rest = {k: v for k, v in data.items() if k != "graph"}
    except (BadInput, KeyError, TypeError, ValueError):
        return {shown: content_digest(project.entry)}
    parts = {f"{shown}{PART}metadata": _digest({"graph": graph, **rest})}
    for node in nodes:
        parts[f"{shown}{PART}node {_field(node, 'id')}"] = _digest(node)
    for edge in edges:
        key = f"edge {_field(edge, 'source')}-{_field(edge, 'target')}"
        fields = dict(edge) if isinstance(edge, dict) else {"edge": edge}
        metadata = fields.pop("metadata", None)
        named = metadata if isinstance(metadata, dict) else {"metadata": metadata}
        for name, value in named.items():
            parts[f"{shown}{PART}{key} {name}"] = _digest(value)
        parts[f"{shown}{PART}{key}"] = _digest(fields)
    return parts


def _field(item: Any, name: str) -> str:
    return str(item.get(name, "?")) if isinstance(item, dict) else "?"


def run_changes(last: dict[str, str], now: dict[str, str]) -> str | None:
    """How the run inputs ``now`` differ from ``last`` (``src/graph.yml changed (edge 2-4
    binding); src/blcks/detectredis/handler/handler.py changed``), None when they do not."""
    changed: dict[str, list[str]] = {}
    for name in [*now, *(n for n in last if n not in now)]:
        if last.get(name) == now.get(name):
            continue
        what, _, part = name.partition(PART)
        how = "added" if name not in last else "removed" if name not in now else ""
        details = changed.setdefault(what, [])
        if part:
            details.append(f"{part} {how}".strip())
        elif how:
            details.append(how)
    said = []
    for what, details in changed.items():
        if details in (["added"], ["removed"]):
            said.append(f"{what} {details[0]}")
        else:
            said.append(f"{what} changed ({', '.join(details)})" if details else f"{what} changed")
    return "; ".join(said) or None


def last_run(project: Project) -> dict[str, NodeRun]:
    """The nodes of the last recorded run (empty when there is none or it is unreadable)."""
    path = project.state.last_run
    try:
        data = json.loads(path.read_text())
        return {str(n["id"]): NodeRun(**n) for n in data["nodes"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def new_run_id() -> str:
    """Sortable by start time, to the millisecond (two runs a second apart are common)."""
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"{int(now * 1000) % 1000:03d}"
    return stamp + "-" + secrets.token_hex(3)


def run_settings(
    env: Environment,
    marvin: target.MarvinTarget,
    reuse: bool,
    probe: Callable[[], str] | None,
    event: dict[str, Any] | None = None,
    interval: float = 0.0,
) -> RunSettings:
    """What the engine needs for a run of ``env``'s project now (``trek plan --reuse``
    predicts one with the same): its event (``inputs/event.yml`` unless given), paras,
    data.yml overrides, code digests, the last run to reuse from and the state probe."""
    project = env.project
    return RunSettings(
        name=project.name,
        run_id=new_run_id(),
        event=read_event(project) if event is None else event,
        paras=read_paras(project),
        overrides=read_overrides(project),
        timeout=float(project.config["action_timeout"]),
        token=marvin.token,
        marvin_url=marvin.url_for_script(env.runtime),
        interval=interval,
        reuse=last_run(project) if reuse else {},
        code_digests=code_digests(env),
        script_types={s.id: s.kind.script_type for s in project.scripts.values()},
        state_probe=probe,
    )


def run_workflow(
    project: Project,
    detail: bool = False,
    interval: float = 0.0,
    reuse: bool = False,
    event: dict[str, Any] | None = None,
) -> RunResult:
    """Run the workflow against the running environment; raises StepFailed on a failed run.
    ``event``: the trigger's event (``trek serve``: a POSTed one), else ``inputs/event.yml``.

    With ``reuse``, nodes whose code (``code_digests``), inputs and local Marvin state at
    their start equal the last run's, and whose upstream did not re-execute, take their
    outputs from the last run record. A remote Marvin's state is unknown: nothing is
    reused then, and a warning says so."""
    env = Environment(project)
    marvin = target.resolve(project.config, env)
    use_marvin(marvin, env.state.marvin_log)
    if reuse and not marvin.local:
        from trek_tasks.progress import Warned

        emit(Warned("--reuse runs every node: what a remote Marvin serves cannot be compared"))
    probe = StateProbe(marvin.url, marvin.token, env.state.marvin_db) if marvin.local else None
    urls = {}
    for script in project.used_scripts():
        handle = env.handle(script.id)
        if handle is None:
            raise StepFailed(f"{script.id} is not running; run `trek initenv`")
        urls[script.id] = handle.url
    settings = run_settings(env, marvin, reuse, probe, event, interval)
    first_message = last_message_id(marvin.client) if marvin.local else 0
    invoker = HttpInvoker(urls)
    # the record first: when the stream says "finished", the record is there
    read = files_read(env) if marvin.local else None
    subscribers: list[Subscriber] = [RecordWriter(project, read), EventLog(project.state), emit]
    if detail:
        subscribers.insert(0, LogFollower(env))
    with run_lock(project):
        finished = False
        try:
            result = Engine(project.workflow, settings, invoker, subscribers).run()
            finished = True
        finally:
            invoker.close(keep=finished)  # for the next run in this process (a watch)
            if probe is not None:
                probe.close()
    messages = marvin.client.get(f"/api/v1/messages?after={first_message}") if marvin.local else []
    emit(RunReported(result, tuple(messages)))
    if result.status == "failed":
        failed = next((n for n in result.nodes.values() if n.status == "failed"), None)
        tail = ""
        if failed is not None and failed.script_id:
            lines = readable(env.logs(failed.script_id, tail=LOG_TAIL))
            if lines:
                tail = f"--- last lines of {failed.script_id}'s log ---\n" + "\n".join(lines)
        raise StepFailed(f"Workflow [{project.name}] failed at {result.error}", detail=tail)
    return result


def use_marvin(marvin: target.MarvinTarget, local_log: Path | None) -> None:
    """Say which Marvin a run uses (``local_log``: the local one's log); a remote one that
    does not answer stops the run here, before any script is called."""
    from trek_tasks.http import shown_url
    from trek_tasks.progress import MarvinUsed

    source = local_log if marvin.local else marvin.source
    emit(MarvinUsed(shown_url(marvin.url), marvin.local, source))
    target.check_answers(marvin)


def marvin_for(folder: Path, config: Any) -> target.MarvinTarget:
    """The Marvin of a lone script run, said (``use_marvin``): the configured Marvin, else
    (inside a project) the project's local Marvin, started when needed, else none."""
    from trek_tasks.project import find_root_or_none

    root = None if target.is_remote(config) else find_root_or_none(folder)
    if root is None:
        marvin = target.resolve(config, None)
        use_marvin(marvin, None)
        return marvin
    env = Environment(Project.load(root))
    up_marvin(env)
    marvin = target.resolve(config, env)
    use_marvin(marvin, env.state.marvin_log)
    return marvin


def run_script(script: Script, localhost: bool = False) -> dict[str, Any]:
    """Start one script folder of any kind on its own (``trek run<kind>``), call it with
    its ``inputs/event.yml`` (and ``localhost: true`` with ``localhost``, for the kinds
    that have it); its outputs."""
    from trek_tasks.config import Config
    from trek_tasks.environment import env_strings, load_runtime
    from trek_tasks.project import find_root_or_none

    folder = script.path
    if localhost and not script.kind.localhost:
        raise BadInput(f"{script.kind.name} scripts have no --localhost", "--localhost")
    root = find_root_or_none(folder)
    config = Config.load(root, folder)
    event_path = folder / "inputs" / "event.yml"
    inputs = load_yaml(event_path) if event_path.is_file() else {}
    if inputs is not None and not isinstance(inputs, dict):
        raise BadInput("the script's inputs must be a mapping", display(event_path))
    inputs = {**(inputs or {}), **({"localhost": True} if localhost else {})}
    marvin = marvin_for(folder, config)
    runtime = load_runtime(str(config["runtime"]))
    log_path = StateLayout.for_project(folder).runblcks_log
    log_path.unlink(missing_ok=True)
    handle = runtime.start(script, 0, env_strings(config["envs"]), log_path, str(root or folder))
    invoker = HttpInvoker({script.id: handle.url})
    settings = RunSettings(
        name=script.id,
        run_id=new_run_id(),
        event={},
        paras={},
        overrides={},
        timeout=float(config["action_timeout"]),
        marvin_url=marvin.url_for_script(runtime),
        token=marvin.token,
    )
    try:
        event = script_event(script.id, inputs, settings)
        outputs = invoker(script.id, event, settings.timeout)
    except StepFailed as err:
        tail = "\n".join(readable(runtime.logs(handle, False, LOG_TAIL)))
        raise StepFailed(f"{script.id} {err.message}", detail=tail) from None
    finally:
        invoker.close()
        runtime.stop(handle)
    return outputs

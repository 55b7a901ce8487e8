"""Local runs: bring the environment up, run the workflow, report, record.

``trek initenv/shutdownenv/logs/run/runblcks`` and the doit ``up:*``/``run`` tasks
call these functions.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from trek_tasks.engine import Engine, HttpInvoker, NodeRun, RunResult, RunSettings, script_event
from trek_tasks.environment import Environment
from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.files import display, dump_json, load_yaml, write_atomic
from trek_tasks.marvin.client import MarvinClient
from trek_tasks.project import Project, Script
from trek_tasks.runtimes.base import file_digests
from trek_tasks.runtimes.local import tail_lines

LOG_TAIL = 20


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
    click.echo(f"starting {label}..." if reason == "not running" else f"restart {name}: {reason}")
    start()
    return reason


def up_script(env: Environment, script: Script, force: bool = False) -> str | None:
    """Start or restart ``script`` when it is not up to date."""
    reason = env.stale_reason(script)
    return bring_up(script.id, f"blcks {script.id}", reason, force, lambda: env.up(script))


def up_marvin(env: Environment, force: bool = False) -> str | None:
    """Start or restart the local Marvin when needed (never for a remote ``marvin_url``)."""
    if env.project.config["marvin_url"]:
        return None
    reason = env.marvin_stale_reason()
    return bring_up("local Marvin", "local Marvin", reason, force, env.marvin_up)


def initenv(project: Project, actions: tuple[str, ...], no_overwrite: bool) -> None:
    """Start the runtime of each script (all the graph uses by default) and the local Marvin."""
    missing = project.missing_scripts() if not actions else []
    if missing:
        raise BadInput(f"scripts not installed: {', '.join(missing)}; run `trek install`")
    env = Environment(project)
    click.echo("Starting environment...")
    for script in select_scripts(project, actions):
        up_script(env, script, force=not no_overwrite)
    up_marvin(env, force=not no_overwrite)
    click.echo("Done")


def shutdownenv(project: Project, actions: tuple[str, ...], all_: bool) -> None:
    env = Environment(project)
    click.echo("Closing environment...")
    if all_ or not actions:
        for script_id in env.started_ids():
            click.echo(f"closing blcks {script_id}...")
        env.shutdown_all()
        click.echo("closing local Marvin...")
    else:
        for script in select_scripts(project, actions):
            click.echo(f"closing blcks {script.id}...")
            env.down(script.id)
    click.echo("Done")


def show_logs(project: Project, actions: tuple[str, ...], follow: bool, tail: int | None) -> None:
    env = Environment(project)
    ids = list(actions) or env.started_ids()
    handles = []
    for script_id in ids:
        handle = env.handle(script_id)
        if handle is None:
            raise BadInput(f"{script_id} has no logs; start it with `trek initenv`", "ACTIONS")
        handles.append(handle)
    if follow and len(handles) > 1:
        raise BadInput("--follow takes one script", "ACTIONS")
    for handle in handles:
        prefix = f"[{handle.script_id}] " if len(handles) > 1 else ""
        for line in env.runtime.logs(handle, follow, tail):
            click.echo(prefix + line)


@contextlib.contextmanager
def run_lock(project: Project) -> Iterator[None]:
    """One run per project at a time."""
    path = project.state_dir / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise StepFailed(
                f"another `trek run` is in progress on this project (pid {holder}); "
                "wait for it or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    """Prints what each script logged while its node ran (``--detail``)."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.offsets: dict[str, int] = {}
        for script_id in env.started_ids():
            self.offsets[script_id] = self._size(script_id)

    def _size(self, script_id: str) -> int:
        try:
            return self.env.log_path(script_id).stat().st_size
        except OSError:
            return 0

    def __call__(self, run: NodeRun) -> None:
        if not run.script_id or run.status == "reused":
            return
        path = self.env.log_path(run.script_id)
        start = self.offsets.get(run.script_id, 0)
        try:
            with open(path, "rb") as handle:
                handle.seek(start)
                chunk = handle.read()
        except OSError:
            return
        self.offsets[run.script_id] = start + len(chunk)
        for line in chunk.decode(errors="replace").splitlines():
            click.echo(f"    {run.script_id} | {line}")


def print_summary(result: RunResult, messages: list[dict[str, Any]]) -> None:
    click.echo("Summary:")
    started = sorted(result.nodes.values(), key=lambda n: (n.started == 0, n.started))
    for run in started:
        label = run.script_id or run.type
        click.echo(f"  {run.id:>4}  {label:<20} {run.status:<8} {run.duration * 1000:8.1f} ms")
    if messages:
        click.echo("Messages sent:")
        for message in messages:
            click.echo(
                f"  [{message.get('channel_name') or message['channel_id']}] {message['message']}"
            )


def save_record(project: Project, result: RunResult) -> Path:
    runs = project.state_dir / "runs"
    path = runs / f"{result.run_id}.json"
    text = dump_json(result.to_json())
    write_atomic(path, text)
    write_atomic(runs / "last.json", text)
    return path


def code_digests(env: Environment) -> dict[str, str]:
    """Per script the graph uses: a digest of its files and its config envs."""
    digests = {}
    for script in env.project.used_scripts():
        parts = {"files": file_digests(script), "envs": env.script_env(script)}
        digests[script.id] = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return digests


def run_digest(project: Project) -> str:
    """What a run's result depends on besides the files doit already tracks: the code and
    config envs of every script the graph uses, and the settings the engine reads."""
    env = Environment(project)
    parts: dict[str, Any] = {
        "timeout": project.config["action_timeout"],
        "marvin_url": project.config["marvin_url"],
        "inventory": env.inventory_digest(),
        "scripts": code_digests(env),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def last_run(project: Project) -> dict[str, NodeRun]:
    """The nodes of the last recorded run (empty when there is none or it is unreadable)."""
    path = project.state_dir / "runs" / "last.json"
    try:
        data = json.loads(path.read_text())
        return {str(n["id"]): NodeRun(**n) for n in data["nodes"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def run_workflow(
    project: Project,
    detail: bool = False,
    interval: float = 0.0,
    reuse: bool = False,
) -> RunResult:
    """Run the workflow against the running environment; raises StepFailed on a failed run.

    With ``reuse``, nodes whose code, config envs and inputs equal the last run's, and
    whose upstream did not re-execute, take their outputs from the last run record."""
    env = Environment(project)
    local_marvin = not project.config["marvin_url"]
    marvin_url = env.marvin_url if local_marvin else str(project.config["marvin_url"])
    token = env.token()
    ports = {}
    for script in project.used_scripts():
        handle = env.handle(script.id)
        if handle is None:
            raise StepFailed(f"{script.id} is not running; run `trek initenv`")
        ports[script.id] = handle.port
    settings = RunSettings(
        name=project.name,
        run_id=new_run_id(),
        event=read_event(project),
        paras=read_paras(project),
        overrides=read_overrides(project),
        timeout=float(project.config["action_timeout"]),
        token=token,
        marvin_url=marvin_url,
        interval=interval,
        reuse=last_run(project) if reuse else {},
        code_digests=code_digests(env),
    )
    marvin = MarvinClient(marvin_url, token)
    first_message = last_message_id(marvin) if local_marvin else 0
    invoker = HttpInvoker(ports)
    with run_lock(project):
        try:
            result = Engine(
                project.workflow, settings, invoker, on_node=LogFollower(env) if detail else None
            ).run()
        finally:
            invoker.close()
        save_record(project, result)
    messages = marvin.get(f"/api/v1/messages?after={first_message}") if local_marvin else []
    print_summary(result, messages)
    if result.status == "failed":
        failed = next((n for n in result.nodes.values() if n.status == "failed"), None)
        tail = ""
        if failed is not None and failed.script_id:
            lines = tail_lines(env.log_path(failed.script_id), LOG_TAIL)
            if lines:
                tail = f"\n--- last lines of {failed.script_id}'s log ---\n" + "\n".join(lines)
        raise StepFailed(f"Workflow [{project.name}] failed at {result.error}{tail}")
    return result


def marvin_for(folder: Path, config: Any) -> tuple[str, str]:
    """Marvin URL and token for a lone script run: the configured Marvin, else (inside a
    project) the project's local Marvin, started when needed."""
    from trek_tasks.project import find_root

    if config["marvin_url"]:
        return str(config["marvin_url"]), str(config["marvin_JWT"])
    try:
        root = find_root(folder)
    except BadInput:
        return "", ""
    env = Environment(Project.load(root))
    up_marvin(env)
    return env.marvin_url, env.token()


def runblcks(path: Path) -> dict[str, Any]:
    """Start one script folder on its own, call it with its ``inputs/event.yml``, print outputs."""
    from trek_tasks.config import Config
    from trek_tasks.environment import env_strings, free_port, load_runtime
    from trek_tasks.project import find_root

    folder = path.resolve()
    script = Script.load(folder, installed=False)
    if script is None:
        raise BadInput(f"no {folder.name}.para here; not a blcks script folder", display(folder))
    try:
        root: Path | None = find_root(folder)
    except BadInput:
        root = None
    config = Config.load(root, folder)
    event_path = folder / "inputs" / "event.yml"
    inputs = load_yaml(event_path) if event_path.is_file() else {}
    if inputs is not None and not isinstance(inputs, dict):
        raise BadInput("the script's inputs must be a mapping", display(event_path))
    marvin_url, token = marvin_for(folder, config)
    runtime = load_runtime(str(config["runtime"]))
    log_path = folder / ".trek" / "runblcks.log"
    log_path.unlink(missing_ok=True)
    handle = runtime.start(script, free_port(), env_strings(config["envs"]), log_path)
    invoker = HttpInvoker({script.id: handle.port})
    settings = RunSettings(
        name=script.id,
        run_id=new_run_id(),
        event={},
        paras={},
        overrides={},
        timeout=float(config["action_timeout"]),
        marvin_url=marvin_url,
        token=token,
    )
    try:
        event = script_event(script.id, inputs or {}, settings)
        outputs = invoker(script.id, event, settings.timeout)
    except StepFailed as err:
        tail = "\n".join(tail_lines(log_path, LOG_TAIL))
        raise StepFailed(f"{script.id} {err.message}\n{tail}") from None
    finally:
        invoker.close()
        runtime.stop(handle)
    click.echo(json.dumps(outputs, indent=2, ensure_ascii=False))
    return outputs

"""Recorded runs as regression tests: ``trek record`` writes a fixture, ``trek replay``
(the pytest plugin and ``doit test:recorded`` too) checks the current code against it.

A fixture is a folder ``tests/recorded/<name>/`` (docs/recorded.md): ``fixture.yml`` (its
format, the run, the ignore patterns, each action node's script, inputs and outputs),
``event.yml`` (the trigger event), ``data.yml`` and ``inventory.yml`` (what the run's
local Marvin served, webhooks left out). A replay calls each recorded node, in the
recorded order, with its recorded inputs, on the scripts brought up as ``trek run``
brings them up, against a throwaway local Marvin seeded from the fixture's inventory,
and lists every output that differs (after the ignore patterns).
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trek_tasks.errors import BadInput, StepFailed, TrekError
from trek_tasks.files import Document, content_digest, display, load_marked, load_yaml, write_atomic
from trek_tasks.marvin.target import MarvinTarget
from trek_tasks.project import Project, Script

if TYPE_CHECKING:
    from trek_tasks.environment import Environment

FORMAT = 1  # what fixture.yml's `format` says; bumped when what a fixture means changes
RECORDED = Path("tests") / "recorded"
FIXTURE = "fixture.yml"
EVENT = "event.yml"
DATA = "data.yml"
INVENTORY = "inventory.yml"
REPLAY_ROLE = "replay-marvin"  # not "marvin...": the project's own Marvin is found by that
PORT_TRIES = 5
MISSING = "(none)"


@dataclass(frozen=True)
class RecordedNode:
    """One action node as the run did it."""

    id: str
    script: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    ignore: tuple[str, ...] = ()  # patterns for this node only, besides the fixture's


@dataclass(frozen=True)
class Fixture:
    folder: Path
    workflow: str
    run: str
    ignore: tuple[str, ...]
    nodes: tuple[RecordedNode, ...]

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def inventory(self) -> Path:
        return self.folder / INVENTORY

    def files(self) -> list[Path]:
        return [
            p for p in (self.folder / n for n in (FIXTURE, EVENT, DATA, INVENTORY)) if p.is_file()
        ]

    @classmethod
    def load(cls, folder: Path, root: Path | None = None) -> Fixture:
        """Read ``folder/fixture.yml``; bad input (``file:line:col``) when it is not one
        this trek reads, an older or newer format included."""
        path = folder / FIXTURE
        if not path.is_file():
            raise BadInput(f"no {FIXTURE} here; make one with `trek record`", display(folder, root))
        doc = load_marked(path, root)
        if not isinstance(doc.data, dict):
            raise BadInput("a fixture must be a mapping", doc.where())
        version = doc.data.get("format")
        if not isinstance(version, int) or isinstance(version, bool):
            raise BadInput(
                f"'format' must be a number (this trek writes {FORMAT})", doc.where(("format",))
            )
        if version < FORMAT:
            raise BadInput(
                f"fixture format {version} was written by an older trek; this one reads format "
                f"{FORMAT}: record the run again with `trek record`",
                doc.where(("format",)),
            )
        if version > FORMAT:
            raise BadInput(
                f"fixture format {version} was written by a newer trek; this one reads format "
                f"{FORMAT}: upgrade trek-tasks",
                doc.where(("format",)),
            )
        nodes = []
        for index, item in enumerate(_typed(doc, ("nodes",), list)):
            at = ("nodes", index)
            if not isinstance(item, dict):
                raise BadInput("a recorded node must be a mapping", doc.where(at))
            nodes.append(
                RecordedNode(
                    str(_typed(doc, (*at, "id"), str)),
                    _typed(doc, (*at, "script"), str),
                    _typed(doc, (*at, "inputs"), dict),
                    _typed(doc, (*at, "outputs"), dict),
                    _patterns(doc, (*at, "ignore")),
                )
            )
        return cls(
            folder,
            _typed(doc, ("workflow",), str),
            _typed(doc, ("run",), str),
            _patterns(doc, ("ignore",)),
            tuple(nodes),
        )


_TYPE_NAMES: dict[type, str] = {str: "a string", list: "a list", dict: "a mapping"}


def _typed(doc: Document, path: tuple[Any, ...], kind: type) -> Any:
    value = _at(doc.data, path)
    if kind is str and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a node id YAML read as a number
    if not isinstance(value, kind):
        raise BadInput(f"'{path[-1]}' must be {_TYPE_NAMES[kind]}", doc.where(path))
    return value


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    """The value at ``path`` (mapping keys, list indexes), None where there is none."""
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _patterns(doc: Document, path: tuple[Any, ...]) -> tuple[str, ...]:
    """An optional list of ignore patterns, each checked (``pattern_problem``)."""
    if _at(doc.data, path) is None:
        return ()
    found = _typed(doc, path, list)
    for index, pattern in enumerate(found):
        problem = pattern_problem(pattern)
        if problem:
            raise BadInput(problem, doc.where((*path, index)))
    return tuple(found)


def pattern_problem(pattern: object) -> str | None:
    """Why ``pattern`` is no ignore pattern (dot-separated segments, each a glob, ``**``
    any number of segments), or None."""
    if not isinstance(pattern, str) or not pattern:
        return "an ignore pattern must be a non-empty string such as outputs.*.timestamp"
    if any(not part for part in pattern.split(".")):
        return f"ignore pattern '{pattern}' has an empty segment (two dots, or a dot at an end)"
    return None


def ignored(path: str, patterns: Sequence[str]) -> bool:
    """Whether a pattern matches ``path`` (``outputs.hosts.0.id``) or a leading part of it
    (``outputs.hosts`` leaves out the whole list)."""
    parts = path.split(".")
    return any(_matches(p.split("."), parts) for p in patterns)


def _matches(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return True  # the pattern named a leading part: all below it is left out
    if pattern[0] == "**":
        return any(_matches(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and _matches(pattern[1:], parts[1:])
    )


@dataclass(frozen=True)
class Change:
    """One output that differs from the recording (values as JSON, ``(none)`` when absent)."""

    node: str
    script: str
    path: str
    recorded: str
    now: str

    def line(self) -> str:
        return f"node {self.node} ({self.script}) {self.path}: {self.recorded} -> {self.now}"


@dataclass(frozen=True)
class Replayed:
    fixture: Fixture
    changes: tuple[Change, ...]
    ignored: int  # differing values the patterns left out

    @property
    def passed(self) -> bool:
        return not self.changes

    def summary(self, root: Path) -> str:
        """``tests/recorded/<name>: 3 nodes as recorded`` or ``...: 1 of 3 nodes changed``."""
        count = len(self.fixture.nodes)
        nodes = f"{count} node{'s' if count != 1 else ''}"
        changed = len({c.node for c in self.changes})
        said = f"{changed} of {nodes} changed" if changed else f"{nodes} as recorded"
        if self.ignored:
            said += f" ({self.ignored} ignored difference{'s' if self.ignored != 1 else ''})"
        return f"{display(self.fixture.folder, root)}: {said}"

    def report(self, root: Path) -> str:
        """The summary, then one indented line per change: what a failure shows."""
        return "\n".join([self.summary(root), *(f"  {c.line()}" for c in self.changes)])


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def compare(
    node: RecordedNode, recorded: Any, now: Any, path: str, patterns: Sequence[str]
) -> tuple[list[Change], int]:
    """The changes from ``recorded`` to ``now`` below ``path``, leaf by leaf (keys of
    mappings, indexes of lists), and how many the patterns left out."""
    if ignored(path, patterns):
        return [], int(recorded != now)
    if isinstance(recorded, dict) and isinstance(now, dict):
        keys = [*recorded, *(k for k in now if k not in recorded)]
        pairs = [(f"{path}.{k}", recorded.get(k, _ABSENT), now.get(k, _ABSENT)) for k in keys]
    elif isinstance(recorded, list) and isinstance(now, list):
        size = max(len(recorded), len(now))
        pairs = [
            (
                f"{path}.{i}",
                recorded[i] if i < len(recorded) else _ABSENT,
                now[i] if i < len(now) else _ABSENT,
            )
            for i in range(size)
        ]
    else:
        if recorded == now and type(recorded) is type(now):
            return [], 0
        shown = [MISSING if v is _ABSENT else _shown(v) for v in (recorded, now)]
        return [Change(node.id, node.script, path, *shown)], 0
    changes: list[Change] = []
    left_out = 0
    for sub_path, old, new in pairs:
        found, skipped = compare(node, old, new, sub_path, patterns)
        changes.extend(found)
        left_out += skipped
    return changes, left_out


_ABSENT: Any = object()


def fixture_folders(project: Project) -> list[Path]:
    """The fixtures of the project (``tests/recorded/*/fixture.yml``), by name."""
    base = project.root / RECORDED
    return sorted(p.parent for p in base.glob(f"*/{FIXTURE}")) if base.is_dir() else []


# recording -----------------------------------------------------------------


def record(project: Project, run: str = "", name: str = "", force: bool = False) -> Fixture:
    """Turn the run record ``run`` (default: the last run) into the fixture
    ``tests/recorded/<name>/`` (default name: the run id)."""
    from trek_tasks.names import name_problem
    from trek_tasks.runlog import read_record, record_ids

    state = project.state
    data = read_record(state.run_record(run) if run and run != "last" else state.last_run)
    if data is None:
        known = ", ".join(record_ids(state)[:5]) or "none; run `trek run` first"
        raise BadInput(f"no run record {run or 'of the last run'}; recorded runs: {known}", "RUN")
    run_id = str(data.get("run_id", ""))
    if data.get("status") != "done":
        raise BadInput(
            f"run {run_id} {data.get('status')}: {data.get('error')}; record a run that finished",
            "RUN",
        )
    read = data.get("read")
    if not isinstance(read, dict):
        raise BadInput(
            f"run {run_id} keeps no digest of the inventory its Marvin served (a remote "
            "Marvin, or an older trek); record a run with the local Marvin",
            "RUN",
        )
    inventory = project.path("local_inventory_file")
    data_file = project.path("input_data_path")
    for key, path in (("inventory", inventory), ("data", data_file)):
        if content_digest(path) != read.get(key):
            raise BadInput(
                f"{display(path, project.root)} changed since run {run_id}; a fixture holds "
                "what the run read: run `trek run` again, then `trek record`",
                "RUN",
            )
    name = name or run_id
    problem = name_problem(name) if name != run_id else None
    if problem:
        raise BadInput(problem, "--name")
    nodes = data["nodes"]
    actions = [
        n for n in nodes if n.get("type") == "action" and n.get("status") in ("done", "reused")
    ]
    if not actions:
        raise BadInput(f"run {run_id} called no script; there is nothing to replay", "RUN")
    folder = project.root / RECORDED / name
    if folder.exists() and not force:
        raise BadInput(
            "a fixture of that name exists; pass --force to replace it or --name for another",
            display(folder, project.root),
        )
    kept = _kept_patterns(folder, project.root)
    trigger: dict[str, Any] = next((n for n in nodes if n.get("type") == "trigger"), {})
    fixture = {
        "format": FORMAT,
        "workflow": data.get("workflow", project.name),
        "run": run_id,
        "ignore": list(kept.get("", ())),
        "nodes": [
            {
                "id": n["id"],
                "script": n["script_id"],
                "inputs": n["inputs"],
                "outputs": n["outputs"],
                **({"ignore": list(kept[n["id"]])} if kept.get(n["id"]) else {}),
            }
            for n in actions
        ],
    }
    files = {
        FIXTURE: HEADER.format(run=run_id) + _yaml(fixture),
        EVENT: _yaml(trigger.get("outputs") or {}),
        INVENTORY: _yaml(
            _without_webhooks(load_yaml(inventory, project.root) if inventory.is_file() else {})
        ),
    }
    if data_file.is_file():
        files[DATA] = data_file.read_text(encoding="utf-8")
    _write_folder(folder, files, project.root)
    return Fixture.load(folder, project.root)


HEADER = """\
# Run {run}, recorded by `trek record`. `trek replay` calls each node below
# with its inputs against the current code and fails when an output differs. `ignore`
# takes patterns of output paths to leave out (here for every node, or under a node for
# it): segments joined by '.', each a glob, '**' any number of them (docs/recorded.md).
"""


def _yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _without_webhooks(inventory: Any) -> Any:
    """The inventory without channel webhooks: a fixture is committed, a webhook URL may
    be a secret, and a replay must not post to a real chat."""
    if not isinstance(inventory, dict):
        return inventory or {}
    channels = inventory.get("channels")
    if isinstance(channels, list):
        inventory = {
            **inventory,
            "channels": [
                {k: v for k, v in c.items() if k != "webhook"} if isinstance(c, dict) else c
                for c in channels
            ],
        }
    return inventory


def _kept_patterns(folder: Path, root: Path) -> dict[str, tuple[str, ...]]:
    """The ignore patterns of the fixture a re-recording replaces ("" for the fixture's
    own), so ``--force`` keeps what the user wrote; none when there is no readable one."""
    try:
        old = Fixture.load(folder, root)
    except TrekError:
        return {}
    return {"": old.ignore, **{n.id: n.ignore for n in old.nodes}}


def _write_folder(folder: Path, files: dict[str, str], root: Path) -> None:
    """Write ``files`` into a new folder, then put it in place of ``folder``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for file_name, text in files.items():
            write_atomic(staging / file_name, text, root=root)
        os.chmod(staging, 0o755)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# replaying -----------------------------------------------------------------


def replay(project: Project, folders: Sequence[Path] = ()) -> list[Replayed]:
    """Replay the fixtures in ``folders`` (default: all of the project's); each one's
    changes. Every fixture is read first, so bad input stops before anything starts."""
    from trek_tasks.environment import Environment

    chosen = list(folders) or fixture_folders(project)
    if not chosen:
        raise BadInput(
            f"no recorded runs in {RECORDED.as_posix()}/; make one with `trek record`",
            display(project.root),
        )
    fixtures = [Fixture.load(folder, project.root) for folder in chosen]
    scripts = _scripts(project, fixtures)
    env = Environment(project)
    _bring_up(env, scripts)
    return [_replay(project, env, fixture) for fixture in fixtures]


def _scripts(project: Project, fixtures: Sequence[Fixture]) -> list[Script]:
    """The project's scripts the fixtures call; bad input naming one it has not."""
    needed: dict[str, Script] = {}
    for fixture in fixtures:
        for node in fixture.nodes:
            script = project.scripts.get(node.script)
            if script is None:
                raise BadInput(
                    f"node {node.id} calls script {node.script}, which the project does not "
                    "have (installed scripts come with `trek install`)",
                    display(fixture.folder / FIXTURE, project.root),
                )
            needed[script.id] = script
    return list(needed.values())


def _bring_up(env: Environment, scripts: Sequence[Script]) -> None:
    """Build each script's environment and (re)start it when needed, as ``trek run``
    does (``env:<id>``, ``up:<id>``)."""
    from trek_tasks.localrun import up_script

    for script in scripts:
        if env.runtime.env_problem(script) is not None:
            env.install_env(script)
        up_script(env, script)


@dataclass(frozen=True)
class _Seeded:
    """A replay Marvin as ``target.local_token`` sees it: its inventory and secret."""

    marvin_url: str
    inventory: Path
    key: str

    def secret(self) -> str:
        return self.key


@contextlib.contextmanager
def replay_marvin(env: Environment, inventory: Path) -> Iterator[MarvinTarget]:
    """A local Marvin of the project's own, seeded from ``inventory`` with a fresh
    database, for one replay; stopped and removed after it."""
    from trek_tasks.environment import PORT_IN_USE, MarvinFiles, spawn_marvin
    from trek_tasks.marvin.target import local_token
    from trek_tasks.runtimes import process

    env.state.replays.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="replay-", dir=env.state.replays))
    try:
        key = secrets.token_urlsafe(32)
        files = MarvinFiles(
            folder / "marvin.sqlite", inventory, folder / "secret", folder / "marvin.log"
        )
        write_atomic(files.secret_file, key, private=True)
        for _ in range(PORT_TRIES):
            port = process.free_port()
            try:
                pid, token = spawn_marvin(
                    env.runtime, env.identity, files, port, REPLAY_ROLE, "replay Marvin"
                )
                break
            except process.Exited as err:
                if err.code != PORT_IN_USE:
                    raise
        else:
            raise StepFailed(f"no free port for the replay Marvin in {PORT_TRIES} tries")
        url = f"http://127.0.0.1:{port}"
        try:
            yield MarvinTarget(url, local_token(_Seeded(url, inventory, key)), local=True)
        finally:
            process.stop(pid, token, env.identity)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _replay(project: Project, env: Environment, fixture: Fixture) -> Replayed:
    from trek_tasks.engine import RunSettings, apply_defaults, check_inputs, script_event
    from trek_tasks.invoker import HttpInvoker
    from trek_tasks.localrun import new_run_id

    scripts = {node.script: project.scripts[node.script] for node in fixture.nodes}
    urls = {}
    for script_id in scripts:
        handle = env.handle(script_id)
        if handle is None:
            raise StepFailed(f"{script_id} is not running")
        urls[script_id] = handle.url
    changes: list[Change] = []
    left_out = 0
    with replay_marvin(env, fixture.inventory) as marvin:
        settings = RunSettings(
            name=fixture.workflow,
            run_id=new_run_id(),
            event={},
            paras={},
            overrides={},
            timeout=float(project.config["action_timeout"]),
            token=marvin.token,
            marvin_url=marvin.url_for_script(env.runtime),
        )
        invoker = HttpInvoker(urls)
        try:
            for node in fixture.nodes:
                para = load_yaml(scripts[node.script].para_path, project.root)
                para = para if isinstance(para, dict) else {}
                inputs = copy.deepcopy(node.inputs)
                apply_defaults(inputs, para)  # as a run does: a default the para added now
                try:
                    check_inputs(inputs, para)
                    event = script_event(node.script, inputs, settings)
                    outputs = invoker(node.script, event, settings.timeout)
                except TrekError as err:
                    failed = Change(
                        node.id, node.script, "outputs", _shown(node.outputs), f"failed: {err}"
                    )
                    changes.append(failed)
                    continue
                patterns = (*fixture.ignore, *node.ignore)
                found, skipped = compare(node, node.outputs, outputs, "outputs", patterns)
                changes.extend(found)
                left_out += skipped
        finally:
            invoker.close()
    return Replayed(fixture, tuple(changes), left_out)


def changed_line(results: Sequence[Replayed]) -> str | None:
    """``1 of 2 recorded runs changed``, or None when every replay passed."""
    failed = sum(1 for r in results if not r.passed)
    if not failed:
        return None
    count = len(results)
    return f"{failed} of {count} recorded run{'s' if count != 1 else ''} changed"


def check(results: Sequence[Replayed], root: Path) -> None:
    """StepFailed (each changed fixture's report below it) when any replay changed."""
    changed = changed_line(results)
    if changed:
        detail = "\n".join(r.report(root) for r in results if not r.passed)
        raise StepFailed(changed, detail=detail)

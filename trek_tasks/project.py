"""The project as plain data: root, config, workflow, scripts (own + installed).

Loading reads YAML/JSON and nothing else, so building the doit task list stays cheap.
Content errors are left for ``validate`` to report all at once; only what makes the
project unreadable (no manifest, unparsable files) raises here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from trek_tasks.config import PATH_KEYS, Config
from trek_tasks.errors import BadInput
from trek_tasks.files import (
    Document,
    display,
    file_problem,
    load_json,
    load_marked,
    load_yaml,
    shown,
)
from trek_tasks.graph import Workflow
from trek_tasks.kinds import ScriptKind, all_kinds, default_kind, find_kind, load_kind
from trek_tasks.kinds.base import default_code_base, para_file
from trek_tasks.state import StateLayout

MANIFEST = "manifest.json"
PACKAGES = "packages.json"
LOCK = "packages.lock.json"
INSTALLED_DIR = "trek_packages"
DEFAULT_ENTRY = "src/graph.yml"


REBUILT = frozenset({INSTALLED_DIR, "bin", "__pycache__", ".pytest_cache"})


def copy_sources(src: Path, dest: Path) -> Path:
    """Copy a project without what trek rebuilds: state under ``.trek/`` (its config
    stays), installed scripts, packs and caches."""
    import shutil

    def rebuilt(folder: str, names: list[str]) -> set[str]:
        if Path(folder).name == ".trek":
            return {name for name in names if name != "config.json"}
        return {name for name in names if name in REBUILT}

    shutil.copytree(src, dest, ignore=rebuilt)
    return dest


def find_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding ``manifest.json``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if file_problem(folder / MANIFEST) is None:  # no OSError for a path too long
            return folder
    raise BadInput(
        "not a Trek project (no manifest.json here or above); "
        "run `trek createproject NAME` or `trek init`",
        display(start),
    )


def find_root_or_none(start: Path) -> Path | None:
    """``find_root``, or None outside a project (for commands that also work on a lone
    script folder)."""
    try:
        return find_root(start)
    except BadInput:
        return None


@dataclass(frozen=True)
class Script:
    """One script folder of some kind: the project's own or an installed one."""

    id: str
    path: Path
    installed: bool
    version: str
    kind: ScriptKind = field(default_factory=default_kind)

    @property
    def para_path(self) -> Path:
        return para_file(self.path, self.id)

    @property
    def requirements(self) -> Path:
        return self.kind.requirements(self.path)

    def files(self) -> list[Path]:
        """What the script is made of (its kind says; editor and cache files left out)."""
        return self.kind.files(self.path, self.id)

    def main_problem(self) -> str | None:
        """What keeps the script from running: its kind's main file (``handler/handler.py``)
        is missing, with the command that adds it; None when it is there."""
        main = self.kind.main_file(self.path, self.id)
        if main.is_file():
            return None
        return (
            f"{self.kind.name} script '{self.id}' has no {main.relative_to(self.path).as_posix()}; "
            f"run `trek init{self.kind.name} -p {display(self.path)}`"
        )

    @classmethod
    def load(
        cls,
        folder: Path,
        installed: bool,
        fallback: ScriptKind | None = None,
        script_id: str | None = None,
    ) -> Script | None:
        """Read the script ``script_id`` (default: the folder's name) in ``folder``; None
        when it holds no ``<id>.para``. A folder no kind recognises by its main file is
        of kind ``fallback`` (default: the first kind)."""
        script_id = script_id or folder.name
        kind = find_kind(folder, script_id, fallback)
        if kind is None:
            return None
        data = load_yaml(para_file(folder, script_id))
        version = str(data.get("version", "")) if isinstance(data, dict) else ""
        return cls(script_id, folder, installed, version, kind)


def script_at(folder: Path, kind_name: str) -> Script:
    """The script of kind ``kind_name`` in ``folder`` (``packblcks``, ``runblcks``);
    BadInput saying why the folder is not one."""
    kind = load_kind(kind_name)
    script = Script.load(folder, installed=False, fallback=kind)
    if script is None:
        raise BadInput(
            f"no {folder.name}.para here; not a {kind.name} script folder", display(folder)
        )
    if script.kind is not kind:
        raise BadInput(
            f"a {script.kind.name} script folder, not a {kind.name} one", display(folder)
        )
    problem = script.main_problem()
    if problem:
        raise BadInput(problem, display(folder))
    return script


def scan_scripts(
    folder: Path, installed: bool, fallback: ScriptKind | None = None
) -> dict[str, Script]:
    """The scripts in the sub-folders of ``folder`` by id (``Script.load`` for each)."""
    scripts: dict[str, Script] = {}
    if folder.is_dir():
        for child in sorted(folder.iterdir()):
            if child.is_dir() and not child.name.startswith("."):
                script = Script.load(child, installed, fallback)
                if script is not None:
                    scripts[script.id] = script
    return scripts


def own_scripts(root: Path, config: Config) -> dict[str, Script]:
    """The project's own scripts: every kind's code base (config), scanned as that kind."""
    scripts: dict[str, Script] = {}
    for kind in all_kinds():
        base = root / str(config.get(kind.code_base_key) or default_code_base(kind))
        scripts.update(scan_scripts(base, installed=False, fallback=kind))
    return scripts


def workflow_entry(root: Path, manifest: Document, must_exist: bool = True) -> Path:
    """The workflow file manifest.json names (``entry``, default src/graph.yml): a
    relative path to a file inside the project. Anything else (an absolute path, a path
    out of the project, a folder, a device) is BadInput at the ``entry`` value."""
    data = manifest.data
    value = data.get("entry", DEFAULT_ENTRY) if isinstance(data, dict) else None
    where = manifest.where(("entry",))
    if not isinstance(value, str) or not value:
        raise BadInput(f"'entry' must name the workflow file, e.g. {DEFAULT_ENTRY!r}", where)
    entry = root / value
    try:
        inside = entry.resolve().is_relative_to(root.resolve())
    except ValueError:  # a NUL byte, a lone surrogate
        raise BadInput(f"'entry' names {shown(value)}: {file_problem(entry)}", where) from None
    if Path(value).is_absolute() or not inside:
        raise BadInput(f"'entry' must name a file inside the project, not {shown(value)}", where)
    problem = file_problem(entry) if must_exist else None
    if problem:
        raise BadInput(f"'entry' names {shown(value)}: {problem}", where)
    return entry


@dataclass(frozen=True)
class Project:
    """Everything the tasks need to know about a project, read once."""

    root: Path
    config: Config
    entry: Path
    workflow: Workflow
    own: dict[str, Script]
    installed: dict[str, Script]
    packages: dict[str, str]

    @classmethod
    def load(cls, start: Path | None = None, workflow: bool = True) -> Project:
        """Read the project; ``workflow=False`` skips the workflow file, for steps that
        need only the root, config and scripts (stopping runtimes of a broken project)."""
        root = find_root(start or Path.cwd())
        config = Config.load(root)
        for key in sorted(PATH_KEYS):
            config.checked(key)
        entry = workflow_entry(root, load_marked(root / MANIFEST, root), must_exist=workflow)
        keep = StateLayout.for_project(root).parsed_workflow
        raw = load_yaml(entry, root, keep) if workflow else None
        packages_file = root / PACKAGES
        packages_data = load_json(packages_file, root) if packages_file.is_file() else {}
        packages = packages_data.get("packages", {}) if isinstance(packages_data, dict) else {}
        return cls(
            root=root,
            config=config,
            entry=entry,
            workflow=Workflow.from_data(raw),
            own=own_scripts(root, config),
            installed=scan_scripts(root / INSTALLED_DIR, installed=True),
            packages=packages if isinstance(packages, dict) else {},
        )

    def with_runtime(self, name: str) -> Project:
        """This project with its scripts on runtime ``name`` for one command (``--runtime``;
        "" keeps the configured one)."""
        return replace(self, config=self.config.overridden("runtime", name)) if name else self

    @property
    def name(self) -> str:
        return self.workflow.template_id or self.root.name

    @property
    def scripts(self) -> dict[str, Script]:
        """Own scripts win over installed ones of the same id."""
        return {**self.installed, **self.own}

    def used_scripts(self) -> list[Script]:
        """Scripts the workflow's action nodes run, in node order, each once."""
        scripts = self.scripts
        seen: dict[str, Script] = {}
        for node in self.workflow.nodes:
            if node.script_id and node.script_id in scripts and node.script_id not in seen:
                seen[node.script_id] = scripts[node.script_id]
        return list(seen.values())

    def missing_scripts(self) -> list[str]:
        """Script ids the workflow runs that are neither own nor installed."""
        used = {n.script_id for n in self.workflow.nodes if n.script_id}
        return sorted(used - set(self.scripts))

    def path(self, key: str) -> Path:
        """A config path setting resolved against the project root."""
        return self.root / str(self.config[key])

    @property
    def state(self) -> StateLayout:
        """Every path of this project's ``.trek/`` state."""
        return StateLayout.for_project(self.root)

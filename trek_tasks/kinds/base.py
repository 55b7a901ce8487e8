"""The ScriptKind protocol every kind of script implements, and what kinds share.

A kind knows the layout of one kind of script folder (blcks, shell, ansible,
terraform): how to recognise it, which files make it up, how it is packed, scaffolded,
served and tested. It works on folders and ids, never on ``project.Script``, so the
project can hold kinds without an import cycle.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path
from typing import NamedTuple, Protocol

from trek_tasks.files import tree_files


class Command(NamedTuple):
    """A process to run in a script folder: its arguments and the variables added to
    the environment."""

    args: list[str]
    env: dict[str, str]


class ScriptKind(Protocol):
    name: str  # the registry key; the word in messages and in `trek create<name>`
    code_base_key: str  # config key of the folder holding a project's own scripts of it
    zip_prefix: str  # a packed script is named <zip_prefix><id>-<version>.zip
    templates: str  # the template set (a folder of templates/) that scaffolds one
    sample: tuple[str, ...]  # template files `init` adds only together ({name} = the id)
    script_type: str  # the engine's scriptType of an action node running one
    # requirement lines its environment always installs besides the script's own
    # (``runtimes.base.requirements_lines``), e.g. ansible-core
    implicit_requirements: tuple[str, ...]
    localhost: bool  # whether `trek run<name>` takes --localhost (sets the input localhost)

    def detect(self, folder: Path, script_id: str) -> bool: ...  # <id>.para + its main file

    def main_file(
        self, folder: Path, script_id: str
    ) -> Path: ...  # the file a script of it cannot work without (validate requires it)

    def files(self, folder: Path, script_id: str) -> list[Path]: ...  # packed, digested, served

    def test_files(self, folder: Path) -> list[Path]: ...  # what its tests read, beyond files()

    def requirements(self, folder: Path) -> Path: ...  # what its environment installs (if there)

    def serve_command(
        self, folder: Path, python: Path, port: int
    ) -> Command: ...  # what a runtime starts, with its environment's python, to serve it

    def test_command(
        self, folder: Path, env_dir: Path
    ) -> Command: ...  # what runs its tests (in folder), given its environment

    def problems(
        self, folder: Path, script_id: str
    ) -> list[Flaw]: ...  # what keeps its files from running, beyond the para (validate)


class Flaw(NamedTuple):
    """A problem a kind finds in a script's files: where (``file:line[:col]``), what."""

    where: str
    message: str


def serve_args(kind: ScriptKind, folder: Path, python: Path, port: int) -> list[str]:
    """``python -m blcks.serve`` for a script of ``kind``: every kind is served by the SDK's
    server, which runs a non-blcks one through its runner (``blcks.tools``)."""
    return [
        *(str(python), "-m", "blcks.serve", "--script-dir", str(folder), "--port", str(port)),
        *("--kind", kind.name),
    ]


def para_file(folder: Path, script_id: str) -> Path:
    """``<id>.para``: every kind describes its inputs and outputs in one."""
    return folder / f"{script_id}.para"


def has_para_and_main(kind: ScriptKind, folder: Path, script_id: str) -> bool:
    """The usual ``detect``: ``<id>.para`` and the kind's main file are both there."""
    return para_file(folder, script_id).is_file() and kind.main_file(folder, script_id).is_file()


def default_code_base(kind: ScriptKind) -> str:
    """Where a project keeps its own scripts of ``kind`` unless config says otherwise."""
    return f"src/{kind.name}"


def member_files(
    folder: Path, script_id: str, names: tuple[str, ...], trees: tuple[str, ...]
) -> list[Path]:
    """The para, the named top-level files that exist, then every file below the named
    folders (``files.ignored`` left out): what most kinds' ``files()`` are."""
    tops = (para_file(folder, script_id), *(folder / name for name in names))
    found = [path for path in tops if path.is_file()]
    for tree in trees:
        found += tree_files(folder / tree)
    return found


def pytest_command(folder: Path, env_dir: Path) -> Command:
    """pytest on trek's interpreter (it has pytest, the SDK and trek_tasks, so a test may
    start a local Marvin) on ``tests/``, with the script and its environment's packages on
    the path, so the tests see the package versions the script runs with."""
    site = sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)})
    paths = [str(folder), site, os.environ.get("PYTHONPATH", "")]
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    return Command(args, {"PYTHONPATH": os.pathsep.join(p for p in paths if p)})


class ToolKind:
    """What the kinds a tool runs per call (shell, ansible, terraform) share: ``<id>.para``
    and the main file ``<id><main_suffix>``, a ``requirements.txt`` beside them for the
    environment, tests in ``tests/`` run with pytest, served by ``blcks.serve --kind``."""

    main_suffix: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def detect(self, folder: Path, script_id: str) -> bool:
        return (
            para_file(folder, script_id).is_file() and self.main_file(folder, script_id).is_file()
        )

    def main_file(self, folder: Path, script_id: str) -> Path:
        return folder / f"{script_id}{self.main_suffix}"

    def test_files(self, folder: Path) -> list[Path]:
        return tree_files(folder / "tests")

    def requirements(self, folder: Path) -> Path:
        return folder / "requirements.txt"

    def serve_command(self, folder: Path, python: Path, port: int) -> Command:
        return Command(serve_args(self, folder, python, port), {})  # type: ignore[arg-type]

    def test_command(self, folder: Path, env_dir: Path) -> Command:
        return pytest_command(folder, env_dir)

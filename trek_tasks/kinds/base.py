"""The ScriptKind protocol every kind of script implements, and what kinds share.

A kind knows the layout of one kind of script folder (blcks, later shell, ansible,
terraform): how to recognise it, which files make it up, how it is packed, scaffolded,
served and tested. It works on folders and ids, never on ``project.Script``, so the
project can hold kinds without an import cycle.
"""

from __future__ import annotations

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


def para_file(folder: Path, script_id: str) -> Path:
    """``<id>.para``: every kind describes its inputs and outputs in one."""
    return folder / f"{script_id}.para"


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

"""The layering docs/architecture.md promises, read from the source: no import cycle, the
library never imports the command layer, and only the command layer prints."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from conftest import REPO

from trek_tasks.runtimes.base import Handle

PACKAGE = REPO / "trek_tasks"
COMMAND_LAYER = ("trek_tasks.cli", "trek_tasks.commands", "trek_tasks.reporter")
# Entry points other programs call, which attach the terminal as the CLI does: ``python -m
# trek_tasks``, a project's dodo file (plain ``doit``), the ``doit auto`` plugin, and the
# maintainers' ``python -m trek_tasks.publish --rebuild-bundled``.
ENTRY_POINTS = {
    "trek_tasks.__main__": "trek_tasks.cli",
    "trek_tasks.tasks": "trek_tasks.reporter",
    "trek_tasks.watch": "trek_tasks.reporter",
    "trek_tasks.publish": "trek_tasks.reporter",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """trek_tasks modules ``path`` imports anywhere (function bodies included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in MODULES}


def in_command_layer(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in COMMAND_LAYER)


def test_no_import_cycle() -> None:
    graph = {name: imports_of(path) - {name} for name, path in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycles.append([*trail[trail.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # A package importing its own submodules (a registry) is no cycle of layers.
    real = [c for c in cycles if not all(m.startswith(c[0] + ".") or m == c[0] for m in c)]
    assert real == []


def test_the_library_does_not_import_the_command_layer() -> None:
    upward = {
        name: sorted(
            dep
            for dep in imports_of(path)
            if in_command_layer(dep) and ENTRY_POINTS.get(name) != dep
        )
        for name, path in MODULES.items()
        if not in_command_layer(name)
    }
    assert {name: deps for name, deps in upward.items() if deps} == {}


def test_only_the_command_layer_prints() -> None:
    printing = []
    for name, path in MODULES.items():
        if in_command_layer(name):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id == "print":
                printing.append(f"{name}:{node.lineno}")
            if isinstance(func, ast.Attribute) and func.attr in ("echo", "secho", "prompt"):
                printing.append(f"{name}:{node.lineno}")
    assert printing == []


def test_a_handle_names_no_process_id() -> None:
    assert {f.name for f in dataclasses.fields(Handle)} >= {"ref", "url", "state"}
    assert not {"pid", "port", "log_path"} & {f.name for f in dataclasses.fields(Handle)}

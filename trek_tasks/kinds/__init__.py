"""Script kinds: one module per kind, each satisfying ``kinds.base.ScriptKind``.

``KINDS`` maps a kind's name to the class implementing it, as ``module:Class`` so that
reading the registry imports nothing. Adding a kind is one module here plus one line
below; order matters only for ``default_kind`` and for detection (first match wins).
"""

from __future__ import annotations

import difflib
import functools
import importlib
from pathlib import Path

from trek_tasks.errors import BadInput
from trek_tasks.kinds.base import ScriptKind, default_code_base, para_file

KINDS: dict[str, str] = {
    "blcks": "trek_tasks.kinds.blcks:BlcksKind",
    "shell": "trek_tasks.kinds.shell:ShellKind",
    "ansible": "trek_tasks.kinds.ansible:AnsibleKind",
    "terraform": "trek_tasks.kinds.terraform:TerraformKind",
}

__all__ = [
    "KINDS",
    "ScriptKind",
    "all_kinds",
    "code_base_defaults",
    "default_kind",
    "find_kind",
    "load_kind",
]


@functools.cache
def load_kind(name: str) -> ScriptKind:
    """The kind registered as ``name`` (one instance per process)."""
    if name not in KINDS:
        close = difflib.get_close_matches(name, list(KINDS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(KINDS)}"
        raise BadInput(f"unknown script kind '{name}'{hint}")
    module, _, cls = KINDS[name].partition(":")
    kind: ScriptKind = getattr(importlib.import_module(module), cls)()
    return kind


def all_kinds() -> list[ScriptKind]:
    return [load_kind(name) for name in KINDS]


def default_kind() -> ScriptKind:
    """The first registered kind: what a folder holding only its ``<id>.para`` is taken
    for where no kind is implied (``trek_packages/``, a lone script folder)."""
    return load_kind(next(iter(KINDS)))


def find_kind(
    folder: Path, script_id: str, fallback: ScriptKind | None = None
) -> ScriptKind | None:
    """The kind of the script ``script_id`` in ``folder``: the first whose ``detect``
    holds; a folder with the para but no kind's main file (yet) is ``fallback`` (default:
    ``default_kind()``); None when there is no ``<id>.para``."""
    if not para_file(folder, script_id).is_file():
        return None
    for kind in all_kinds():
        if kind.detect(folder, script_id):
            return kind
    return fallback or default_kind()


def code_base_defaults() -> dict[str, str]:
    """Each kind's code-base config key with its default folder (``src/<name>``)."""
    return {kind.code_base_key: default_code_base(kind) for kind in all_kinds()}

"""What may name a script: the one script-id rule, and the stricter rule for new names.

A script id names a folder, a zip (``blcks.<id>-<version>.zip``), doit tasks
(``up:<id>``) and the state file ``.trek/env/<id>.json``. ``marvin`` is taken by the
local Marvin's task and state file, so no script may use it. ``createblcks``,
``initblcks`` and ``createproject`` name new folders by the stricter ``NAME_RULE``
(every name it allows is a valid script id).
"""

from __future__ import annotations

import re

from trek_tasks.errors import BadInput
from trek_tasks.files import shown

SCRIPT_ID_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]*"
SCRIPT_ID = re.compile(SCRIPT_ID_PATTERN)
RESERVED_IDS = frozenset({"marvin"})
NAME_RULE = "use only letters, digits, '.', '_' and '-', starting with a letter"


def reserved_problem(script_id: str) -> str | None:
    """The message for a reserved id (compared without case: folders may not tell)."""
    if script_id.casefold() in RESERVED_IDS:
        return f"the script id '{script_id}' is reserved for the local Marvin; use another id"
    return None


def script_id_problem(script_id: str) -> str | None:
    """Why ``script_id`` cannot name a script, or None."""
    if not SCRIPT_ID.fullmatch(script_id):
        return f"{shown(script_id)} is not a valid script id"
    return reserved_problem(script_id)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a new project or script folder, or None."""
    if not name:
        return "a name cannot be empty"
    if "/" in name or "\\" in name:
        return "a name cannot hold '/' (it is a folder name, not a path)"
    if ".." in name:
        return "a name cannot hold '..'"
    if any(char.isspace() for char in name):
        return "a name cannot hold spaces"
    if not (name[0].isascii() and name[0].isalpha()):
        return "a name must start with a letter"
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "._-"))})
    if bad:
        return "a name cannot hold " + ", ".join(f"'{c}'" for c in bad)
    return None


def check_name(name: str, what: str) -> str:
    """``name`` when it can name a new project or script; else BadInput naming ``what``."""
    problem = name_problem(name)
    if problem:
        raise BadInput(f"{problem}; {NAME_RULE}", f"{what} '{name}'")
    return name


def check_script_name(name: str, what: str) -> str:
    """``check_name`` for a new script, which must also not take a reserved id."""
    check_name(name, what)
    problem = reserved_problem(name)
    if problem:
        raise BadInput(problem, f"{what} '{name}'")
    return name

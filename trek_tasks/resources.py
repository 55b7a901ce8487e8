"""Where the data shipped with trek-tasks lives: the jinja2 scaffolds and the JSON Schemas."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

SCHEMA_NAMES = ("graph", "para", "packages", "lock", "config", "data", "event")


def read_schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``name`` (one of ``SCHEMA_NAMES``) as shipped, freshly parsed."""
    if name not in SCHEMA_NAMES:
        raise ValueError(f"unknown schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    text = (resources.files("trek_tasks") / "schemas" / f"{name}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _checkout() -> Path | None:
    """The source checkout trek-tasks runs from (an editable install), if it does."""
    root = Path(__file__).resolve().parents[1]
    packaged = resources.files("trek_tasks") / "_data" / "templates"
    return None if packaged.is_dir() or not (root / "pyproject.toml").is_file() else root


def templates_dir() -> Path:
    """The template sets: ``trek_tasks/_data/templates`` in an installed wheel (pyproject
    force-includes the top-level ``templates/`` there), else the checkout's ``templates/``."""
    checkout = _checkout()
    if checkout is None:
        return Path(str(resources.files("trek_tasks") / "_data" / "templates"))
    return checkout / "templates"


def trek_requirement() -> str:
    """The pip requirement for the running trek-tasks (not on PyPI), for a fresh venv:
    the checkout it runs from (``trek-tasks @ file:///...``), else its version."""
    from trek_tasks import __version__

    checkout = _checkout()
    return f"trek-tasks @ {checkout.as_uri()}" if checkout else f"trek-tasks=={__version__}"

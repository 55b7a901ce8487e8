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


def templates_dir() -> Path:
    """The template sets: ``trek_tasks/_data/templates`` in an installed wheel (pyproject
    force-includes the top-level ``templates/`` there), else the checkout's ``templates/``."""
    packaged = resources.files("trek_tasks") / "_data" / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / "templates"

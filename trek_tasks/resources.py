"""Where the data shipped with trek-tasks lives (the jinja2 scaffolds)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def templates_dir() -> Path:
    """The template sets: ``trek_tasks/_data/templates`` in an installed wheel (pyproject
    force-includes the top-level ``templates/`` there), else the checkout's ``templates/``."""
    packaged = resources.files("trek_tasks") / "_data" / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / "templates"

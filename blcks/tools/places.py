"""Where a script folder sits: the project around it and how a path in it is shown."""

from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.json"  # what marks a project's root folder


def project_root(folder: Path) -> Path | None:
    """The nearest folder at or above ``folder`` holding ``manifest.json``; None outside
    a project."""
    return next((f for f in (folder, *folder.parents) if (f / MANIFEST).is_file()), None)


def shown(path: Path, folder: Path) -> str:
    """``path`` as a message names it: relative to the project holding ``folder`` (to
    ``folder`` outside one), else as it is."""
    base = project_root(folder) or folder
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)

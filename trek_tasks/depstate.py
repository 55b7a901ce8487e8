"""File paths in doit's dep state, relative to the project root.

doit keys a task's saved file state by the ``file_dep`` string it was given and checks
that string (and each target) against the current folder. The tasks therefore name
their files relative to the project root (``dep_path``), and the checker doit uses
(``project_checker``) reads them from the root, whatever folder doit runs in: a
project copied with its ``.trek/`` to another folder, as a CI cache restores it, finds
its tasks up to date there, and ``trek -p PATH`` or the repository's dodo file with
``project=PATH`` check the same files as ``doit`` in the project.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def dep_path(root: Path, path: Path) -> str:
    """``path`` as a task names it to doit: relative to ``root`` when it lies below it
    (a file outside the project stays absolute: a copy does not carry it along)."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def project_checker(root: Path) -> type[Any]:
    """doit's MD5 checker (mtime, size, then content) reading task paths from ``root``."""
    from doit.dependency import MD5Checker

    base = str(root)

    class ProjectChecker(MD5Checker):  # type: ignore[misc]  # doit has no type hints
        """The name doit records (``checker:``); the same for every project."""

        def exists(self, file_path: str) -> bool:
            return bool(super().exists(os.path.join(base, file_path)))

        def info(self, file_path: str) -> os.stat_result:
            return super().info(os.path.join(base, file_path))  # type: ignore[no-any-return]

        def check_modified(self, file_path: str, file_stat: os.stat_result, state: Any) -> bool:
            return bool(super().check_modified(os.path.join(base, file_path), file_stat, state))

        def get_state(self, dep: str, current_state: Any) -> Any:
            return super().get_state(os.path.join(base, dep), current_state)

    return ProjectChecker


def remove_targets(root: Path, targets: Iterable[str], dryrun: bool = False) -> None:
    """A ``clean`` action: remove the task's target files, read from ``root`` (doit's own
    ``clean: True`` reads them from the current folder)."""
    for target in targets:
        path = root / target
        if path.is_file() and not dryrun:
            path.unlink()

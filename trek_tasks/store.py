"""The environment store: built environments cached under ``TREK_HOME``.

Like pre-commit's store: an environment is keyed by what it depends on, built in a
temporary folder under a file lock, published with an atomic rename and removed when
the build fails, so a half-built environment is never used.

Like pre-commit's ``gc``: the store records which environments each project uses
(``projects/<sha of root>.json``, rewritten when its scripts start or its environments
build), and ``collect`` drops the records of projects whose folder is gone, then removes
the environments no record names, none running and none being built.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from trek_tasks.files import dump_json, write_atomic
from trek_tasks.lock import Held, file_lock
from trek_tasks.progress import CollectedEnv, GcReport
from trek_tasks.state import store_dir

READY_MARK = ".trek-env.json"
ENVS = "envs"  # the kind of the local runtime's virtualenvs: <store>/envs/<key>
PROJECTS = "projects"
PROJECT_MARK = "manifest.json"  # a record's project is gone once its root lacks this


def built(folder: Path) -> str | None:
    """Why ``folder`` of the store must be (re)built, or None once a build finished it."""
    return None if (folder / READY_MARK).is_file() else "not built"


def health_check(env_dir: Path) -> str | None:
    """Why the environment ``env_dir`` must be (re)built, or None when it is usable."""
    if built(env_dir) is not None:
        return built(env_dir)
    if not (env_dir / "bin" / "python").exists():
        return "its python is missing"
    return None


def ensure(
    kind: str,
    key: str,
    build: Callable[[Path], None],
    about: Mapping[str, object],
    problem: Callable[[Path], str | None] = health_check,
) -> Path:
    """The ready folder ``<store>/<kind>/<key>`` (an environment, a wheelhouse), built
    with ``build(tmp)`` under a lock when ``problem`` says it must be, then moved in place
    with ``about`` in its ready mark."""
    base = store_dir() / kind
    final = base / key
    if problem(final) is None:
        return final
    with file_lock(base / f".{key}.lock"):
        if problem(final) is None:
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=base))
        try:
            build(tmp)
            (tmp / READY_MARK).write_text(json.dumps(about, indent=2) + "\n")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def project_record(root: Path) -> Path:
    """Where the store records what the project at ``root`` uses."""
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return store_dir() / PROJECTS / f"{digest}.json"


def record_project(root: Path, envs: Mapping[str, str]) -> None:
    """Record that the project at ``root`` uses the environments ``envs`` (script id ->
    environment key), so ``collect`` keeps them while the project exists."""
    text = dump_json({"root": str(root), "envs": dict(sorted(envs.items()))})
    path = project_record(root)
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return
    write_atomic(path, text)


def _record(path: Path) -> tuple[Path, set[str]] | None:
    """A record's project root and environment keys; None when unreadable."""
    try:
        data = json.loads(path.read_text())
        return Path(data["root"]), {str(key) for key in data["envs"].values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def size_of(folder: Path) -> int:
    """Bytes the files below ``folder`` take (links counted as themselves)."""
    total = 0
    for top, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, name)).st_size
    return total


def _requirements(env_dir: Path) -> tuple[str, ...]:
    try:
        about = json.loads((env_dir / READY_MARK).read_text())
        return tuple(str(line) for line in about.get("requirements", []))
    except (OSError, ValueError, AttributeError, TypeError):
        return ()


def collect(in_use: Collection[str], dry_run: bool = False) -> GcReport:
    """Drop the records of projects whose folder is gone, then remove every environment
    no remaining record names and no running process uses (``in_use``: keys). One being
    built (its lock held) is left, and so is a failed build's leftover until its lock is
    free. With ``dry_run`` nothing changes; the report says what would go."""
    store = store_dir()
    forgotten: list[str] = []
    used = set(in_use)
    with file_lock(store / ".gc.lock"):
        records = sorted((store / PROJECTS).glob("*.json"))
        for path in records:
            found = _record(path)
            if found is not None and (found[0] / PROJECT_MARK).is_file():
                used |= found[1]
                continue
            forgotten.append(str(found[0]) if found else path.name)
            if not dry_run:
                path.unlink(missing_ok=True)
        removed = _remove_unused(store / ENVS, used, dry_run)
    return GcReport(tuple(removed), tuple(forgotten))


def _remove_unused(base: Path, used: set[str], dry_run: bool) -> list[CollectedEnv]:
    removed = []
    folders = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    for folder in folders:
        # ".<key>.<random>" is a build in progress (or a killed one's leftover)
        key = folder.name.split(".")[1] if folder.name.startswith(".") else folder.name
        if key in used and not folder.name.startswith("."):
            continue
        try:
            with file_lock(base / f".{key}.lock", wait=False):
                size, requirements = size_of(folder), _requirements(folder)
                if not dry_run:
                    shutil.rmtree(folder)
        except Held:
            continue
        removed.append(CollectedEnv(folder.name, size, requirements, folder.name == key))
    return removed

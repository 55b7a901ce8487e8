"""The environment store: built environments cached under ``TREK_HOME``.

Like pre-commit's store: an environment is keyed by what it depends on, built in a
temporary folder under a file lock, published with an atomic rename and removed when
the build fails, so a half-built environment is never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

READY_MARK = ".trek-env.json"


def store_dir() -> Path:
    """``$TREK_HOME``, else ``$XDG_CACHE_HOME/trek-tasks``, else ``~/.cache/trek-tasks``."""
    if os.environ.get("TREK_HOME"):
        return Path(os.environ["TREK_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "trek-tasks"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def health_check(env_dir: Path) -> str | None:
    """Why ``env_dir`` must be (re)built, or None when it is usable."""
    if not (env_dir / READY_MARK).is_file():
        return "not built"
    if not (env_dir / "bin" / "python").exists():
        return "its python is missing"
    return None


def ensure(kind: str, key: str, build: Callable[[Path], None], about: Mapping[str, object]) -> Path:
    """The ready environment ``<store>/<kind>/<key>``, building it with ``build(tmp)`` if needed."""
    base = store_dir() / kind
    final = base / key
    if health_check(final) is None:
        return final
    with locked(base / f".{key}.lock"):
        if health_check(final) is None:
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

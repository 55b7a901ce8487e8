"""The environment store: built environments cached under ``TREK_HOME``.

Like pre-commit's store: an environment is keyed by what it depends on, built in a
temporary folder under a file lock, published with an atomic rename and removed when
the build fails, so a half-built environment is never used.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from trek_tasks.lock import file_lock
from trek_tasks.state import store_dir

READY_MARK = ".trek-env.json"


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
    with file_lock(base / f".{key}.lock"):
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

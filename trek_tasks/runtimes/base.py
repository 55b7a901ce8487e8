"""The Runtime protocol every script runtime implements, and what they share."""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from trek_tasks.project import Script


@dataclass(frozen=True)
class Handle:
    """A started script: enough to reach it, check it and stop it (saved as JSON)."""

    script_id: str
    runtime: str
    pid: int
    port: int
    files: dict[str, str]
    env_key: str
    log_path: str
    envs_hash: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def dump(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def load(cls, path: Path) -> Handle | None:
        """The saved handle, or None when missing or unreadable (treated as not running)."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


class Runtime(Protocol):
    name: str  # the config value selecting this runtime

    def env_key(self, script: Script) -> str: ...  # what the environment depends on

    def install_env(self, script: Script) -> Path: ...  # build (or reuse) the environment

    def start(
        self, script: Script, port: int, env: dict[str, str], log_path: Path
    ) -> Handle: ...  # run the script's server; returns once it answers or raises StepFailed

    def healthy(self, handle: Handle) -> bool: ...  # running and answering as that script

    def stop(
        self, handle: Handle, wait: bool = True
    ) -> None: ...  # stop it (without waiting: ask it to stop and return); no-op when already gone

    def logs(
        self, handle: Handle, follow: bool, tail: int | None
    ) -> Iterator[str]: ...  # the script's log lines


def requirements_lines(script: Script) -> list[str]:
    """Normalised requirement lines (comments and blanks dropped, sorted)."""
    if not script.requirements.is_file():
        return []
    lines = []
    for raw in script.requirements.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return sorted(lines)


@functools.lru_cache(maxsize=1)
def sdk_hash() -> str:
    """Hash of the blcks SDK sources, so environments follow SDK changes (read once)."""
    import blcks

    digest = hashlib.sha256()
    root = Path(blcks.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def python_tag() -> str:
    return f"py{sys.version_info.major}{sys.version_info.minor}"


def file_digests(script: Script) -> dict[str, str]:
    """What a running script serves (para, openfaas.yml, handler/), file by file."""
    return {
        path.relative_to(script.path).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        for path in script.files()
    }


def changed_files(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Files added, removed or edited between two ``file_digests``."""
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))

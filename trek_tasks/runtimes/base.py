"""The Runtime protocol every script runtime implements, and what they share."""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from trek_tasks.errors import StepFailed
from trek_tasks.files import bytes_digest
from trek_tasks.project import Script

if TYPE_CHECKING:
    from trek_tasks.config import Config


@dataclass(frozen=True)
class Handle:
    """A started script: enough to reach it, check it and stop it (saved as JSON).

    ``ref`` names the running thing to its runtime (a pid as text, a container id) and
    ``state`` holds what only that runtime reads (pid, port, log path, identity token).
    ``project`` is the identity of the project that started it: a handle file copied
    with its project (``cp -r``) names the original and is not this project's.
    """

    script_id: str
    runtime: str
    ref: str
    url: str
    state: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    env_key: str = ""
    envs_hash: str = ""
    sdk: str = ""  # the blcks SDK it serves with (``sdk_hash``)
    project: str = ""

    def dump(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def load(cls, path: Path) -> Handle | None:
        """The saved handle, or None when missing, unreadable or not of a handle's shape
        (each treated as not running; the process it named is then found by identity)."""
        try:
            handle = cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return handle if handle._well_formed() else None

    def _well_formed(self) -> bool:
        texts = (self.script_id, self.runtime, self.ref, self.url, self.env_key, self.envs_hash)
        return (
            all(isinstance(text, str) for text in (*texts, self.sdk, self.project))
            and isinstance(self.state, dict)
            and isinstance(self.files, dict)
            and all(isinstance(v, str) for v in self.files.values())
        )


class Runtime(Protocol):
    """What every runtime does; ``project`` is the project identity (``process.identity``)."""

    # the config value selecting this runtime
    name: str

    # the URL a script must call to reach the local Marvin at ``url`` (as the host sees it)
    def marvin_url_for_script(self, url: str) -> str: ...

    # addresses besides 127.0.0.1 the local Marvin must listen on for scripts to reach it
    # (never 0.0.0.0; empty for scripts on the host)
    def marvin_hosts(self) -> tuple[str, ...]: ...

    # what the environment depends on (scripts with equal keys share one)
    def env_key(self, script: Script) -> str: ...

    # why the script's environment is not usable, or None (pre-commit's health_check)
    def env_problem(self, script: Script) -> str | None: ...

    # build the environment unless it is usable already
    def install_env(self, script: Script) -> None: ...

    # serve the script on ``port`` (0: any free one) with ``env`` added, tagged with the
    # project identity, logging to ``log_path`` when the runtime keeps its own log;
    # returns once it answers, else raises StepFailed
    def start(
        self, script: Script, port: int, env: dict[str, str], log_path: Path, project: str = ""
    ) -> Handle: ...

    # running, ours (its identity token answers) and serving
    def healthy(self, handle: Handle) -> bool: ...

    # stop it (without ``wait``: ask it to stop and return); a no-op when already gone
    def stop(self, handle: Handle, wait: bool = True) -> None: ...

    # its log lines: the last ``tail`` (all when None), then new ones when ``follow``
    def logs(self, handle: Handle, follow: bool, tail: int | None) -> Iterator[str]: ...

    # running scripts of this project, found without a state file naming them
    def leftovers(self, project: str) -> list[Handle]: ...

    # stop what else it runs for this project once its scripts are stopped (the local
    # runtime's fork servers); a no-op for a runtime that runs nothing else
    def shutdown(self, project: str) -> None: ...


class Gone(StepFailed):
    """What a live update was meant for no longer runs (the caller starts it anew)."""


@runtime_checkable
class LiveUpdater(Protocol):
    """A runtime that can apply file edits to a running script in place (Tilt's live_update):
    no new environment, no new process or container. Only files may differ from what
    ``handle`` was started with (same ``env_key``, SDK and config envs)."""

    # copy the files changed since ``handle`` was saved into what it names, restart the
    # server there; the handle recording the new files; ``Gone`` when it no longer runs
    def update(self, handle: Handle, script: Script) -> Handle: ...


def script_config(script: Script) -> Config:
    """The settings ``script`` runs (and its image is built) with: its project's, then its
    own layer."""
    from trek_tasks.config import Config
    from trek_tasks.project import find_root_or_none

    root = find_root_or_none(script.path)
    return Config.load(root, None if script.installed else script.path)


def requirements_lines(script: Script) -> list[str]:
    """Normalised requirement lines (comments and blanks dropped, sorted): the script's
    own and those its kind always installs (``implicit_requirements``)."""
    lines = list(script.kind.implicit_requirements)
    if not script.requirements.is_file():
        return sorted(lines)
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
        path.relative_to(script.path).as_posix(): bytes_digest(path)[:16] for path in script.files()
    }


def changed_files(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Files added, removed or edited between two ``file_digests``."""
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))

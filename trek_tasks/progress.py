"""What library steps report: progress events while they work, results for commands.

Frozen values handed to :func:`trek_tasks.events.emit` (or returned, for a command to
print); the terminal reporter (:mod:`trek_tasks.reporter`) words them. Defining a
dataclass costs about a millisecond, so modules that ``doit list`` or ``trek --help``
import bring these in inside the functions that emit them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trek_tasks.engine import RunResult


@dataclass(frozen=True)
class ScriptLogged:
    """What a script wrote to its log while its node ran (``--detail``)."""

    script_id: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class RunReported:
    """A local run is over: its nodes and the messages its scripts sent to the local Marvin."""

    result: RunResult
    messages: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class GraphWritten:
    path: Path
    formats: tuple[str, ...]  # the images written beside it: png, svg


@dataclass(frozen=True)
class Packing:
    source: Path  # a script folder


@dataclass(frozen=True)
class Packed:
    dest: Path


@dataclass(frozen=True)
class Starting:
    """A script or the local Marvin is being started, or restarted for ``reason``."""

    name: str
    label: str
    reason: str  # "not running" for a first start


@dataclass(frozen=True)
class Stopping:
    label: str


@dataclass(frozen=True)
class InstalledScript:
    id: str
    version: str
    extracted: bool  # False: the folder held that archive already


@dataclass(frozen=True)
class InstallReport:
    """What an install, a sync with packages.json or an uninstall changed."""

    installed: tuple[InstalledScript, ...] = ()
    removed: tuple[str, ...] = ()
    in_sync: bool = False  # a sync found trek_packages/ matching the lock already


@dataclass(frozen=True)
class DownloadStarted:
    label: str
    total: int  # bytes expected


@dataclass(frozen=True)
class DownloadAdvanced:
    size: int  # bytes received since the last event


@dataclass(frozen=True)
class DownloadFinished:
    label: str


@dataclass(frozen=True)
class TestsStarted:
    script_id: str


@dataclass(frozen=True)
class TestsPassed:
    script_id: str
    summary: str  # pytest's last line


@dataclass(frozen=True)
class Warned:
    """A problem that does not stop the step (``validate``'s warnings)."""

    text: str


@dataclass(frozen=True)
class Published:
    script_id: str
    version: str
    dest: Path
    already: bool  # the same bytes were published before


@dataclass(frozen=True)
class IndexWritten:
    path: Path


@dataclass(frozen=True)
class PublishReport:
    published: tuple[Published, ...]
    index: Path


@dataclass(frozen=True)
class TaskNote:
    """With ``-v``: a doit task that ran or was up to date (``-- validate (up to date)``)."""

    text: str


@dataclass(frozen=True)
class WatchNote:
    """A line of ``doit auto`` / ``trek watch`` about the watch itself."""

    text: str


@dataclass(frozen=True)
class WatchError:
    """A failure the watch reports and survives (the text carries its prefix)."""

    text: str

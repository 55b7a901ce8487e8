"""What library steps report: progress events while they work, results for commands.

Immutable values handed to :func:`trek_tasks.events.emit` (or returned, for a command to
print); the terminal reporter (:mod:`trek_tasks.reporter`) words them by class name.
They are NamedTuples: defining a frozen dataclass costs about 0.4 ms here, and these
were 17 ms of every ``doit run``; a NamedTuple costs a sixth of that. Modules that
``doit list`` or ``trek --help`` import still bring them in where they emit them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from trek_tasks.engine import RunResult


class ScriptLogged(NamedTuple):
    """What a script wrote to its log while its node ran (``--detail``)."""

    script_id: str
    lines: tuple[str, ...]


class RunReported(NamedTuple):
    """A local run is over: its nodes and the messages its scripts sent to the local Marvin."""

    result: RunResult
    messages: tuple[dict[str, Any], ...] = ()


class GraphWritten(NamedTuple):
    path: Path
    formats: tuple[str, ...]  # the images written beside it: png, svg


class Packing(NamedTuple):
    source: Path  # a script folder
    kind: str  # its kind's name (``Packing shell: src/shell/s1``)


class Packed(NamedTuple):
    dest: Path


class StaleZipRemoved(NamedTuple):
    """A zip ``pack`` wrote earlier for a script that no longer exists (or has another
    version now) was deleted from ``bin/``."""

    path: Path


class Starting(NamedTuple):
    """A script or the local Marvin is being started, or restarted for ``reason``."""

    name: str
    label: str
    reason: str  # "not running" for a first start


class Stopping(NamedTuple):
    """A script or the local Marvin is being stopped (``reason``: why, when not asked to)."""

    label: str
    reason: str = ""


class LiveUpdateFellBack(NamedTuple):
    """A live update of ``script_id`` could not be applied (``why``: what it was meant for
    no longer runs); the script is started anew instead."""

    script_id: str
    why: str


class MarvinMoved(NamedTuple):
    """The local Marvin listens on ``port`` because another process holds ``router_port``:
    one of ours for ``project`` in ``role`` (``marvin``, ``script:<id>``), or "" unknown."""

    router_port: int
    port: int
    project: str = ""
    role: str = ""


class MarvinUsed(NamedTuple):
    """Which Marvin a run talks to (said once per command): the project's local one
    (``source``: its log), a remote one (``source``: the config file naming it, None
    when unknown) or none (``url`` empty)."""

    url: str  # without credentials
    local: bool
    source: Path | None = None


class InstalledScript(NamedTuple):
    id: str
    version: str
    extracted: bool  # False: the folder held that archive already


class InstallReport(NamedTuple):
    """What an install, a sync with packages.json or an uninstall changed."""

    installed: tuple[InstalledScript, ...] = ()
    removed: tuple[str, ...] = ()
    in_sync: bool = False  # a sync found trek_packages/ matching the lock already


class DownloadStarted(NamedTuple):
    label: str
    total: int  # bytes expected


class DownloadAdvanced(NamedTuple):
    size: int  # bytes received since the last event


class DownloadFinished(NamedTuple):
    label: str


class TestsStarted(NamedTuple):
    script_id: str


class TestsPassed(NamedTuple):
    script_id: str
    summary: str  # pytest's last line


class Warned(NamedTuple):
    """A problem that does not stop the step (``validate``'s warnings)."""

    text: str


class Published(NamedTuple):
    script_id: str
    version: str
    dest: Path
    already: bool  # the same bytes were published before


class IndexWritten(NamedTuple):
    path: Path


class PublishReport(NamedTuple):
    published: tuple[Published, ...]
    index_file: Path  # ``index`` would hide the tuple method


class ForkServerStarted(NamedTuple):
    """The local runtime started the fork server of ``env_key`` (``why``: the one before
    had stopped), or started one that leaves ``skipped`` modules for each script to import."""

    env_key: str
    why: str
    skipped: tuple[tuple[str, str], ...]


class ForkFellBack(NamedTuple):
    """``script_id`` was started in a fresh interpreter: its fork server failed (``why``)."""

    script_id: str
    why: str


class EnvBuilding(NamedTuple):
    """A script's environment is not in the store yet: it is being built."""

    script_id: str
    requirements: tuple[str, ...]


class EnvBuilt(NamedTuple):
    script_id: str
    seconds: float


class UpToDate(NamedTuple):
    """A task the command asked for had nothing to do: doit found it up to date."""

    task: str  # the doit task name (``pack:detectredis``)
    targets: tuple[Path, ...]  # the files it makes, when it makes some


class TaskNote(NamedTuple):
    """With ``-v``: a doit task that ran or was up to date (``-- validate (up to date)``)."""

    text: str


class WatchNote(NamedTuple):
    """A line of ``doit auto`` / ``trek watch`` / ``trek serve`` about the watch itself."""

    text: str


class WatchError(NamedTuple):
    """A failure the watch reports and survives (the text carries its prefix)."""

    text: str


class CollectedEnv(NamedTuple):
    """An environment ``trek gc`` removed (or, in a dry run, would remove)."""

    key: str  # the folder's name
    size: int  # bytes
    requirements: tuple[str, ...]
    built: bool = True  # False: what a killed build left


class GcReport(NamedTuple):
    """What ``trek gc`` did: projects whose folder is gone, environments no one uses."""

    removed: tuple[CollectedEnv, ...]
    forgotten: tuple[str, ...]  # roots of the projects whose record was dropped

    @property
    def freed(self) -> int:
        return sum(env.size for env in self.removed)


class ImageBuilding(NamedTuple):
    """A script's image is being made (built, or tagged from an image of equal content)."""

    script_id: str
    handler: Path  # the script's handler/ folder


class WheelhouseReady(NamedTuple):
    """The wheels of a script's requirements for the image's Python are at hand
    (``seconds``: resolving and downloading them, or finding them in the store)."""

    script_id: str
    target: str  # "Python 3.11.2 (manylinux_2_36_x86_64)"
    wheels: int
    seconds: float


class ImageStep(NamedTuple):
    """The build went on to a step of the Dockerfile (``Step 3/9 : COPY ...``, shortened);
    ``cached``: the daemon took its layer from its cache."""

    script_id: str
    text: str
    cached: bool = False


class ImageCurrent(NamedTuple):
    """The daemon has the script's image of its current content under ``tag`` already."""

    script_id: str
    tag: str


class ImageBuilt(NamedTuple):
    """The script's image is tagged ``tag``; ``reused``: an image of equal content was
    tagged, nothing was built."""

    script_id: str
    tag: str
    reused: bool


class PushStarted(NamedTuple):
    """A script's image is being pushed to the registry its tag names."""

    script_id: str
    image: str  # the tag: <docker_registry>/<id>:<version>


class LayerPushing(NamedTuple):
    """A layer the registry does not have yet started going up."""

    layer: str  # the short layer id the daemon reports
    size: int  # bytes, 0 when the daemon did not say


class LayerPushed(NamedTuple):
    """A layer is in the registry: pushed, there already, or mounted from another repository."""

    layer: str
    status: str  # the daemon's words: "Pushed", "Layer already exists", "Mounted from x"


class ImagePushed(NamedTuple):
    """The registry holds ``image`` now: the manifest ``digest`` naming config ``image_id``."""

    image: str
    image_id: str
    digest: str
    seconds: float


class Deploying(NamedTuple):
    """A zip is being uploaded to Marvin."""

    zip: Path


class DeployStored(NamedTuple):
    """Marvin holds the uploaded zip now (``overwritten``: it replaced other content)."""

    label: str  # "script detectredis 0.1.0"
    digest: str
    overwritten: bool


class DeployUnchanged(NamedTuple):
    """Marvin holds this zip's id and version with its sha256 already: not uploaded."""

    zip: Path
    label: str
    digest: str


class DeployDuplicated(NamedTuple):
    """Marvin holds the id and version with another sha256 (the overwrite question follows)."""

    kind: str  # "template" or "script"
    id: str


class ProjectsAssigned(NamedTuple):
    """A deployed template is assigned to these Marvin projects (all it has now)."""

    label: str
    projects: tuple[str, ...]

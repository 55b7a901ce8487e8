"""The terminal reporter: Trek's lines for the events of the engine and the library steps.

Besides the commands, this is the only module that writes to the terminal (doit's
reporters and pre-commit's ``output.py`` play the same part). ``attach()`` subscribes it
to :mod:`trek_tasks.events`; the commands also hand it the results they print, so a
step's words are the same whether ``trek`` or a doit task ran it.

Events are told apart by class name (one ``on_<Event>`` method each), so neither this
module nor attaching it imports the event types: ``trek --help`` and ``doit list`` stay
light.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trek_tasks import events

if TYPE_CHECKING:
    from trek_tasks import engine as run
    from trek_tasks import progress as step
    from trek_tasks.graph import Node

Echo = Callable[[str], None]


def _out(text: str) -> None:
    import click  # here, not above: attaching the reporter must cost nothing

    click.echo(text)


def _err(text: str) -> None:
    import click

    click.echo(text, err=True)


def _shown(path: Path) -> str:
    from trek_tasks.files import display

    return display(path)


def node_line(tag: str, node: Node, script_type: str) -> str:
    return (
        f"[{tag}] id: {node.id}, type: {node.type}, "
        f"scriptId: {node.script_id}, scriptType: {script_type}"
    )


def summary_lines(report: step.RunReported) -> list[str]:
    """The table after a local run: the nodes in execution order (a warning or the reason
    for a skip after each), then the messages sent."""
    from trek_tasks.engine import script_warning

    lines = ["Summary:"]
    for node in report.result.nodes.values():
        label = node.script_id or node.type
        warning = script_warning(node)
        status = "warning" if warning else node.status
        line = f"  {node.id:>4}  {label:<20} {status:<8} {node.duration * 1000:8.1f} ms"
        note = warning or node.reason
        lines.append(f"{line}  {note}" if note else line)
    if report.messages:
        lines.append("Messages sent:")
        for message in report.messages:
            channel = message.get("channel_name") or message["channel_id"]
            lines.append(f"  [{channel}] {message['message']}")
    return lines


def install_lines(report: step.InstallReport) -> list[str]:
    if report.in_sync:
        from trek_tasks.project import INSTALLED_DIR, LOCK

        return [f"Nothing to install: {INSTALLED_DIR}/ matches {LOCK}"]
    lines = [
        f"{s.id}:{s.version} {'installed' if s.extracted else 'already installed'}"
        for s in report.installed
    ]
    return lines + [f"{script_id} uninstalled" for script_id in report.removed]


def up_to_date_line(event: step.UpToDate) -> str:
    """One line for a task with nothing to do: the file of a per-file sub-task
    (``bin/x.zip is up to date``), else the task and its first file, if any."""
    if not event.targets:
        return f"{event.task} is up to date"
    first = _shown(event.targets[0])
    return f"{first} is up to date" if ":" in event.task else f"{event.task} is up to date: {first}"


class Terminal:
    """Shows each event it receives as Trek's line(s); events it has no words for are
    ignored. ``out``/``err`` write one line each (click.echo by default)."""

    def __init__(self, out: Echo = _out, err: Echo = _err) -> None:
        self.out = out
        self.err = err
        self.bar: Any = None  # the progress bar of the download under way
        self.marvin: str | None = None  # the Marvin line said in this command

    def new_command(self) -> None:
        """Forget what was said once per command (a test runs many in one process)."""
        self.marvin = None

    def __call__(self, event: object) -> None:
        show = getattr(self, f"on_{type(event).__name__}", None)
        if show is not None:
            show(event)

    # A run (trek_tasks.engine)

    def on_RunStarted(self, event: run.RunStarted) -> None:
        self.out(f"Workflow [{event.workflow}] start...")

    def on_NodeStarted(self, event: run.NodeStarted) -> None:
        node = event.node
        self.out(f"[TRIGGER] id: {node.id}, type: {node.type}, interval: {event.interval:g}")
        if node.type != "trigger":
            self.out(node_line("EXEC", node, event.script_type))

    def on_NodeFinished(self, event: run.NodeFinished) -> None:
        if event.node.type != "trigger":
            self.out(node_line("FINISH", event.node, event.script_type))

    def on_NodeReused(self, event: run.NodeReused) -> None:
        self.out(node_line("REUSE", event.node, event.script_type))

    def on_NodeFailed(self, event: run.NodeFailed) -> None:
        self.out(node_line("FAIL", event.node, event.script_type))

    def on_NodeSkipped(self, event: run.NodeSkipped) -> None:
        node = event.node
        self.out(
            f"[SKIP] id: {node.id}, type: {node.type}, scriptId: {node.script_id} ({event.reason})"
        )

    def on_RunFinished(self, event: run.RunFinished) -> None:
        if event.result.status == "done":
            self.out(f"Done. [{event.result.workflow}]")

    # Library steps (trek_tasks.progress)

    def on_ScriptLogged(self, event: step.ScriptLogged) -> None:
        for line in event.lines:
            self.out(f"    {event.script_id} | {line}")

    def on_RunReported(self, event: step.RunReported) -> None:
        for line in summary_lines(event):
            self.out(line)

    def on_GraphWritten(self, event: step.GraphWritten) -> None:
        self.out(f"Graph written: {_shown(event.path)} ({', '.join(event.formats)})")

    def on_Packing(self, event: step.Packing) -> None:
        self.out(f"Packing {event.kind}: {_shown(event.source)}")

    def on_Packed(self, event: step.Packed) -> None:
        self.out(f"Success packing, output: {_shown(event.dest)}")

    def on_StaleZipRemoved(self, event: step.StaleZipRemoved) -> None:
        self.out(f"Removed {_shown(event.path)}: no own script packs into it any more")

    def on_Starting(self, event: step.Starting) -> None:
        first = event.reason == "not running"
        self.out(f"starting {event.label}..." if first else f"restart {event.name}: {event.reason}")

    def on_Stopping(self, event: step.Stopping) -> None:
        why = f" ({event.reason})" if event.reason else "..."
        self.out(f"closing {event.label}{why}")

    def on_LiveUpdateFellBack(self, event: step.LiveUpdateFellBack) -> None:
        self.out(f"live update of {event.script_id} impossible: {event.why}; starting it anew")

    def on_MarvinMoved(self, event: step.MarvinMoved) -> None:
        if not event.project:
            holder = "another program"
        elif event.role.startswith("script:"):
            holder = f"blcks {event.role.removeprefix('script:')} of {event.project}"
        else:
            holder = f"the local Marvin of {event.project}"
        self.out(
            f"router_port {event.router_port} is held by {holder}; "
            f"this project's local Marvin uses {event.port}"
        )

    def on_MarvinUsed(self, event: step.MarvinUsed) -> None:
        if event.local:
            where = f" ({_shown(event.source)})" if event.source else ""
            line = f"Marvin: local, {event.url}{where}"
        elif event.url:
            from trek_tasks.configure import reset_hint

            named = f"marvin_url in {_shown(event.source)}" if event.source else "marvin_url"
            back = reset_hint("marvin_url", event.source)
            line = f"Marvin: {event.url} ({named}; {back} uses the local one)"
        else:
            line = "Marvin: none (no project here and no marvin_url); scripts use their MARVIN_URL"
        if line != self.marvin:  # once per command, again only when it changes
            self.marvin = line
            self.out(line)

    def on_InstallReport(self, event: step.InstallReport) -> None:
        for line in install_lines(event):
            self.out(line)

    def on_TestsStarted(self, event: step.TestsStarted) -> None:
        self.out(f"testing {event.script_id}...")

    def on_TestsPassed(self, event: step.TestsPassed) -> None:
        self.out(event.summary)

    def on_Warned(self, event: step.Warned) -> None:
        from trek_tasks.files import one_line

        self.err(f"trek: warning: {one_line(event.text)}")

    def on_Published(self, event: step.Published) -> None:
        where = _shown(event.dest)
        if event.already:
            self.out(f"{event.script_id} {event.version} is already published: {where}")
        else:
            self.out(f"Published {event.script_id} {event.version}: {where}")

    def on_IndexWritten(self, event: step.IndexWritten) -> None:
        self.out(f"Index written: {_shown(event.path)}")

    def on_PublishReport(self, event: step.PublishReport) -> None:
        for published in event.published:
            self.on_Published(published)
        self.out(f"Index written: {_shown(event.index_file)}")

    def on_ForkServerStarted(self, event: step.ForkServerStarted) -> None:
        if event.why != "not running":
            self.out(f"fork server of {event.env_key} started anew: {event.why}")
        for module, why in event.skipped:
            self.out(f"fork server of {event.env_key}: each script imports {module} itself ({why})")

    def on_ForkFellBack(self, event: step.ForkFellBack) -> None:
        self.out(f"{event.script_id} started in a fresh interpreter: {event.why}")

    def on_EnvBuilding(self, event: step.EnvBuilding) -> None:
        wanted = ", ".join(event.requirements) or "no requirements"
        self.out(f"building environment for {event.script_id} ({wanted})...")

    def on_EnvBuilt(self, event: step.EnvBuilt) -> None:
        self.out(f"environment for {event.script_id} built in {event.seconds:.1f} s")

    def on_UpToDate(self, event: step.UpToDate) -> None:
        self.out(up_to_date_line(event))

    def on_TaskNote(self, event: step.TaskNote) -> None:
        self.out(event.text)

    def on_WatchNote(self, event: step.WatchNote) -> None:
        self.out(event.text)

    def on_WatchError(self, event: step.WatchError) -> None:
        self.err(event.text)

    def on_ImageBuilding(self, event: step.ImageBuilding) -> None:
        self.out(f"Build blcks: {event.script_id}")
        self.out(f"Path: {_shown(event.handler)}")

    def on_WheelhouseReady(self, event: step.WheelhouseReady) -> None:
        self.out(f"  wheelhouse: {event.wheels} wheels for {event.target}, {event.seconds:.1f} s")

    def on_ImageStep(self, event: step.ImageStep) -> None:
        self.out(f"  {event.text}{' (cached)' if event.cached else ''}")

    def on_ImageCurrent(self, event: step.ImageCurrent) -> None:
        self.out(f"{event.script_id}: {event.tag} is up to date")

    def on_ImageBuilt(self, event: step.ImageBuilt) -> None:
        same = " (an image of the same content)" if event.reused else ""
        self.out(f"Successfully tagged {event.tag}{same}")
        self.out("Blcks image complete.")

    def on_PushStarted(self, event: step.PushStarted) -> None:
        self.out(f"Push blcks: {event.script_id}")
        self.out(f"Push image: {event.image}")

    def on_LayerPushing(self, event: step.LayerPushing) -> None:
        size = f" {event.size / 1e6:.1f} MB" if event.size >= 1e6 else ""  # not "0.0 MB"
        self.out(f"  {event.layer}: pushing{size}")

    def on_LayerPushed(self, event: step.LayerPushed) -> None:
        self.out(f"  {event.layer}: {event.status}")

    def on_ImagePushed(self, event: step.ImagePushed) -> None:
        digest = event.digest or event.image_id
        self.out(f"Pushed {event.image} ({digest}) in {event.seconds:.1f} s")

    def on_Deploying(self, event: step.Deploying) -> None:
        self.out(f"Deploying: {_shown(event.zip)}")

    def on_DeployStored(self, event: step.DeployStored) -> None:
        how = "overwritten" if event.overwritten else "stored"
        self.out(f"  {how} on Marvin: {event.label}, sha256 {event.digest}")

    def on_DeployUnchanged(self, event: step.DeployUnchanged) -> None:
        self.out(
            f"Unchanged: {_shown(event.zip)} (Marvin holds {event.label} with "
            f"sha256 {event.digest}), not uploaded"
        )

    def on_DeployDuplicated(self, event: step.DeployDuplicated) -> None:
        what = "Workflow" if event.kind == "template" else "Script"
        self.out(f"{what} duplicated: {event.id}")

    def on_ProjectsAssigned(self, event: step.ProjectsAssigned) -> None:
        self.out(f"  {event.label} assigned to projects: {', '.join(event.projects)}")

    def on_DownloadStarted(self, event: step.DownloadStarted) -> None:
        import click

        self.bar = click.progressbar(length=event.total, label=event.label, file=sys.stderr)
        self.bar.__enter__()

    def on_DownloadAdvanced(self, event: step.DownloadAdvanced) -> None:
        if self.bar is not None:
            self.bar.update(event.size)

    def on_DownloadFinished(self, event: step.DownloadFinished) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


TERMINAL = Terminal()


def show(event: object) -> None:
    """Print one event or result now, as the terminal reporter does."""
    TERMINAL(event)


def attach() -> None:
    """Make the terminal reporter a subscriber of the library's events (idempotent)."""
    events.attach(TERMINAL)

"""Shipping commands: pack, build, buildblcks, push, pushblcks, deploy, deployed (and what
pack<kind>/deploy<kind> in ``commands/scripts.py`` share with them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from trek_tasks.commands import (
    Session,
    command,
    load_project,
    pass_session,
    path_option,
    run_tasks,
    script_path_option,
)

if TYPE_CHECKING:
    from trek_tasks.deploy import Artifact, Overwrite
    from trek_tasks.marvin.client import MarvinClient
    from trek_tasks.marvin.target import MarvinTarget


@command()
@path_option
@click.option("-a", "--all", "all_", is_flag=True, help="Also pack every own script.")
@click.option("--auto-pos", is_flag=True, help="Lay out node positions in the packed graph.")
@pass_session
def pack(session: Session, path: Path | None, all_: bool, auto_pos: bool) -> None:
    """Zip the workflow (and with -a each own script) into bin/."""
    tasks = ["pack"] if all_ else ["pack:workflow"]
    run_tasks(session, path, tasks, report_up_to_date=True, auto_pos=auto_pos)


@command()
@path_option
@pass_session
def build(session: Session, path: Path | None) -> None:
    """Build the Docker image of each blcks script the workflow runs (own and installed)."""
    from trek_tasks.containers.images import image_scripts, recorded
    from trek_tasks.progress import ImageCurrent
    from trek_tasks.reporter import show

    executed = run_tasks(session, path, ["build"])
    project = load_project(path)
    scripts = image_scripts(project)
    for script in scripts:
        image = recorded(project.state, script.id)
        if f"build:{script.id}" not in executed and image is not None:
            show(ImageCurrent(script.id, image.tag))
    click.echo(f"Finish building. [{', '.join(script.id for script in scripts)}]")


@command()
@script_path_option
def buildblcks(path: Path | None) -> None:
    """Build the Docker image of one blcks script folder (default: the current folder)."""
    from trek_tasks.containers.images import build_folder

    script, _ = build_folder(path or Path.cwd())
    click.echo(f"Finish building. [{script.id}]")


@command()
@path_option
@pass_session
def push(session: Session, path: Path | None) -> None:
    """Push the image of each blcks script the workflow runs to its registry (built first
    when needed); an image the registry holds already is not pushed again."""
    from trek_tasks.containers.images import image_scripts

    run_tasks(session, path, ["push"], report_up_to_date=True)
    ids = [script.id for script in image_scripts(load_project(path))]
    click.echo(f"Finish pushing. [{', '.join(ids)}]")


@command()
@script_path_option
def pushblcks(path: Path | None) -> None:
    """Build and push the image of one blcks script folder (default: the current folder)."""
    from trek_tasks.containers.registry import push_folder

    script, image, pushed = push_folder(path or Path.cwd())
    if pushed is None:
        click.echo(f"{image.tag} is in the registry already")
    click.echo(f"Finish pushing. [{script.id}]")


projects_option = click.option(
    "--projects",
    default="",
    metavar="P,...",
    help="Assign the workflow to these Marvin projects too (comma separated).",
)
autopack_option = click.option(
    "--autopack", is_flag=True, help="Pack first (what is packed already is not packed again)."
)
autobuildpush_option = click.option(
    "--autobuildpush", is_flag=True, help="Build and push the images first (before packing)."
)
overwrite_option = click.option(
    "-y",
    "--yes",
    is_flag=True,
    help="Overwrite what Marvin holds under the same id and version with other content.",
)


def ask_overwrite(yes: bool) -> Overwrite:
    """The overwrite question: yes with -y; without a terminal no (the deploy then stops
    with one line), never waiting for an answer that cannot come."""
    import sys

    def ask(artifact: Artifact) -> bool:
        from trek_tasks.errors import StepFailed

        if yes:
            return True
        if not sys.stdin.isatty():
            raise StepFailed(
                f"{artifact.label} is on Marvin with another sha256 and there is no terminal "
                "to ask whether to overwrite it; pass -y to overwrite, or give it a new version"
            )
        return click.confirm(f"Do you want to overwrite remote {artifact.kind}?", default=False)

    return ask


@command()
@path_option
@click.option("-a", "--all", "all_", is_flag=True, help="Also deploy every own script.")
@projects_option
@autopack_option
@autobuildpush_option
@overwrite_option
@pass_session
def deploy(
    session: Session,
    path: Path | None,
    all_: bool,
    projects: str,
    autopack: bool,
    autobuildpush: bool,
    yes: bool,
) -> None:
    """Upload the workflow's zip (and with -a each own script's, first) to Marvin; what
    Marvin holds with the same sha256 already is not uploaded again."""
    from trek_tasks.deploy import deploy as deploy_artifacts
    from trek_tasks.deploy import parse_projects, project_artifacts
    from trek_tasks.localrun import marvin_for

    names = parse_projects(projects)
    click.echo("Deploy workflow with all packages..." if all_ else "Deploy workflow...")
    if autobuildpush:
        run_tasks(session, path, ["push"])
    if autopack:
        run_tasks(session, path, ["pack"] if all_ else ["pack:workflow"])
    project = load_project(path)
    artifacts = project_artifacts(project, all_)
    marvin = marvin_client(marvin_for(project.root, project.config))
    deploy_artifacts(marvin, artifacts, ask_overwrite(yes), names)
    click.echo("Done")


@command()
@path_option
def deployed(path: Path | None) -> None:
    """List the workflows and scripts Marvin holds (yours): id, version, sha256."""
    from trek_tasks.config import Config
    from trek_tasks.deploy import holdings
    from trek_tasks.localrun import marvin_for
    from trek_tasks.project import find_root_or_none

    folder = (path or Path.cwd()).resolve()
    root = find_root_or_none(folder)
    marvin = marvin_client(marvin_for(folder, Config.load(root, folder)))
    items = holdings(marvin)
    if not items:
        click.echo("Marvin holds nothing you deployed")
    rows = [
        ("workflow" if i.kind == "template" else "script", i.id, i.version, i.digest, i.projects)
        for i in items
    ]
    widths = [max((len(row[col]) for row in rows), default=0) for col in range(3)]
    for kind, item_id, version, digest, assigned in rows:
        line = f"{kind:<{widths[0]}}  {item_id:<{widths[1]}}  {version:<{widths[2]}}  {digest}"
        click.echo(line + (f"  projects: {', '.join(assigned)}" if assigned else ""))


def marvin_client(marvin: MarvinTarget) -> MarvinClient:
    """The client of the Marvin to deploy to; BadInput when there is none."""
    from trek_tasks.errors import BadInput

    if not marvin.url:
        raise BadInput(
            "no Marvin to deploy to: outside a project, set marvin_url and marvin_JWT "
            "(`trek login`)"
        )
    return marvin.client

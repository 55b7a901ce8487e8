"""Shipping commands: pack, packblcks, build, buildblcks, push, pushblcks."""

from __future__ import annotations

from pathlib import Path

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
@script_path_option
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), default=None, help="Folder for the zip."
)
def packblcks(path: Path | None, output: Path | None) -> None:
    """Zip one script folder (default: the current folder)."""
    from trek_tasks.pack import script_zip_name
    from trek_tasks.project import script_at
    from trek_tasks.steps import pack_script_to

    folder = (path or Path.cwd()).resolve()
    script = script_at(folder, "blcks")
    pack_script_to(script, (output or folder / "bin") / script_zip_name(script))


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

"""Script commands: createblcks, initblcks, install, uninstall, listscripts, publish, runblcks."""

from __future__ import annotations

import json
from pathlib import Path

import click

from trek_tasks.commands import (
    command,
    confirm_replace,
    force_option,
    path_option,
    report_placed,
    script_path_option,
    yes_option,
)


@command()
@click.argument("name")
@force_option
@yes_option
def createblcks(name: str, force: bool, yes: bool) -> None:
    """Create the blcks script NAME (under src/blcks/ inside a project, else ./NAME)."""
    from trek_tasks.names import check_script_name
    from trek_tasks.scaffold import blcks_target, check_free, create_blcks

    dest = Path.cwd()
    check_script_name(name, "NAME")
    target = blcks_target(dest, name)
    check_free(target, force)
    confirm_replace(target, yes)
    existed = target.is_dir()
    click.echo(f"Blcks [{name}] creating...")
    placed = create_blcks(dest, name, force=force)
    if existed:
        report_placed(target, placed)
    click.echo("Done")


@command()
@script_path_option
def initblcks(path: Path | None) -> None:
    """Turn a folder into a blcks script folder: add the files it lacks (a handler and
    tests fitting its para, when it has one), overwrite none."""
    from trek_tasks.names import check_script_name
    from trek_tasks.scaffold import existing_folder, init_blcks

    folder = existing_folder(path or Path.cwd())
    click.echo(f"Blcks [{check_script_name(folder.name, 'folder name')}] initializing...")
    report_placed(folder, init_blcks(folder))
    click.echo("Done")


@command()
@click.argument("packages", nargs=-1)
@path_option
@click.option("-l", "--list", "list_", is_flag=True, help="List the installed scripts.")
def install(packages: tuple[str, ...], path: Path | None, list_: bool) -> None:
    """Install scripts: NAME, NAME==1.2.0, NAME>=0.4,<0.6, a URL or a zip (none: packages.json)."""
    from trek_tasks.errors import BadInput
    from trek_tasks.install import install_packages, installed_lines
    from trek_tasks.project import find_root
    from trek_tasks.reporter import show
    from trek_tasks.runner import mark_installed

    root = find_root(path or Path.cwd())
    if list_:
        if packages:
            raise BadInput("-l lists what is installed; give it no PACKAGES", "-l")
        for line in installed_lines(root):
            click.echo(line)
        return
    report = install_packages(root, list(packages))
    mark_installed(root)
    show(report)


@command()
@click.argument("packages", nargs=-1, required=True)
@path_option
def uninstall(packages: tuple[str, ...], path: Path | None) -> None:
    """Remove installed scripts: folder, packages.json entry and lock entry."""
    from trek_tasks.install import uninstall_packages
    from trek_tasks.project import find_root
    from trek_tasks.reporter import show
    from trek_tasks.runner import mark_installed

    root = find_root(path or Path.cwd())
    report = uninstall_packages(root, list(packages))
    mark_installed(root)
    show(report)


@command()
@click.argument("script", required=False)
def listscripts(script: str | None) -> None:
    """List the repository's scripts with their versions, or SCRIPT's versions (newest first)."""
    from trek_tasks.hub import listing, repository_around

    for line in listing(repository_around(Path.cwd()), script):
        click.echo(line)


@command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--repository",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The repository folder (created if missing).",
)
def publish(source: Path, repository: Path) -> None:
    """Add a packed script zip or a script folder to a repository folder; rewrite index.json."""
    from trek_tasks.publish import publish as publish_script
    from trek_tasks.reporter import show

    show(publish_script(source, repository))


@command()
@script_path_option
def runblcks(path: Path | None) -> None:
    """Run one script folder with its inputs/event.yml and print the outputs."""
    from trek_tasks.localrun import runblcks as run_one

    outputs = run_one(path or Path.cwd())
    click.echo(json.dumps(outputs, indent=2, ensure_ascii=False))

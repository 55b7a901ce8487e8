"""Shipping commands: pack, packblcks."""

from __future__ import annotations

from pathlib import Path

import click

from trek_tasks.commands import (
    Session,
    command,
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

"""The ``trek`` commands, one module per area, loaded lazily by ``trek_tasks.cli``.

A command parses its options, calls one library function (or runs doit tasks through
the runner) and prints what comes back, in its own words or the reporter's. Modules
here import the library inside the command bodies, so ``trek --help`` stays light.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from trek_tasks.project import Project
    from trek_tasks.scaffold import Placed

F = TypeVar("F", bound=Callable[..., Any])


class Session:
    """What one ``trek`` invocation shares between the group and its command (click's
    context object: ``main`` makes it, ``-v`` anywhere on the line sets it)."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose


pass_session = click.make_pass_decorator(Session, ensure=True)


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    session = ctx.ensure_object(Session)
    if value:
        session.verbose = True
    return value


verbose_option = click.option(
    "-v",
    "--verbose",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_verbose,
    help="Show more detail (and tracebacks on errors).",
)


def folder_option(what: str) -> Callable[[F], F]:
    """``-p/--path``, whose help says what the folder is (a project, a script...)."""
    return click.option(
        "-p",
        "--path",
        "path",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=what,
    )


path_option = folder_option("Project folder (default: the current folder or the nearest above).")
script_path_option = folder_option(
    "Script folder, holding <name>.para (default: the current folder)."
)
force_option = click.option(
    "-f", "--force", is_flag=True, help="Replace the template's files in an existing folder."
)
yes_option = click.option("-y", "--yes", is_flag=True, help="Ask nothing; take the defaults.")


def version_line() -> str:
    """What `trek version` and `trek --version` print."""
    from trek_tasks import __version__

    return f"trek-tasks {__version__}"


def command(name: str | None = None, **kwargs: Any) -> Callable[[F], click.Command]:
    """A ``trek`` sub-command; every one takes ``-v/--verbose`` and, while it runs, shows
    the library's events through the terminal reporter."""

    def decorate(func: F) -> click.Command:
        @functools.wraps(func)
        def run(*args: Any, **options: Any) -> Any:
            from trek_tasks import reporter

            reporter.attach()
            reporter.TERMINAL.new_command()
            return func(*args, **options)

        return click.command(name, **kwargs)(verbose_option(run))

    return decorate


def load_project(path: Path | None, workflow: bool = True) -> Project:
    from trek_tasks.project import Project

    return Project.load(path or Path.cwd(), workflow=workflow)


def run_tasks(
    session: Session,
    path: Path | None,
    tasks: list[str],
    report_up_to_date: bool = False,
    **options: Any,
) -> list[str]:
    """Run doit ``tasks`` of the project at ``path``; the names of the tasks executed.
    With ``report_up_to_date`` the ones with nothing to do say so (``bin/x.zip is up to
    date``): for commands whose whole point is those tasks' files."""
    from trek_tasks.options import TaskOptions
    from trek_tasks.runner import run_tasks as run

    return run(
        load_project(path),
        tasks,
        TaskOptions(**options),
        verbose=session.verbose,
        report_up_to_date=report_up_to_date,
    )


def confirm_replace(target: Path, yes: bool) -> None:
    """Ask before a template replaces files in the existing folder ``target``."""
    from trek_tasks.files import display

    if target.is_dir() and not yes:
        click.confirm(
            f"{display(target)} exists. Replace the files the template makes?", abort=True
        )


def report_placed(folder: Path, placed: Placed) -> None:
    """List what a scaffold added, replaced and kept in ``folder``, and what it left out."""
    from trek_tasks.files import display

    if not placed.added and not placed.replaced:
        click.echo(f"  nothing to add: {display(folder)} has every file already")
        return
    for verb, paths in (
        ("added", placed.added),
        ("replaced", placed.replaced),
        ("kept", placed.kept),
    ):
        for rel in paths:
            click.echo(f"  {verb} {rel.as_posix()}")
    if placed.left_out:
        left = ", ".join(p.as_posix() for p in placed.left_out)
        click.echo(f"  left out {left}: these samples fit only the sample handler")

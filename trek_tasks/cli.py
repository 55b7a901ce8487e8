"""The ``trek`` command line: thin click commands over the library and doit tasks."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from trek_tasks import __version__
from trek_tasks.errors import BadInput, ManyErrors, TrekError

F = TypeVar("F", bound=Callable[..., Any])


class State:
    """Options shared by every command."""

    verbose = False


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        State.verbose = True
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
path_option = click.option(
    "-p",
    "--path",
    "path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Project folder (default: the current folder or the nearest one above).",
)


def command(name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """A ``trek`` sub-command; every one takes ``-v/--verbose``."""

    def decorate(func: F) -> F:
        return cli.command(name, **kwargs)(verbose_option(func))  # type: ignore[return-value]

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@verbose_option
@click.version_option(__version__, "--version", prog_name="trek")
def cli() -> None:
    """Trek on doit: write, run and ship Marvin workflows with incremental tasks."""


def load_project(path: Path | None) -> Any:
    from trek_tasks.project import Project

    return Project.load(path or Path.cwd())


def run_tasks(path: Path | None, tasks: list[str], **options: Any) -> list[str]:
    from trek_tasks.runner import run_tasks as run

    return run(load_project(path), tasks, options, verbose=State.verbose)


@command()
def version() -> None:
    """Print the version."""
    click.echo(f"trek-tasks {__version__}")


@command("config")
@click.argument("key", required=False)
@click.argument("value", required=False)
@click.option("--global", "global_", is_flag=True, help="Use ~/.trek/config.json.")
@click.option("--unset", is_flag=True, help="Remove KEY from the config file.")
@click.option("-l", "--list", "list_", is_flag=True, help="List the merged settings.")
@path_option
def config_cmd(
    key: str | None, value: str | None, global_: bool, unset: bool, list_: bool, path: Path | None
) -> None:
    """Get or set configuration (script > project > global)."""
    from trek_tasks.configure import run_config

    run_config(key, value, global_=global_, unset=unset, list_=list_, path=path)


@command()
@path_option
def validate(path: Path | None) -> None:
    """Check the project's files; every problem as file:line:col."""
    from trek_tasks.project import Project
    from trek_tasks.validate import validate_project

    project = Project.load(path or Path.cwd())
    for warning in validate_project(project):
        click.echo(f"trek: warning: {warning}", err=True)
    click.echo(f"Valid. [{project.name}]")


@command()
@path_option
@click.option("--show", is_flag=True, help="Print the DOT text.")
def graph(path: Path | None, show: bool) -> None:
    """Write .trek/graph.gv and its PNG/SVG images (the doit task `graph`)."""
    from trek_tasks.steps import graph_file

    project = load_project(path)
    try:
        run_tasks(path, ["graph"])
    finally:
        if show and graph_file(project).is_file():
            click.echo(graph_file(project).read_text(), nl=False)


@command()
@path_option
@click.option("-a", "--all", "all_", is_flag=True, help="Also pack every own script.")
@click.option("--auto-pos", is_flag=True, help="Lay out node positions in the packed graph.")
def pack(path: Path | None, all_: bool, auto_pos: bool) -> None:
    """Zip the workflow (and with -a each own script) into bin/."""
    run_tasks(path, ["pack"] if all_ else ["pack:workflow"], auto_pos=auto_pos)


@command()
@path_option
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), default=None, help="Folder for the zip."
)
def packblcks(path: Path | None, output: Path | None) -> None:
    """Zip one script folder (default: the current folder)."""
    from trek_tasks.files import display
    from trek_tasks.pack import script_zip_name
    from trek_tasks.project import Script
    from trek_tasks.steps import pack_script_to

    folder = (path or Path.cwd()).resolve()
    script = Script.load(folder, installed=False)
    if script is None:
        raise BadInput(f"no {folder.name}.para here; not a blcks script folder", display(folder))
    pack_script_to(script, (output or folder / "bin") / script_zip_name(script))


@command()
@path_option
@click.argument("actions", nargs=-1)
@click.option("--no-overwrite", is_flag=True, help="Keep scripts that are already running.")
def initenv(path: Path | None, actions: tuple[str, ...], no_overwrite: bool) -> None:
    """Start the runtime of each script (default: all the graph uses) and the local Marvin."""
    from trek_tasks.localrun import initenv as start

    run_tasks(path, ["install"])
    start(load_project(path), actions, no_overwrite)


@command()
@path_option
@click.argument("actions", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Stop everything of this project.")
def shutdownenv(path: Path | None, actions: tuple[str, ...], all_: bool) -> None:
    """Stop script runtimes (default or -a: all of them and the local Marvin)."""
    from trek_tasks.localrun import shutdownenv as stop
    from trek_tasks.project import Project

    stop(Project.load(path or Path.cwd(), workflow=False), actions, all_)


@command()
@path_option
@click.argument("actions", nargs=-1)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Only the last N lines.")
def logs(path: Path | None, actions: tuple[str, ...], follow: bool, tail: int | None) -> None:
    """Print script logs."""
    from trek_tasks.localrun import show_logs

    show_logs(load_project(path), actions, follow, tail)


@command("run")
@path_option
@click.option("--detail", is_flag=True, help="Show what each script logged.")
@click.option(
    "--next-interval",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Seconds to wait before each next node.",
)
@click.option("--auto", is_flag=True, help="Bring changed or lost runtimes up first (default).")
@click.option("--once", is_flag=True, help="Shut the environment down after the run.")
@click.option(
    "--reuse",
    is_flag=True,
    help="Reuse outputs of unchanged nodes from the last run (side-effect-free scripts only).",
)
def run_cmd(
    path: Path | None, detail: bool, next_interval: float, auto: bool, once: bool, reuse: bool
) -> None:
    """Run the workflow locally (restarting only what changed)."""
    try:
        run_tasks(
            path,
            ["execute"],
            detail=detail,
            interval=next_interval,
            always_run=True,
            reuse=reuse,
        )
    finally:
        if once:
            from trek_tasks.localrun import shutdownenv
            from trek_tasks.project import Project

            shutdownenv(Project.load(path or Path.cwd(), workflow=False), (), True)


@command()
@path_option
def runblcks(path: Path | None) -> None:
    """Run one script folder with its inputs/event.yml and print the outputs."""
    from trek_tasks.localrun import runblcks as run_one

    run_one(path or Path.cwd())


force_option = click.option(
    "-f", "--force", is_flag=True, help="Replace the template's files in an existing folder."
)
yes_option = click.option("-y", "--yes", is_flag=True, help="Ask nothing; take the defaults.")


@command()
@click.argument("name")
@force_option
@yes_option
@click.option("--example", is_flag=True, help="A sample workflow using callservice + notification.")
def createproject(name: str, force: bool, yes: bool, example: bool) -> None:
    """Create the project folder NAME (asks for the Marvin url, JWT and secret)."""
    from trek_tasks.scaffold import run_createproject

    run_createproject(Path.cwd(), name, force=force, yes=yes, example=example)


@command()
@path_option
@yes_option
def init(path: Path | None, yes: bool) -> None:
    """Turn a folder into a project: add the files it lacks, overwrite none."""
    from trek_tasks.scaffold import run_init

    run_init(path or Path.cwd(), yes=yes)


@command()
@click.argument("name")
@force_option
@yes_option
def createblcks(name: str, force: bool, yes: bool) -> None:
    """Create the blcks script NAME (under src/blcks/ inside a project, else ./NAME)."""
    from trek_tasks.scaffold import run_createblcks

    run_createblcks(Path.cwd(), name, force=force, yes=yes)


@command()
@path_option
def initblcks(path: Path | None) -> None:
    """Turn a folder into a blcks script folder: add the files it lacks, overwrite none."""
    from trek_tasks.scaffold import run_initblcks

    run_initblcks(path or Path.cwd())


@command()
@click.argument("packages", nargs=-1)
@path_option
@click.option("-l", "--list", "list_", is_flag=True, help="List the installed scripts.")
def install(packages: tuple[str, ...], path: Path | None, list_: bool) -> None:
    """Install scripts: NAME, NAME==1.2.0, NAME>=0.4,<0.6, a URL or a zip (none: packages.json)."""
    from trek_tasks.install import run_install

    run_install(path, list(packages), list_only=list_)


@command()
@click.argument("packages", nargs=-1, required=True)
@path_option
def uninstall(packages: tuple[str, ...], path: Path | None) -> None:
    """Remove installed scripts: folder, packages.json entry and lock entry."""
    from trek_tasks.install import run_uninstall

    run_uninstall(path, list(packages))


@command()
@click.argument("script", required=False)
def listscripts(script: str | None) -> None:
    """List the repository's scripts with their versions, or SCRIPT's versions (newest first)."""
    from trek_tasks.hub import run_listscripts

    run_listscripts(script, Path.cwd())


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

    publish_script(source, repository)


@command()
@path_option
@click.option("--detail", is_flag=True, help="Show what each script logged.")
@click.option("--shutdown", is_flag=True, help="Stop the runtimes when the watch ends.")
def watch(path: Path | None, detail: bool, shutdown: bool) -> int:
    """Run the workflow now and again after every change (Ctrl-C stops; runtimes stay up)."""
    from trek_tasks.project import find_root
    from trek_tasks.watch import watch_project

    options = {"detail": detail, "always_run": True}
    return watch_project(find_root(path or Path.cwd()), options, State.verbose, shutdown)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (bad input 2, failed step 1, Ctrl-C 130)."""
    State.verbose = False
    try:
        result = cli.main(args=argv, prog_name="trek", standalone_mode=False)
    except TrekError as err:
        if State.verbose:
            traceback.print_exc()
        for problem in err.errors if isinstance(err, ManyErrors) else [err]:
            click.echo(f"trek: error: {problem}", err=True)
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except click.UsageError as err:
        command_path = err.ctx.command_path if err.ctx else "trek"
        message = err.format_message()
        click.echo(f"trek: error: {message} (see `{command_path} --help`)", err=True)
        return 2
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Exit as err:
        return err.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())

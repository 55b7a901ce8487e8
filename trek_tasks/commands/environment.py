"""Environment commands: initenv, shutdownenv, logs, run, watch, serve, gc."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from trek_tasks.commands import Session, command, load_project, pass_session, path_option, run_tasks
from trek_tasks.options import WATCH_DEBOUNCE_MS


def _runtime(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """A ``runtime`` config value (checked here: importing the registry at ``--help``
    would load the library)."""
    from trek_tasks.runtimes import CONFIG_CHOICES

    if value and value not in CONFIG_CHOICES:
        raise click.BadParameter(f"'{value}' is not one of {', '.join(CONFIG_CHOICES)}")
    return value or ""


runtime_option = click.option(
    "--runtime",
    callback=_runtime,
    metavar="NAME",
    help="Where scripts run for this command, over config `runtime` (local, docker...).",
)


def shut_down(path: Path | None, actions: tuple[str, ...], all_: bool, runtime: str = "") -> None:
    """Stop script runtimes (and with ``all_`` or no ``actions`` the local Marvin), saying so."""
    from trek_tasks.localrun import shutdownenv

    project = load_project(path, workflow=False).with_runtime(runtime)
    click.echo("Closing environment...")
    shutdownenv(project, actions, all_)
    click.echo("Done")


@command()
@path_option
@click.argument("actions", nargs=-1)
@click.option("--no-overwrite", is_flag=True, help="Keep scripts that are already running.")
@runtime_option
@pass_session
def initenv(
    session: Session, path: Path | None, actions: tuple[str, ...], no_overwrite: bool, runtime: str
) -> None:
    """Start the runtime of each script (default: all the graph uses) and the local Marvin."""
    from trek_tasks.localrun import check_installed
    from trek_tasks.localrun import initenv as start

    run_tasks(session, path, ["install"], runtime=runtime)
    project = load_project(path).with_runtime(runtime)
    check_installed(project, actions)
    click.echo("Starting environment...")
    start(project, actions, no_overwrite)
    click.echo("Done")


@command()
@path_option
@click.argument("actions", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Stop everything of this project.")
def shutdownenv(path: Path | None, actions: tuple[str, ...], all_: bool) -> None:
    """Stop script runtimes (default or -a: all of them and the local Marvin)."""
    shut_down(path, actions, all_)


@command()
@path_option
@click.argument("actions", nargs=-1)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Only the last N lines.")
def logs(path: Path | None, actions: tuple[str, ...], follow: bool, tail: int | None) -> None:
    """Print script logs."""
    from trek_tasks.localrun import log_lines

    for line in log_lines(load_project(path), actions, follow, tail):
        click.echo(line)


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
    help="Reuse the last run's outputs of nodes whose code, inputs and Marvin state are "
    "unchanged (early cutoff); scripts whose para says sideEffects: true always run.",
)
@runtime_option
@pass_session
def run_cmd(
    session: Session,
    path: Path | None,
    detail: bool,
    next_interval: float,
    auto: bool,
    once: bool,
    reuse: bool,
    runtime: str,
) -> None:
    """Run the workflow locally (restarting only what changed)."""
    try:
        run_tasks(
            session,
            path,
            ["execute"],
            detail=detail,
            interval=next_interval,
            always_run=True,
            reuse=reuse,
            runtime=runtime,
        )
    finally:
        if once:
            shut_down(path, (), True, runtime)


@command()
@path_option
@click.option("--detail", is_flag=True, help="Show what each script logged.")
@click.option("--shutdown", is_flag=True, help="Stop the runtimes when the watch ends.")
@click.option(
    "--debounce",
    type=click.IntRange(1, 60_000),
    default=WATCH_DEBOUNCE_MS,
    show_default=True,
    metavar="MS",
    help="Milliseconds without further changes before a run: a burst of saves makes one.",
)
@runtime_option
@pass_session
def watch(
    session: Session, path: Path | None, detail: bool, shutdown: bool, debounce: int, runtime: str
) -> int:
    """Run the workflow now and again after every change (Ctrl-C stops; runtimes stay up)."""
    from trek_tasks.options import TaskOptions
    from trek_tasks.project import find_root
    from trek_tasks.runner import watch_project

    root = find_root(path or Path.cwd())
    options = TaskOptions(detail=detail, always_run=True, runtime=runtime)
    code = watch_project(root, options, session.verbose, debounce)
    if shutdown:
        shut_down(root, (), True, runtime)
    return code


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``--after``: an ISO 8601 time; without an offset it is UTC."""
    from datetime import datetime, timezone

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time such as 2026-03-29T00:30Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@command()
@path_option
@click.option(
    "--next",
    "next_",
    type=click.IntRange(1, 1000),
    default=None,
    metavar="N",
    help="Print the next N cron fire times with their zone and exit.",
)
@click.option(
    "--after",
    callback=_instant,
    metavar="TIME",
    help="With --next: the fire times after TIME (ISO 8601, UTC without an offset), not now.",
)
@click.option("--detail", is_flag=True, help="Show what each script logged.")
@click.option("--shutdown", is_flag=True, help="Stop the runtimes when serving ends.")
@click.option(
    "--debounce",
    type=click.IntRange(1, 60_000),
    default=WATCH_DEBOUNCE_MS,
    show_default=True,
    metavar="MS",
    help="Milliseconds without further changes before edits are applied.",
)
@runtime_option
@pass_session
def serve(
    session: Session,
    path: Path | None,
    next_: int | None,
    after: Any,
    detail: bool,
    shutdown: bool,
    debounce: int,
    runtime: str,
) -> int:
    """Run the workflow when its trigger says: cron, events POSTed to the local Marvin,
    Enter (Ctrl-C stops; runtimes stay up)."""
    import sys

    from trek_tasks.options import TaskOptions
    from trek_tasks.project import find_root
    from trek_tasks.serve import next_fires
    from trek_tasks.serve import serve as serve_project

    root = find_root(path or Path.cwd())
    if next_ is not None:
        fires = next_fires(root, next_, after)
        several = len({cron for _, cron in fires}) > 1
        for when, cron in fires:
            click.echo(f"{when}  (cron {cron})" if several else when)
        if not fires:
            click.echo("the trigger has no cron source: nothing is scheduled")
        return 0
    options = TaskOptions(detail=detail, runtime=runtime)
    try:
        enter_fd: int | None = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        enter_fd = None  # no stdin to press Enter on
    code = serve_project(root, options, enter_fd, session.verbose, debounce)
    if shutdown:
        shut_down(root, (), True, runtime)
    return code


@command()
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
def gc(dry_run: bool) -> None:
    """Remove the environments no project on this machine uses (projects deleted or changed)."""
    from trek_tasks.environment import collect_garbage

    report = collect_garbage(dry_run)
    for root in report.forgotten:
        click.echo(f"  forgot {root} (folder gone)")
    verb = "would remove" if dry_run else "removed"
    for env in report.removed:
        needs = ", ".join(env.requirements) or "no requirements"
        needs = needs if env.built else "an unfinished build"
        click.echo(f"  {verb} {env.key} ({needs}; {megabytes(env.size)})")
    if not report.removed:
        click.echo("nothing to collect")
        return
    count = len(report.removed)
    what = f"{count} environment{'s' if count != 1 else ''}"
    freed = "freeing" if dry_run else "freed"
    click.echo(f"{verb} {what}, {freed} {megabytes(report.freed)}")


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"

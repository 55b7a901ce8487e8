"""Recorded-run commands: record, replay."""

from __future__ import annotations

from pathlib import Path

import click

from trek_tasks.commands import command, load_project, path_option


@command()
@path_option
@click.argument("run", required=False, default="")
@click.option("--name", default="", help="The fixture's folder name (default: the run id).")
@click.option("-f", "--force", is_flag=True, help="Replace a fixture of that name.")
def record(path: Path | None, run: str, name: str, force: bool) -> None:
    """Turn a run record (default: the last run) into a test fixture in tests/recorded/."""
    from trek_tasks.files import display
    from trek_tasks.recorded import record as make

    project = load_project(path)
    fixture = make(project, run, name, force)
    count = len(fixture.nodes)
    where = display(fixture.folder, project.root)
    click.echo(f"recorded run {fixture.run} in {where}/ ({count} node{'s' if count != 1 else ''})")
    click.echo(f"check it with `trek replay {where}`")


@command()
@path_option
@click.argument("fixtures", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
def replay(path: Path | None, fixtures: tuple[Path, ...]) -> None:
    """Call each recorded node with its recorded inputs against the current code; list
    the outputs that changed (default: every fixture in tests/recorded/)."""
    from trek_tasks.errors import StepFailed
    from trek_tasks.recorded import changed_line
    from trek_tasks.recorded import replay as run

    project = load_project(path)
    results = run(project, [folder.resolve() for folder in fixtures])
    for result in results:
        click.echo(result.report(project.root))
    changed = changed_line(results)
    if changed:
        raise StepFailed(changed)

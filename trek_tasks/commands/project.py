"""Project commands: version, config, createproject, init, validate, graph."""

from __future__ import annotations

from pathlib import Path

import click

from trek_tasks.commands import (
    Session,
    command,
    confirm_replace,
    folder_option,
    force_option,
    load_project,
    pass_session,
    path_option,
    report_placed,
    run_tasks,
    version_line,
    yes_option,
)


@command()
def version() -> None:
    """Print the version."""
    click.echo(version_line())


@command("config")
@click.argument("key", required=False)
@click.argument("value", required=False)
@click.option("--global", "global_", is_flag=True, help="Use ~/.trek/config.json.")
@click.option("--unset", is_flag=True, help="Remove KEY from the config file.")
@click.option("-l", "--list", "list_", is_flag=True, help="List the merged settings.")
@folder_option("Project folder, or a script folder in one (default: the current folder).")
def config_cmd(
    key: str | None, value: str | None, global_: bool, unset: bool, list_: bool, path: Path | None
) -> None:
    """Get or set configuration (script > project > global)."""
    from trek_tasks.configure import setting_lines, setting_text, write_setting

    if list_ or key is None:
        for line in setting_lines(global_=global_, path=path):
            click.echo(line)
    elif value is None and not unset:
        click.echo(setting_text(key, global_=global_, path=path))
    else:
        write_setting(key, value, global_=global_, unset=unset, path=path)


def _url_answer(text: str) -> str:
    from trek_tasks.config import parse_value
    from trek_tasks.errors import BadInput

    try:
        return str(parse_value("marvin_url", text.strip()))
    except BadInput as err:
        raise click.BadParameter(f"{err.message}, or nothing for the local one") from None


def ask_marvin(yes: bool) -> dict[str, str]:
    """The Marvin settings for a new project's config: asked, or empty with ``yes``."""
    from trek_tasks.scaffold import MARVIN_KEYS

    if yes:
        return dict.fromkeys(MARVIN_KEYS, "")
    click.echo("This utility will walk you through creating a config.json file.")
    click.echo(
        "Marvin url: leave it empty to use the local Marvin Trek starts for this project; "
        "set one later with `trek config marvin_url URL`."
    )
    return {
        "marvin_url": click.prompt("Marvin url", default="", value_proc=_url_answer),
        "marvin_JWT": click.prompt("Marvin JWT", default="", hide_input=True).strip(),
        "marvin_secret": click.prompt("Marvin secret", default="", hide_input=True).strip(),
    }


@command()
@click.argument("name")
@force_option
@yes_option
@click.option("--example", is_flag=True, help="A sample workflow using callservice + notification.")
@click.option(
    "--template",
    default="",
    metavar="NAME",
    help="Render from the installed project template NAME (`trek installtemplate -c project`).",
)
def createproject(name: str, force: bool, yes: bool, example: bool, template: str) -> None:
    """Create the project folder NAME (asks for the Marvin url, JWT and secret)."""
    from trek_tasks.files import display
    from trek_tasks.names import check_name
    from trek_tasks.scaffold import check_free, create_project
    from trek_tasks.templatestore import project_template

    dest = Path.cwd()
    check_name(name, "NAME")
    chosen = project_template(template) if template else None
    target = dest / name
    check_free(target, force)
    confirm_replace(target, yes)
    click.echo(f"Project [{name}] creating...")
    create_project(dest, name, ask_marvin(yes), force=force, example=example, template=chosen)
    click.echo("Done")
    if example:
        click.echo(f"Next: cd {display(target)} && trek install  (callservice, notification)")


@command()
@folder_option("Folder to make a project of (default: the current folder).")
@yes_option
def init(path: Path | None, yes: bool) -> None:
    """Turn a folder into a project: add the files it lacks, overwrite none."""
    from trek_tasks.config import CONFIG_NAME
    from trek_tasks.names import check_name
    from trek_tasks.scaffold import existing_folder, init_project

    folder = existing_folder(path or Path.cwd())
    name = check_name(folder.name, "folder name")
    click.echo(f"Project [{name}] initializing...")
    answers = {} if (folder / CONFIG_NAME).exists() else ask_marvin(yes)
    report_placed(folder, init_project(folder, answers))
    click.echo("Done")


@command()
@path_option
def validate(path: Path | None) -> None:
    """Check the project's files; every problem as file:line:col."""
    from trek_tasks.progress import Warned
    from trek_tasks.reporter import show
    from trek_tasks.validate import validate_project

    project = load_project(path)
    for warning in validate_project(project):
        show(Warned(warning))
    click.echo(f"Valid. [{project.name}]")


@command()
@path_option
@click.option("--show", is_flag=True, help="Print the DOT text.")
@click.option(
    "--status",
    "run_id",
    is_flag=False,
    flag_value="last",
    default=None,
    metavar="[RUN]",
    help="Colour nodes by their status in run RUN (default: the last run) and write "
    ".trek/graph-status.gv and its images instead.",
)
@pass_session
def graph(session: Session, path: Path | None, show: bool, run_id: str | None) -> None:
    """Write .trek/graph.gv and its PNG/SVG images (the doit task `graph`)."""
    from trek_tasks.steps import graph_file

    project = load_project(path)
    if run_id is not None:
        from trek_tasks.steps import write_status_graph

        gv = write_status_graph(project, run_id)
        if show:
            click.echo(gv.read_text(), nl=False)
        return
    try:
        run_tasks(session, path, ["graph"], report_up_to_date=True)
    finally:
        if show and graph_file(project).is_file():
            click.echo(graph_file(project).read_text(), nl=False)

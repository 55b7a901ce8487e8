"""Script commands: create<kind>, init<kind>, run<kind>, pack<kind>, deploy<kind> for every
script kind (made from the kind's name: no copy per kind), install, uninstall,
listscripts, publish, installtemplate, uninstalltemplate."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
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


category_option = click.option(
    "-c", "--category", required=True, help="script (a script folder) or project (a project)."
)
template_name_option = click.option("-n", "--name", required=True, help="The template's name.")


@command()
@click.option(
    "-p",
    "--path",
    "path",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Template for Trek project: a folder of jinja2 files like trek's templates/.",
)
@category_option
@template_name_option
def installtemplate(path: Path, category: str, name: str) -> None:
    """Install a template folder into the user's template store (checked: it renders and
    makes what its category needs); `--template NAME` on create<kind>/createproject uses it."""
    from trek_tasks.templatestore import install_template

    template = install_template(path, category, name)
    click.echo(f"Install template [{template.name}] into {template.category}")


@command()
@category_option
@template_name_option
def uninstalltemplate(category: str, name: str) -> None:
    """Remove a template from the user's template store."""
    from trek_tasks.templatestore import uninstall_template

    template = uninstall_template(category, name)
    click.echo(f"Uninstall template [{template.name}] from {template.category}")


template_option = click.option(
    "--template",
    "template",
    default="",
    metavar="NAME",
    help="Render from the installed template NAME (`trek installtemplate`).",
)


def create_command(kind_name: str) -> click.Command:
    @command(f"create{kind_name}")
    @click.argument("name")
    @force_option
    @yes_option
    @template_option
    def create(name: str, force: bool, yes: bool, template: str) -> None:
        from trek_tasks.kinds import load_kind
        from trek_tasks.names import check_script_name
        from trek_tasks.scaffold import check_free, create_script, script_target
        from trek_tasks.templatestore import script_template

        kind = load_kind(kind_name)
        dest = Path.cwd()
        check_script_name(name, "NAME")
        chosen = script_template(template, kind_name) if template else None
        target = script_target(dest, name, kind)
        check_free(target, force)
        confirm_replace(target, yes)
        existed = target.is_dir()
        click.echo(f"{kind_name.capitalize()} [{name}] creating...")
        placed = create_script(dest, name, kind, force=force, template=chosen)
        if existed:
            report_placed(target, placed)
        click.echo("Done")

    create.help = (
        f"Create the {kind_name} script NAME (under src/{kind_name}/ inside a project, "
        "else ./NAME)."
    )
    return create


def init_command(kind_name: str) -> click.Command:
    @command(f"init{kind_name}")
    @script_path_option
    @yes_option
    def init(path: Path | None, yes: bool) -> None:
        from trek_tasks.kinds import load_kind
        from trek_tasks.names import check_script_name
        from trek_tasks.scaffold import existing_folder, init_script

        folder = existing_folder(path or Path.cwd())
        name = check_script_name(folder.name, "folder name")
        click.echo(f"{kind_name.capitalize()} [{name}] initializing...")
        report_placed(folder, init_script(folder, load_kind(kind_name)))
        click.echo("Done")

    init.help = (
        f"Turn a folder into a {kind_name} script folder: add the files it lacks (samples "
        "fitting its para, when it has one), overwrite none."
    )
    return init


def run_command(kind_name: str) -> click.Command:
    @command(f"run{kind_name}")
    @script_path_option
    @click.option(
        "--localhost",
        is_flag=True,
        help="Run the script on this machine (sets its input localhost; not every kind has it).",
    )
    def run(path: Path | None, localhost: bool) -> None:
        from trek_tasks.localrun import run_script
        from trek_tasks.project import script_at

        script = script_at((path or Path.cwd()).resolve(), kind_name)
        click.echo(f"starting {kind_name} {script.id}...")
        outputs = run_script(script, localhost)
        click.echo(json.dumps(outputs, indent=2, ensure_ascii=False))

    run.help = f"Run one {kind_name} script folder with its inputs/event.yml; print the outputs."
    return run


def pack_command(kind_name: str) -> click.Command:
    @command(f"pack{kind_name}")
    @script_path_option
    @click.option(
        "-o", "--output", type=click.Path(path_type=Path), default=None, help="Folder for the zip."
    )
    def pack(path: Path | None, output: Path | None) -> None:
        from trek_tasks.pack import script_zip_name
        from trek_tasks.project import script_at
        from trek_tasks.steps import pack_script_to

        folder = (path or Path.cwd()).resolve()
        script = script_at(folder, kind_name)
        pack_script_to(script, (output or folder / "bin") / script_zip_name(script))

    pack.help = (
        f"Zip one {kind_name} script folder (default: the current folder) into its bin/, "
        f"as {kind_name}.<id>-<version>.zip."
    )
    return pack


def deploy_command(kind_name: str) -> click.Command:
    from trek_tasks.commands.ship import (
        autobuildpush_option,
        autopack_option,
        overwrite_option,
        projects_option,
    )

    @command(f"deploy{kind_name}")
    @script_path_option
    @projects_option
    @autopack_option
    @autobuildpush_option
    @overwrite_option
    def deploy(
        path: Path | None, projects: str, autopack: bool, autobuildpush: bool, yes: bool
    ) -> None:
        from trek_tasks.commands.ship import ask_overwrite, marvin_client
        from trek_tasks.config import Config
        from trek_tasks.containers.images import BUILT_KIND
        from trek_tasks.deploy import deploy as deploy_artifacts
        from trek_tasks.deploy import parse_projects, script_artifact
        from trek_tasks.localrun import marvin_for
        from trek_tasks.pack import script_zip_name
        from trek_tasks.progress import Warned
        from trek_tasks.project import find_root_or_none, script_at
        from trek_tasks.reporter import show
        from trek_tasks.steps import pack_script_to

        folder = (path or Path.cwd()).resolve()
        script = script_at(folder, kind_name)
        if parse_projects(projects):
            show(Warned("--projects: Marvin assigns workflows to projects, not scripts; ignored"))
        click.echo(f"Deploy {kind_name}: {script.id}...")
        if autobuildpush and kind_name == BUILT_KIND:  # other kinds have no image to push
            from trek_tasks.containers.registry import push_folder

            push_folder(folder)
        if autopack:
            pack_script_to(script, folder / "bin" / script_zip_name(script))
        artifact = script_artifact(script, folder / "bin")
        config = Config.load(find_root_or_none(folder), folder)
        marvin = marvin_client(marvin_for(folder, config))
        deploy_artifacts(marvin, [artifact], ask_overwrite(yes))
        click.echo("Done")

    deploy.help = (
        f"Upload one {kind_name} script folder's zip (bin/ in it, as pack{kind_name} writes) "
        "to Marvin; --autobuildpush builds and pushes a blcks script's image first (other "
        "kinds have none: ignored)."
    )
    return deploy


VERBS: dict[str, Callable[[str], click.Command]] = {
    "create": create_command,
    "init": init_command,
    "run": run_command,
    "pack": pack_command,
    "deploy": deploy_command,
}


@functools.cache
def kind_command(name: str) -> click.Command:
    """The command ``<verb><kind>`` (``createshell``); AttributeError for another name."""
    for verb, make in VERBS.items():
        if name.startswith(verb) and len(name) > len(verb):
            return make(name[len(verb) :])
    raise AttributeError(name)


def __getattr__(name: str) -> click.Command:
    """``create<kind>`` and the other per-kind commands, made when first asked for (the
    lazy group looks them up by name in this module, as it does the others)."""
    return kind_command(name)

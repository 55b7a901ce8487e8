"""The ``trek`` command line: the group, its lazily loaded commands and the error handler.

The commands live in ``trek_tasks/commands/`` (one module per area); a command's module
is imported only when that command runs or help lists it, and those modules import the
library inside the command bodies, so ``trek --help`` stays light.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

from trek_tasks import __version__
from trek_tasks.commands import Session, verbose_option, version_line
from trek_tasks.errors import INTERRUPTED, ManyErrors, TrekError

# command name -> "module:function" in trek_tasks.commands
COMMANDS = {
    "version": "project:version",
    "config": "project:config_cmd",
    "createproject": "project:createproject",
    "init": "project:init",
    "validate": "project:validate",
    "graph": "project:graph",
    "install": "scripts:install",
    "uninstall": "scripts:uninstall",
    "listscripts": "scripts:listscripts",
    "publish": "scripts:publish",
    "initenv": "environment:initenv",
    "shutdownenv": "environment:shutdownenv",
    "logs": "environment:logs",
    "run": "environment:run_cmd",
    "watch": "environment:watch",
    "plan": "plan:plan",
    "why": "plan:why",
    "serve": "environment:serve",
    "gc": "environment:gc",
    "pack": "ship:pack",
    "build": "ship:build",
    "buildblcks": "ship:buildblcks",
    "push": "ship:push",
    "pushblcks": "ship:pushblcks",
    "marvin": "marvin:marvin",
    "login": "marvin:login",
    "deploy": "ship:deploy",
    "deployed": "ship:deployed",
    "installtemplate": "scripts:installtemplate",
    "uninstalltemplate": "scripts:uninstalltemplate",
    "webserver": "portal:webserver",
    "record": "recorded:record",
    "replay": "recorded:replay",
}

# The script kinds (``kinds.KINDS``, written out here so that listing the commands imports
# no kind; tests/test_cli.py checks they agree), each with the same five commands, made
# from the kind in commands/scripts.py.
SCRIPT_KINDS = ("blcks", "shell", "ansible", "terraform")
COMMANDS.update(
    {
        f"{verb}{kind}": f"scripts:{verb}{kind}"
        for kind in SCRIPT_KINDS
        for verb in ("create", "init", "run", "pack", "deploy")
    }
)


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (click's LazyGroup pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return super().get_command(ctx, cmd_name)
        module_name, name = spec.split(":")
        found = getattr(importlib.import_module(f"trek_tasks.commands.{module_name}"), name)
        assert isinstance(found, click.Command), f"{spec} is not a command"
        return found

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand:
            # click suggests close names from the commands it holds; these are not loaded.
            names = self.list_commands(ctx)
            raise click.exceptions.NoSuchCommand(args[0], possibilities=names, ctx=ctx) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@verbose_option
@click.version_option(__version__, "--version", message=version_line())
def cli() -> None:
    """Trek on doit: write, run and ship Marvin workflows with incremental tasks."""


def interrupted_line(err: KeyboardInterrupt) -> str:
    """The one line after Ctrl-C: what it stopped, when the step says (``Interrupted``)."""
    return f"Interrupted: {err}" if str(err) else "Interrupted."


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (bad input 2, failed step 1, Ctrl-C 130)."""
    session = Session()
    try:
        result = cli.main(args=argv, prog_name="trek", standalone_mode=False, obj=session)
    except TrekError as err:
        if session.verbose:
            traceback.print_exc()
        from trek_tasks.files import one_line

        for problem in err.errors if isinstance(err, ManyErrors) else [err]:
            click.echo(f"trek: error: {one_line(str(problem))}", err=True)
            if problem.detail:
                click.echo(problem.detail, err=True)
        return err.exit_code
    except click.exceptions.Abort as err:
        # click turns Ctrl-C into Abort (after a newline, so the line starts clean).
        cause = err.__cause__
        said = interrupted_line(cause) if isinstance(cause, KeyboardInterrupt) else "Aborted."
        click.echo(said, err=True)
        return INTERRUPTED
    except KeyboardInterrupt as err:
        click.echo(interrupted_line(err), err=True)
        return INTERRUPTED
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

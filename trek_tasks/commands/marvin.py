"""Marvin commands: `trek marvin serve|useradd` (the standalone local Marvin) and `trek login`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from trek_tasks.commands import command, path_option

# Environment variables for CI (no terminal to ask on). A password is never an option:
# the command line shows in `ps`.
URL_ENV = "TREK_MARVIN_URL"
USERNAME_ENV = "TREK_MARVIN_USERNAME"
PASSWORD_ENV = "TREK_MARVIN_PASSWORD"

data_option = click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The Marvin's data folder (default: ~/.trek/marvin).",
)
password_stdin_option = click.option(
    "--password-stdin",
    is_flag=True,
    help=f"Read the password from stdin (or set {PASSWORD_ENV}; else it is asked).",
)


def _interactive() -> bool:
    return click.get_text_stream("stdin").isatty()


def _password(from_stdin: bool, confirm: bool = False) -> str:
    """The password from stdin, the environment or, on a terminal, a prompt."""
    from trek_tasks.errors import BadInput

    if from_stdin:
        password = click.get_text_stream("stdin").read().rstrip("\r\n")
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    elif _interactive():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    else:
        raise BadInput(
            f"no password and no terminal to ask on: pass --password-stdin or set {PASSWORD_ENV}",
            "password",
        )
    if not password:
        raise BadInput("the password is empty", "password")
    return password


@click.group("marvin")
def marvin() -> None:
    """A standalone local Marvin that several projects log in and deploy to."""


@command("serve")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on (default 8765; 0 picks a free one).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@data_option
@click.option("--log-requests", is_flag=True, help="Log each request to stderr.")
def serve(port: int | None, host: str, data_dir: Path | None, log_requests: bool) -> int:
    """Serve a local Marvin for several projects until Ctrl-C or SIGTERM."""
    from trek_tasks.files import display
    from trek_tasks.marvin.server import READY, MarvinServer, StopSignals
    from trek_tasks.marvin.service import (
        DEFAULT_PORT,
        FIRST_USER,
        USERS_FILE,
        default_data,
        open_data,
    )

    signals = StopSignals()
    data = open_data(data_dir or default_data())
    if data.first_password is not None:
        # Shown before the server starts, so a start that fails does not lose it.
        click.echo(
            f"First start: made user '{FIRST_USER}' with password {data.first_password} "
            f"(shown this once: {display(data.path / USERS_FILE)} keeps only a salted hash; "
            "`trek marvin useradd` adds users or sets passwords)"
        )
    server = MarvinServer(
        data.db_path,
        data.inventory,
        data.secret,
        host,
        DEFAULT_PORT if port is None else port,
        log_requests,
        users=data.users,
    )
    server.start()
    click.echo(f"Data folder: {display(data.path)}")
    click.echo(f"{READY} {server.url}")  # the last line: what a caller waits for
    return signals.wait(server)


@command("useradd")
@click.argument("username")
@data_option
@password_stdin_option
def useradd(username: str, data_dir: Path | None, password_stdin: bool) -> None:
    """Add a user to the data folder, or set the password of one it has."""
    from trek_tasks.marvin.service import add_user, default_data

    password = _password(password_stdin, confirm=True)
    added = add_user(data_dir or default_data(), username, password)
    said = "Added user" if added else "Set the password of"
    click.echo(f"{said} {username} (a running Marvin reads its users when it starts)")


marvin.add_command(serve)
marvin.add_command(useradd)


@command()
@click.option("--global", "global_", is_flag=True, help="Keep the token in ~/.trek/config.json.")
@click.option("--url", envvar=URL_ENV, help=f"The Marvin (or {URL_ENV}; default: marvin_url).")
@click.option("--username", envvar=USERNAME_ENV, help=f"Who logs in (or {USERNAME_ENV}).")
@password_stdin_option
@path_option
def login(
    global_: bool, url: str | None, username: str | None, password_stdin: bool, path: Path | None
) -> None:
    """Log in to a Marvin and keep its token (marvin_JWT) in the project's config."""
    from trek_tasks.config import CONFIG_NAME, Config, global_config_path, parse_value
    from trek_tasks.errors import BadInput
    from trek_tasks.files import display
    from trek_tasks.http import shown_url
    from trek_tasks.marvin.account import login as get_token
    from trek_tasks.marvin.account import save_login
    from trek_tasks.marvin.target import configured_url
    from trek_tasks.project import find_root

    if global_:
        config_file, config = global_config_path(), Config.load()
    else:
        start = path or Path.cwd()
        try:
            root = find_root(start)
        except BadInput:
            raise BadInput(
                "not inside a Trek project; `trek login --global` keeps the token for all",
                display(start),
            ) from None
        config_file, config = root / CONFIG_NAME, Config.load(root)
    ask = _interactive() and not password_stdin
    if not username:
        if not ask:
            raise BadInput(f"no username: pass --username or set {USERNAME_ENV}", "login")
        username = click.prompt("Username")
    password = _password(password_stdin)
    if not url:
        configured = configured_url(config)
        url = click.prompt("Marvin url", default=configured or None) if ask else configured
    if not url:
        raise BadInput(
            f"no Marvin URL: pass --url, set {URL_ENV} or `trek config marvin_url URL`", "login"
        )
    url = str(parse_value("marvin_url", url.strip()))
    click.echo(f"Login to Marvin: [{shown_url(url)}]")
    save_login(config_file, url, get_token(url, username, password))
    click.echo(f"Logged in as {username}; the token is kept in {display(config_file)}")

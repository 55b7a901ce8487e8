"""The portal command: webserver."""

from __future__ import annotations

from pathlib import Path

import click

from trek_tasks.commands import command, path_option

DEFAULT_PORT = 5050


@command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to serve on (0: a free one). Trek's -p; here -p is the project, as everywhere.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host other machines can reach (anyone reaching it can run workflows).",
)
@click.option(
    "--debug", is_flag=True, help="Log every request, reload templates, show tracebacks here."
)
@path_option
def webserver(port: int, host: str, allow_remote: bool, debug: bool, path: Path | None) -> None:
    """Serve the management portal: the projects under flow_home and the current one."""
    import logging

    from werkzeug.serving import make_server

    from trek_tasks.config import Config
    from trek_tasks.errors import BadInput
    from trek_tasks.portal.app import create_app
    from trek_tasks.portal.model import current_root, find_sites, flow_home
    from trek_tasks.portal.served import Portal, is_loopback, served_hosts

    if path is not None and not path.is_dir() and path.name.isdigit():
        raise BadInput(
            f"-p names the project folder (as in every trek command); to serve on port "
            f"{path.name} use --port {path.name}"
        )
    if not is_loopback(host) and not allow_remote:
        raise BadInput(
            f"--host {host} is not a loopback address: other machines could start runs; "
            "add --allow-remote to serve there anyway"
        )
    root = current_root(path)
    config = Config.load(root)
    sites = find_sites(root, flow_home(config))
    if not sites:
        raise BadInput(
            "no project to serve: run it inside a project, pass -p PROJECT or set flow_home "
            "(`trek config --global flow_home FOLDER`)"
        )
    logging.getLogger("werkzeug").setLevel(logging.INFO if debug else logging.WARNING)
    portal = Portal(sites, frozenset())
    server = make_server(host, port, create_app(portal, debug), threaded=True)
    bound = server.server_port
    if not allow_remote:
        portal.hosts = served_hosts(host, bound)
    if not is_loopback(host):
        click.echo(
            f"warning: serving on {host}:{bound}, reachable from other machines; anyone "
            "who can open the page can run and shut down these projects",
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host
    count = f"{len(sites)} project{'s' if len(sites) != 1 else ''}"
    click.echo(f"Portal on http://{shown}:{bound}/ serving {count} (Ctrl-C stops)")
    for site in sites:
        click.echo(f"  {site.key}: {site.root}")
    try:
        server.serve_forever()
    finally:
        server.server_close()

"""``trek config``: read and write the layered settings."""

from __future__ import annotations

import json
from pathlib import Path

import click

from trek_tasks.config import (
    CONFIG_NAME,
    Config,
    check_key,
    global_config_path,
    mask,
    parse_value,
    update_file,
)
from trek_tasks.errors import BadInput
from trek_tasks.project import find_root


def _project_root(path: Path | None) -> Path | None:
    try:
        return find_root(path or Path.cwd())
    except BadInput:
        if path is not None:
            raise
        return None


def _script_dir(root: Path | None, start: Path) -> Path | None:
    """The script folder around ``start`` (one holding ``<name>.para``), if any."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if root is not None and folder == root:
            return None
        if (folder / f"{folder.name}.para").is_file():
            return folder
    return None


def _show(value: object) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def run_config(
    key: str | None,
    value: str | None,
    *,
    global_: bool,
    unset: bool,
    list_: bool,
    path: Path | None,
) -> None:
    root = _project_root(path)
    start = path or Path.cwd()
    if list_ or key is None:
        config = Config.load() if global_ else Config.load(root, _script_dir(root, start))
        for name, item in config.values.items():
            click.echo(f"{name}={_show(mask(name, item))}")
        return
    check_key(key)
    if value is None and not unset:
        config = Config.load(root, _script_dir(root, start)) if not global_ else Config.load()
        click.echo(_show(mask(key, config[key])))
        return
    if global_:
        target = global_config_path()
    elif root is not None:
        target = root / CONFIG_NAME
    else:
        raise BadInput("not inside a Trek project; use --global to set a global value", "config")
    if unset:
        update_file(target, key, unset=True)
    elif value is not None:
        update_file(target, key, parse_value(key, value))

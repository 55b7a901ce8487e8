"""``trek config``: read and write the layered settings (the command prints)."""

from __future__ import annotations

import json
from pathlib import Path

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
from trek_tasks.project import MANIFEST, find_root, find_root_or_none


def _project_root(path: Path | None) -> Path | None:
    """The project of ``-p`` (which must be one), else the one around the cwd, if any."""
    if path is not None:
        return find_root(path)
    return find_root_or_none(Path.cwd())


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


def _config(root: Path | None, path: Path | None, global_: bool) -> Config:
    return Config.load() if global_ else Config.load(root, _script_dir(root, path or Path.cwd()))


def setting_lines(*, global_: bool, path: Path | None) -> list[str]:
    """``trek config -l``: every merged setting as ``name=value``, credentials masked."""
    config = _config(_project_root(path), path, global_)
    return [f"{name}={_show(mask(name, item))}" for name, item in config.values.items()]


def setting_text(key: str, *, global_: bool, path: Path | None) -> str:
    """``trek config KEY``: the merged value of ``key``, masked when it is a credential."""
    root = _project_root(path)
    check_key(key)
    return _show(mask(key, _config(root, path, global_)[key]))


def write_setting(
    key: str, value: str | None, *, global_: bool, unset: bool, path: Path | None
) -> None:
    """``trek config KEY VALUE`` / ``--unset``: change the project's or the global file."""
    root = _project_root(path)
    check_key(key)
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


def reset_hint(key: str, source: Path | None) -> str:
    """How to give ``key``, read from the config file ``source``, its default back."""
    if source == global_config_path():
        return f"`trek config --global {key} ''`"
    if source is None or (source.parents[1] / MANIFEST).is_file():
        return f"`trek config {key} ''`"
    return "emptying it there"  # a script folder's own layer: `trek config` writes elsewhere

"""Layered configuration: global < project < script ``.trek/config.json``.

Empty strings in a file mean "not set" (Trek wrote every key with ``""``), so a lower
layer or the default shows through.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trek_tasks.errors import BadInput
from trek_tasks.files import (
    Document,
    display,
    dump_json,
    load_json,
    load_marked,
    settled,
    write_atomic,
)
from trek_tasks.kinds import code_base_defaults
from trek_tasks.state import STATE_DIR

CONFIG_NAME = Path(STATE_DIR) / "config.json"
# What ``docker_registry`` and ``blcks_base_image`` mean when unset (they default to "", like
# every key Trek wrote empty): the registry of a local ``docker run registry:2`` and the
# official slim Python image a user with an ordinary Docker has or can pull.
DEFAULT_REGISTRY = "localhost:5000"
DEFAULT_BASE_IMAGE = "python:3.11-slim"

DEFAULTS: dict[str, Any] = {
    "marvin_url": "",
    "marvin_JWT": "",
    "marvin_secret": "",
    "router_port": 5000,
    "action_timeout": 30,
    "blcks_code_base": "src/blcks",
    "ansible_code_base": "src/ansible",
    "shell_script_base": "src/shell",
    "script_repository": "",
    "input_data_path": "inputs/data.yml",
    "input_event_path": "inputs/event.yml",
    "local_inventory_file": "inputs/inventory.yml",
    "flow_home": "",
    "envs": {},
    "runtime": "local",
    # Local scripts start as children of a warm per-environment fork server; false starts
    # each in a fresh interpreter (runtimes/local.py).
    "fork_server": True,
    "blcks_base_image": "",
    "docker_registry": "",
    "docker_username": "",
    "docker_password": "",
}
# A script kind brings its code-base key (default ``src/<kind>``) unless SPEC names it above.
DEFAULTS.update({k: v for k, v in code_base_defaults().items() if k not in DEFAULTS})

INT_KEYS = frozenset({"router_port", "action_timeout"})
# Settings naming a file or folder of the project: checked (Config.checked) before use.
PATH_KEYS = frozenset(
    {"input_data_path", "input_event_path", "local_inventory_file", *code_base_defaults()}
)
OBJECT_KEYS = frozenset({"envs"})
BOOL_KEYS = frozenset({"fork_server"})
BOOL_WORDS = {word: True for word in ("true", "yes", "on", "1")} | {
    word: False for word in ("false", "no", "off", "0")
}
CREDENTIAL_KEYS = frozenset({"marvin_JWT", "marvin_secret", "docker_password"})


def global_config_path() -> Path:
    """``~/.trek/config.json`` (``TREK_GLOBAL_CONFIG`` overrides, for tests and CI)."""
    override = os.environ.get("TREK_GLOBAL_CONFIG")
    return Path(override) if override else Path.home() / CONFIG_NAME


@dataclass(frozen=True)
class Config:
    """Merged settings plus the file each one came from (None = built-in default)."""

    values: Mapping[str, Any]
    sources: Mapping[str, Path | None]
    files: tuple[Path, ...]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def overridden(self, key: str, value: Any) -> Config:
        """These settings with ``key`` set by the command line (``--runtime docker``), for
        one command; no file holds it."""
        return Config({**self.values, key: value}, {**self.sources, key: None}, self.files)

    def checked(self, key: str) -> Any:
        """The value of ``key`` checked against the config schema (the rule ``trek
        validate`` applies): a bad one is BadInput naming its file, line and key. Only a
        value a file sets is checked (the defaults are valid)."""
        value = self.values[key]
        source = self.sources.get(key)
        if source is not None and value != DEFAULTS.get(key):
            check_value(key, load_marked(source))
        return value

    @classmethod
    def load(cls, project_root: Path | None = None, script_dir: Path | None = None) -> Config:
        """Merge the layers that exist, lowest first."""
        layers = [global_config_path()]
        if project_root is not None:
            layers.append(project_root / CONFIG_NAME)
        if script_dir is not None and script_dir != project_root:
            layers.append(script_dir / CONFIG_NAME)
        values = dict(DEFAULTS)
        sources: dict[str, Path | None] = dict.fromkeys(DEFAULTS)
        files = []
        for path in layers:
            if not path.is_file():
                continue
            files.append(path)
            data = read_file(path)
            if holds_credentials(data):
                warn_if_readable(path)
            for key, value in data.items():
                if value == "" or value is None:
                    continue
                values[key] = value
                sources[key] = path
        return cls(values, sources, tuple(files))


# Config files as last read, by what ``stat`` says of them: every script's settings are
# merged from the same few files many times a run (and every cycle of a watch).
_READ: dict[str, tuple[tuple[int, int, int, int], dict[str, Any]]] = {}


def read_file(path: Path) -> dict[str, Any]:
    """One config file as a dict (the caller's own copy); a file that is not a JSON object
    is bad input."""
    try:
        info = path.stat()
        key = (info.st_size, info.st_ino, info.st_mtime_ns, info.st_ctime_ns)
    except OSError:
        key = None
    known = _READ.get(str(path))
    if key is not None and known is not None and known[0] == key:
        return copy.deepcopy(known[1])
    data = load_json(path)
    if not isinstance(data, dict):
        raise BadInput("a config file must hold a JSON object", display(path))
    if key is not None and settled(key[2], key[3]):
        _READ[str(path)] = (key, copy.deepcopy(data))
    return data


def check_key(key: str) -> None:
    """Unknown keys fail with the closest known one suggested."""
    if key in DEFAULTS:
        return
    close = difflib.get_close_matches(key, list(DEFAULTS), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(DEFAULTS)}"
    raise BadInput(f"unknown config key '{key}'{hint}", "config")


def parse_value(key: str, text: str) -> Any:
    """Turn a command-line value into the key's type."""
    check_key(key)
    if key in INT_KEYS:
        try:
            value: Any = int(text)
        except ValueError:
            raise BadInput(f"'{key}' takes a whole number, not '{text}'", "config") from None
    elif key in BOOL_KEYS:
        if text.strip().lower() not in BOOL_WORDS:
            raise BadInput(f"'{key}' takes true or false, not '{text}'", "config")
        value = BOOL_WORDS[text.strip().lower()]
    elif key in OBJECT_KEYS:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise BadInput(f"'{key}' takes a JSON object, e.g. '{{\"A\": \"1\"}}'", "config")
    else:
        value = text
    try:
        check_value(key, Document("config", {key: value}))
    except BadInput as err:
        raise BadInput(err.message, "config") from None
    return value


def check_value(key: str, doc: Document) -> None:
    """Raise BadInput when ``key`` in the config ``doc`` breaks the config schema."""
    from trek_tasks.validate.schema import check_setting

    check_setting(doc, key)


def mask(key: str, value: Any) -> Any:
    """Hide credentials: keep nothing of a secret but whether it is set."""
    if key in CREDENTIAL_KEYS and value:
        return "********"
    return value


def holds_credentials(data: Mapping[str, Any]) -> bool:
    return any(data.get(key) for key in CREDENTIAL_KEYS)


_warned: set[tuple[Path, int]] = set()  # each loose file is said once per command


def warn_if_readable(path: Path) -> None:
    """Warn (once) when a config file holding a credential can be read by others: trek
    writes such files 0600; one copied, unpacked or created by hand may not be. The
    command goes on (the token is the user's to protect), the line says how to fix it."""
    from trek_tasks.events import emit
    from trek_tasks.progress import Warned

    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return
    if mode & 0o077 and (path, mode) not in _warned:
        _warned.add((path, mode))
        shown = display(path)
        emit(Warned(f"{shown} holds credentials but is mode {mode:04o}; run chmod 600 {shown}"))


def write_file(path: Path, data: Mapping[str, Any]) -> None:
    """Write a config file; 0600 whenever it holds a credential."""
    write_atomic(path, dump_json(dict(data)), private=holds_credentials(data))


def update_file(path: Path, key: str, value: Any = None, unset: bool = False) -> None:
    """Set (or remove) one key in one config file, keeping the others."""
    check_key(key)
    data = read_file(path) if path.is_file() else {}
    if unset:
        data.pop(key, None)
    else:
        data[key] = value
    write_file(path, data)

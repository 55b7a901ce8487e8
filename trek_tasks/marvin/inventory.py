"""The asset inventory that seeds the local Marvin (``inputs/inventory.yml``).

Loading checks the whole file and reports every mistake with ``file:line:col``.
A missing file is an empty inventory, so ``trek run`` works before anyone writes one.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from trek_tasks.errors import BadInput, ManyErrors
from trek_tasks.files import Document, load_marked, shown

CONFIG_KEY = "local_inventory_file"
DEFAULT_PATH = "inputs/inventory.yml"


@dataclass(frozen=True)
class Host:
    """A server; ``port`` is informative (e.g. the Redis port a script should try)."""

    id: str
    name: str
    ip: str
    port: int | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Asset:
    """A domain or a CDN: only an id, a name and tags."""

    id: str
    name: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Channel:
    """A chat channel; messages sent to it are also POSTed to ``webhook`` when set.
    ``users``: who may see and use it (empty: every user)."""

    id: str
    name: str
    webhook: str | None = None
    users: tuple[str, ...] = ()

    def open_to(self, username: str) -> bool:
        return not self.users or username in self.users


@dataclass(frozen=True)
class User:
    """Someone who can log in to the local Marvin."""

    username: str
    password: str
    name: str
    email: str


DEFAULT_USER = User("trek", "trek", "Trek Developer", "trek@localhost")


@dataclass(frozen=True)
class Inventory:
    """Everything the local Marvin is seeded with."""

    hosts: tuple[Host, ...] = ()
    domains: tuple[Asset, ...] = ()
    cdns: tuple[Asset, ...] = ()
    channels: tuple[Channel, ...] = ()
    users: tuple[User, ...] = (DEFAULT_USER,)

    @classmethod
    def load(cls, path: Path, root: Path | None = None) -> Inventory:
        """Same as :func:`load_inventory`."""
        return load_inventory(path, root)


def inventory_path(project_root: Path, config: Mapping[str, Any]) -> Path:
    """The inventory file a project uses (config ``local_inventory_file``, project-relative)."""
    return project_root / (config.get(CONFIG_KEY) or DEFAULT_PATH)


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class _Problem(Exception):
    """One bad value, reported at ``path`` inside the document."""

    def __init__(self, message: str, path: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    return type(value).__name__


def _text(value: Any, field: str, path: tuple[Any, ...]) -> str:
    if not isinstance(value, str):
        hint = "; quote it" if isinstance(value, (bool, int, float)) else ""
        raise _Problem(f"'{field}' must be a string, not {_kind(value)}{hint}", path)
    if not value.strip():
        raise _Problem(f"'{field}' must not be empty", path)
    return value


def _ip(value: Any, field: str, path: tuple[Any, ...]) -> str:
    text = _text(value, field, path)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise _Problem(
            f"'{field}' must be an IP address like 127.0.0.1, not {shown(text)}", path
        ) from None
    return text


def _port(value: Any, field: str, path: tuple[Any, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _Problem(
            f"'{field}' must be a whole number from 1 to 65535, not {shown(value)}", path
        )
    return value


def _tags(value: Any, field: str, path: tuple[Any, ...]) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Problem(f"'{field}' must be a list of tag names, not {_kind(value)}", path)
    for index, item in enumerate(value):
        problem = tag_problem(item)
        if problem:
            raise _Problem(problem, path + (index,))
    return tuple(dict.fromkeys(value))


def tag_problem(value: Any) -> str | None:
    """What is wrong with a tag name, or None: tags are non-empty strings without spaces."""
    if not isinstance(value, str) or not value:
        return f"a tag name must be a non-empty string, not {_kind(value)}"
    if any(char.isspace() for char in value):
        return f"tag name {shown(value)} contains a space; search terms are split at spaces"
    return None


def _usernames(value: Any, field: str, path: tuple[Any, ...]) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Problem(f"'{field}' must be a list of usernames, not {_kind(value)}", path)
    return tuple(
        dict.fromkeys(_text(item, field, path + (index,)) for index, item in enumerate(value))
    )


def _url(value: Any, field: str, path: tuple[Any, ...]) -> str:
    text = _text(value, field, path)
    try:
        parts = urlsplit(text)
        # .port raises ValueError when the port is not a number below 65536.
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid:
        raise _Problem(f"'{field}' must be an http:// or https:// URL, not '{text}'", path)
    return text


Check = Callable[[Any, str, tuple[Any, ...]], Any]


@dataclass(frozen=True)
class _Section:
    singular: str
    key: str
    required: tuple[str, ...]
    fields: Mapping[str, Check]
    build: Callable[..., Any]


def _user(username: str, password: str, name: str | None = None, email: str | None = None) -> User:
    return User(username, password, name or username, email or f"{username}@localhost")


_SECTIONS: dict[str, _Section] = {
    "hosts": _Section(
        "host",
        "id",
        ("id", "name", "ip"),
        {"id": _text, "name": _text, "ip": _ip, "port": _port, "tags": _tags},
        Host,
    ),
    "domains": _Section(
        "domain", "id", ("id", "name"), {"id": _text, "name": _text, "tags": _tags}, Asset
    ),
    "cdns": _Section(
        "cdn", "id", ("id", "name"), {"id": _text, "name": _text, "tags": _tags}, Asset
    ),
    "channels": _Section(
        "channel",
        "id",
        ("id", "name"),
        {"id": _text, "name": _text, "webhook": _url, "users": _usernames},
        Channel,
    ),
    "users": _Section(
        "user",
        "username",
        ("username", "password"),
        {"username": _text, "password": _text, "name": _text, "email": _text},
        _user,
    ),
}

# Hosts, domains and CDNs share one id space: a tag update names assets by id.
_ID_SPACE = {"hosts": "assets", "domains": "assets", "cdns": "assets"}


def _unknown_key(key: Any, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
    return f"unknown {what} key {shown(key)}{hint}"


class _Checker:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.errors: list[BadInput] = []
        self.seen: dict[tuple[str, str], tuple[Any, ...]] = {}

    def report(self, message: str, path: tuple[Any, ...], key: bool = False) -> None:
        self.errors.append(BadInput(message, self.doc.where(path, key=key)))

    def section(self, name: str, value: Any) -> list[Any]:
        spec = _SECTIONS[name]
        if value is None:
            return []
        if not isinstance(value, list):
            self.report(f"'{name}' must be a list of {spec.singular} mappings", (name,))
            return []
        built = []
        for index, item in enumerate(value):
            made = self.item(spec, name, index, item)
            if made is not None:
                built.append(made)
        return built

    def item(self, spec: _Section, name: str, index: int, item: Any) -> Any:
        path: tuple[Any, ...] = (name, index)
        if not isinstance(item, dict):
            needed = ", ".join(spec.required)
            self.report(f"each of '{name}' must be a mapping with {needed}", path)
            return None
        values: dict[str, Any] = {}
        ok = True
        for key, raw in item.items():
            if key not in spec.fields:
                self.report(
                    _unknown_key(key, list(spec.fields), spec.singular), path + (key,), True
                )
                ok = False
                continue
            try:
                values[key] = spec.fields[key](raw, key, path + (key,))
            except _Problem as problem:
                self.report(problem.message, problem.path)
                ok = False
        for field in spec.required:
            if field not in item:
                self.report(f"{spec.singular} has no '{field}'; add it", path)
                ok = False
        if spec.key in values:
            ok = self.unique(name, spec.key, values[spec.key], path + (spec.key,)) and ok
        return spec.build(**values) if ok else None

    def channel_users(self, sections: dict[str, tuple[Any, ...]]) -> None:
        """Each username a channel lists must be one of the inventory's users."""
        known = {user.username for user in sections["users"]}
        for index, item in enumerate(_items(self.doc.data.get("channels"))):
            names = item.get("users") if isinstance(item, dict) else None
            for position, name in enumerate(names if isinstance(names, list) else []):
                if isinstance(name, str) and name.strip() and name not in known:
                    self.report(
                        f"channel user {shown(name)} is not in 'users' "
                        f"(known: {', '.join(sorted(known))})",
                        ("channels", index, "users", position),
                    )

    def unique(self, name: str, field: str, value: str, path: tuple[Any, ...]) -> bool:
        space = (_ID_SPACE.get(name, name), value)
        first = self.seen.setdefault(space, path)
        if first is not path:
            first_at = self.doc.where(first)
            self.report(f"duplicate {field} {shown(value)} (first at {first_at})", path)
            return False
        return True


def load_inventory(path: Path, root: Path | None = None) -> Inventory:
    """Load and check the inventory; a missing file is an empty inventory.

    Raises ``BadInput`` (``ManyErrors`` when there are several) naming ``file:line:col``.
    """
    if not path.exists():
        return Inventory()
    doc = load_marked(path, root)
    if doc.data is None:
        return Inventory()
    if not isinstance(doc.data, dict):
        known = ", ".join(_SECTIONS)
        raise BadInput(f"the inventory must be a mapping with keys {known}", doc.where())
    checker = _Checker(doc)
    sections: dict[str, tuple[Any, ...]] = {}
    for key, value in doc.data.items():
        if key in _SECTIONS:
            sections[key] = tuple(checker.section(key, value))
        else:
            checker.report(_unknown_key(key, list(_SECTIONS), "top-level"), (key,), key=True)
    if not sections.get("users"):
        sections["users"] = (DEFAULT_USER,)
    checker.channel_users(sections)
    if len(checker.errors) == 1:
        raise checker.errors[0]
    if checker.errors:
        raise ManyErrors(checker.errors)
    return Inventory(**sections)

"""The standalone local Marvin's data folder (``trek marvin serve --data DIR``).

One folder holds everything one Marvin serves to every project that deploys to it:

- ``secret``: the HS256 signing secret, generated on first start (0600);
- ``users.json``: the users, each with a salted PBKDF2-SHA256 hash of the password (0600),
  made on first start with one user ``trek`` and a random password handed back once;
- ``marvin.sqlite``: the data (deployed templates and scripts, messages...);
- ``inventory.yml`` (optional, written by hand): hosts, domains, CDNs and channels; its
  ``users`` are not used (``users.json`` is).

Standard library only, like the server.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trek_tasks.errors import BadInput
from trek_tasks.files import display, write_atomic
from trek_tasks.marvin.inventory import Inventory, load_inventory
from trek_tasks.marvin.store import StoredUser, hash_password

SECRET_FILE = "secret"
USERS_FILE = "users.json"
DB_FILE = "marvin.sqlite"
INVENTORY_FILE = "inventory.yml"
FIRST_USER = "trek"
DEFAULT_PORT = 8765  # fixed, so a login's marvin_url stays valid across restarts
USERS_FORMAT = "pbkdf2-sha256"  # the hash each users.json entry holds (store.PASSWORD_ROUNDS)
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")


def default_data() -> Path:
    """``~/.trek/marvin``: where ``trek marvin serve`` keeps its data unless told."""
    return Path.home() / ".trek" / "marvin"


@dataclass(frozen=True)
class DataFolder:
    """An opened data folder: what the server needs, and the first user's password when
    this start made it (``None`` on every later start: it is handed out once)."""

    path: Path
    secret: str
    users: tuple[StoredUser, ...]
    inventory: Inventory
    first_password: str | None = None

    @property
    def db_path(self) -> Path:
        return self.path / DB_FILE


def open_data(path: Path) -> DataFolder:
    """Open ``path`` as a data folder, making it (0700) and what is missing in it."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        raise BadInput(
            f"cannot make the data folder: {err.strerror or err}", display(path)
        ) from None
    secret = _secret(path / SECRET_FILE)
    first_password = None
    users_path = path / USERS_FILE
    if not users_path.exists():
        first_password = secrets.token_urlsafe(12)
        write_users(users_path, [new_user(FIRST_USER, first_password)])
    users = read_users(users_path)
    inventory_path = path / INVENTORY_FILE
    inventory = load_inventory(inventory_path) if inventory_path.is_file() else Inventory()
    return DataFolder(path, secret, users, replace(inventory, users=()), first_password)


def _secret(path: Path) -> str:
    if not path.exists():
        write_atomic(path, secrets.token_urlsafe(32) + "\n", private=True)
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(f"cannot read the secret: {err}", display(path)) from None
    if not secret:
        raise BadInput("the secret file is empty; delete it to have a new one made", display(path))
    return secret


def new_user(username: str, password: str, name: str = "", email: str = "") -> StoredUser:
    """A user with a fresh salt; ``name`` defaults to the username, ``email`` to
    ``<username>@localhost`` (as in an inventory)."""
    if not _USERNAME.fullmatch(username):
        raise BadInput(f"'{username}' is not a valid username", "username")
    if not password:
        raise BadInput("the password is empty", "password")
    salt = os.urandom(16)
    return StoredUser(
        username,
        name or username,
        email or f"{username}@localhost",
        salt,
        hash_password(password, salt),
    )


def write_users(path: Path, users: list[StoredUser]) -> None:
    """``users.json``, 0600: ``{"format": "pbkdf2-sha256", "users": [{"username", "name",
    "email", "salt", "hash"}]}`` with salt and hash in hex."""
    entries = [
        {
            "username": u.username,
            "name": u.name,
            "email": u.email,
            "salt": u.salt.hex(),
            "hash": u.password_hash.hex(),
        }
        for u in users
    ]
    text = json.dumps({"format": USERS_FORMAT, "users": entries}, indent=2) + "\n"
    write_atomic(path, text, private=True)


def read_users(path: Path) -> tuple[StoredUser, ...]:
    """The users of ``users.json``; any mistake in it is one BadInput naming the file."""
    shown = display(path)
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(f"cannot read the users: {err}", shown) from None
    except json.JSONDecodeError as err:
        raise BadInput(f"not JSON: {err.msg} at line {err.lineno}", shown) from None
    if not isinstance(data, dict) or data.get("format") != USERS_FORMAT:
        raise BadInput(f'must be {{"format": "{USERS_FORMAT}", "users": [...]}}', shown)
    entries = data.get("users")
    if not isinstance(entries, list) or not entries:
        raise BadInput("'users' must be a non-empty list", shown)
    users = []
    for index, entry in enumerate(entries):
        try:
            user = StoredUser(
                entry["username"],
                entry["name"],
                entry["email"],
                bytes.fromhex(entry["salt"]),
                bytes.fromhex(entry["hash"]),
            )
        except (KeyError, TypeError, ValueError):
            raise BadInput(
                f"user {index} must have username, name, email and hex salt and hash", shown
            ) from None
        users.append(user)
    names = [u.username for u in users]
    if len(set(names)) != len(names):
        raise BadInput("a username is listed twice", shown)
    return tuple(users)


def add_user(path: Path, username: str, password: str) -> bool:
    """Add ``username`` to the data folder's users, or set their password; True when the
    user is new. A running server reads users at its start."""
    users_path = path / USERS_FILE
    users = list(read_users(users_path)) if users_path.exists() else []
    old = next((u for u in users if u.username == username), None)
    if old is None:
        users.append(new_user(username, password))
    else:
        user = new_user(username, password, old.name, old.email)
        users = [user if u.username == username else u for u in users]
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_users(users_path, users)
    return old is None

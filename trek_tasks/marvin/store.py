"""SQLite storage of the local Marvin.

Every start reseeds from the inventory: hosts, domains, CDNs, their tags, channels and
users are replaced by what the inventory says (so tags added by a run last until the
next start). Channel messages and deployed templates/scripts are kept.
Messages and deployed items belong to the user who sent or deployed them; channels may be
limited to some users. The file (and SQLite's -wal/-shm beside it) is kept 0600.
One connection shared by the server's threads behind a lock; WAL so other processes
can read the file while the server writes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from trek_tasks.errors import BadInput, TrekError
from trek_tasks.files import display
from trek_tasks.marvin.inventory import Channel, Host, Inventory

SCHEMA_VERSION = 2
PASSWORD_ROUNDS = 100_000

# Marvin calls hosts SERVER in some places and HOST in others; both mean a host.
ASSET_TYPES = {"SERVER": "HOST", "HOST": "HOST", "DOMAIN": "DOMAIN", "CDN": "CDN"}

_SCHEMA = """
CREATE TABLE assets (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL, ip TEXT, port INTEGER
);
CREATE TABLE asset_tags (
    asset_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (asset_id, tag)
);
CREATE TABLE channels (id TEXT PRIMARY KEY, name TEXT NOT NULL, webhook TEXT);
CREATE TABLE channel_users (
    channel_id TEXT NOT NULL, username TEXT NOT NULL, PRIMARY KEY (channel_id, username)
);
CREATE TABLE users (
    username TEXT PRIMARY KEY, salt BLOB NOT NULL, password_hash BLOB NOT NULL,
    name TEXT NOT NULL, email TEXT NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, channel_id TEXT NOT NULL,
    channel_name TEXT NOT NULL, message TEXT NOT NULL, created_at TEXT NOT NULL, task_id TEXT,
    sender TEXT
);
CREATE TABLE deployed (
    kind TEXT NOT NULL, id TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL,
    size INTEGER NOT NULL, created_at TEXT NOT NULL, content BLOB NOT NULL, owner TEXT,
    PRIMARY KEY (kind, id, version)
);
"""
# Which Marvin projects a deployed template is assigned to (``deploy --projects``). Made
# when missing, so databases of schema 2 gain it without a version change.
_ASSIGNMENTS = """
CREATE TABLE IF NOT EXISTS template_projects (
    id TEXT NOT NULL, version TEXT NOT NULL, project TEXT NOT NULL,
    PRIMARY KEY (id, version, project)
);
"""
# Schema 1 had no owners: its messages and deployed items keep a NULL sender/owner, which
# no user matches (a deploy replaces such an item as if it were absent).
_FROM_1 = """
CREATE TABLE channel_users (
    channel_id TEXT NOT NULL, username TEXT NOT NULL, PRIMARY KEY (channel_id, username)
);
ALTER TABLE messages ADD COLUMN sender TEXT;
ALTER TABLE deployed ADD COLUMN owner TEXT;
"""


class NotFound(TrekError):
    """Something named in a request does not exist (HTTP 404)."""


class Conflict(TrekError):
    """A deploy would replace different content without ``overwrite`` (HTTP 409)."""


class Forbidden(TrekError):
    """A deploy would replace another user's item (HTTP 403)."""


@dataclass(frozen=True)
class AssetRef:
    """An asset named in a tag: its id and type (HOST, DOMAIN or CDN)."""

    id: str
    type: str


@dataclass(frozen=True)
class Tag:
    name: str
    assets: tuple[AssetRef, ...]


@dataclass(frozen=True)
class TagChange:
    """Add (``tagged``) or remove the tag ``name`` on each asset."""

    name: str
    tagged: bool
    assets: tuple[AssetRef, ...]


@dataclass(frozen=True)
class Account:
    """A user as the API shows it (never the password)."""

    id: str
    username: str
    name: str
    email: str


@dataclass(frozen=True)
class StoredUser:
    """A user kept with a salted hash of the password (a standalone Marvin's users.json)."""

    username: str
    name: str
    email: str
    salt: bytes
    password_hash: bytes  # hash_password(password, salt)


@dataclass(frozen=True)
class Message:
    id: int
    channel_id: str
    channel_name: str
    message: str
    created_at: str
    task_id: str | None


@dataclass(frozen=True)
class Deployed:
    """A deployed template or script zip (the bytes stay in the database)."""

    kind: str
    id: str
    version: str
    digest: str
    size: int
    created_at: str


@dataclass(frozen=True)
class Listed:
    """A deployed item as the listing shows it: its metadata and, for a template, the
    Marvin projects it is assigned to."""

    item: Deployed
    projects: tuple[str, ...]


Outcome = Literal["created", "unchanged", "overwritten"]


def now_text() -> str:
    """The current UTC time as ``2024-05-01T12:00:00Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, PASSWORD_ROUNDS)


def _term_matches(host: Host, term: str) -> bool:
    prefix, colon, value = term.partition(":")
    prefix = prefix.lower()
    if colon and prefix == "tag":
        return value in host.tags
    if colon and prefix == "id":
        return host.id == value
    if colon and prefix == "name":
        return value.lower() in host.name.lower()
    if colon and prefix == "ip":
        return value in host.ip
    needle = term.lower()
    return any(needle in text.lower() for text in (host.id, host.name, host.ip))


class Store:
    """The local Marvin's database. Build it with :meth:`create`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._digest = ""  # of the readable state; "" until asked after a change
        self._passwords = ""  # digest of the seeded logins (the table keeps salted hashes)

    @classmethod
    def create(cls, db_path: Path, inventory: Inventory) -> Store:
        """Open (or make) the database at ``db_path`` and reseed it from ``inventory``."""
        shown = display(db_path)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            _make_private(db_path)
        except OSError as err:
            raise BadInput(
                f"cannot open the local Marvin database: {err.strerror or err}", shown
            ) from None
        try:
            conn = sqlite3.connect(db_path, timeout=10, check_same_thread=False)
        except sqlite3.Error as err:
            raise BadInput(f"cannot open the local Marvin database: {err}", shown) from None
        try:
            cls._prepare(conn, shown)
            store = cls(conn)
            store.seed(inventory)
        except sqlite3.DatabaseError as err:
            conn.close()
            raise BadInput(
                f"not a usable local Marvin database ({err}); delete it to start afresh", shown
            ) from None
        except BaseException:
            conn.close()
            raise
        return store

    @staticmethod
    def _prepare(conn: sqlite3.Connection, shown: str) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            with conn:
                conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION};")
        elif version == 1:
            with conn:
                conn.executescript(f"BEGIN; {_FROM_1} PRAGMA user_version = {SCHEMA_VERSION};")
        elif version != SCHEMA_VERSION:
            raise BadInput(
                f"database schema {version} is not the expected {SCHEMA_VERSION}; "
                "delete the file to start afresh",
                shown,
            )
        with conn:
            conn.executescript(_ASSIGNMENTS)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self, readable: bool = True) -> Iterator[sqlite3.Connection]:
        """One writer at a time; everything inside commits together or not at all.
        ``readable``: the change is to what ``state_digest`` covers."""
        with self._lock, self._conn:
            if readable:
                self._digest = ""
            yield self._conn

    def state_digest(self) -> str:
        """A digest of everything scripts can read here: hosts, domains and CDNs with their
        tags (as the API lists them), channels and who may use them, users and their
        passwords, deployed items and their owners.
        Not the messages: scripts send them, and a run that notifies would otherwise
        never be reused. Computed once per change."""
        with self._lock:
            if self._digest:
                return self._digest
            db = self._conn
            parts = {
                "assets": db.execute(
                    "SELECT id, type, name, ip, port FROM assets ORDER BY rowid"
                ).fetchall(),
                "tags": db.execute(
                    "SELECT asset_id, tag FROM asset_tags ORDER BY tag, rowid"
                ).fetchall(),
                "channels": db.execute(
                    "SELECT id, name, webhook FROM channels ORDER BY rowid"
                ).fetchall(),
                "channel_users": db.execute(
                    "SELECT channel_id, username FROM channel_users ORDER BY rowid"
                ).fetchall(),
                "users": db.execute(
                    "SELECT username, name, email FROM users ORDER BY rowid"
                ).fetchall(),
                "passwords": self._passwords,
                "deployed": db.execute(
                    "SELECT kind, id, version, digest, owner FROM deployed"
                    " ORDER BY kind, id, version"
                ).fetchall(),
            }
            text = json.dumps(parts, ensure_ascii=False)
            self._digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
            return self._digest

    def seed(self, inventory: Inventory) -> None:
        """Replace assets, tags, channels and users with the inventory's (keeps the rest)."""
        users = []
        for user in inventory.users:
            salt = os.urandom(16)
            users.append((user, salt, hash_password(user.password, salt)))
        logins = json.dumps([(u.username, u.password) for u in inventory.users])
        with self._transaction() as db:
            self._passwords = hashlib.sha256(logins.encode("utf-8")).hexdigest()
            for table in ("asset_tags", "assets", "channels", "channel_users", "users"):
                db.execute(f"DELETE FROM {table}")
            for host in inventory.hosts:
                db.execute(
                    "INSERT INTO assets VALUES (?, 'HOST', ?, ?, ?)",
                    (host.id, host.name, host.ip, host.port),
                )
                self._add_tags(db, host.id, host.tags)
            for kind, assets in (("DOMAIN", inventory.domains), ("CDN", inventory.cdns)):
                for asset in assets:
                    db.execute(
                        "INSERT INTO assets VALUES (?, ?, ?, NULL, NULL)",
                        (asset.id, kind, asset.name),
                    )
                    self._add_tags(db, asset.id, asset.tags)
            db.executemany(
                "INSERT INTO channels VALUES (?, ?, ?)",
                [(c.id, c.name, c.webhook) for c in inventory.channels],
            )
            db.executemany(
                "INSERT INTO channel_users VALUES (?, ?)",
                [(c.id, username) for c in inventory.channels for username in c.users],
            )
            db.executemany(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                [(u.username, salt, hashed, u.name, u.email) for u, salt, hashed in users],
            )

    @staticmethod
    def _add_tags(db: sqlite3.Connection, asset_id: str, tags: Sequence[str]) -> None:
        db.executemany(
            "INSERT OR IGNORE INTO asset_tags VALUES (?, ?)", [(asset_id, tag) for tag in tags]
        )

    def set_users(self, users: Sequence[StoredUser]) -> None:
        """Replace the users (seeded from the inventory) with ``users``, hashes as given."""
        rows = [(u.username, u.salt, u.password_hash, u.name, u.email) for u in users]
        with self._transaction() as db:
            self._passwords = hashlib.sha256(
                json.dumps([(r[0], r[1].hex(), r[2].hex()) for r in rows]).encode("utf-8")
            ).hexdigest()
            db.execute("DELETE FROM users")
            db.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?)", rows)

    def check_password(self, username: str, password: str) -> bool:
        """Whether ``username`` exists and ``password`` is theirs."""
        with self._lock:
            row = self._conn.execute(
                "SELECT salt, password_hash FROM users WHERE username = ?", (username,)
            ).fetchone()
        # Hash even for an unknown user so the answer takes the same time.
        salt, expected = row if row else (b"\0" * 16, b"")
        return hmac.compare_digest(hash_password(password, salt), expected) and row is not None

    def account(self, username: str) -> Account | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT username, name, email FROM users WHERE username = ?", (username,)
            ).fetchone()
        return Account(f"U-{row[0]}", row[0], row[1], row[2]) if row else None

    def hosts(self, search: str = "") -> list[Host]:
        """Hosts matching every space-separated term of ``search`` (see docs/marvin-api.md)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, name, ip, port FROM assets WHERE type = 'HOST' ORDER BY rowid"
            ).fetchall()
            tag_rows = self._conn.execute(
                "SELECT t.asset_id, t.tag FROM asset_tags t JOIN assets a ON a.id = t.asset_id"
                " WHERE a.type = 'HOST' ORDER BY t.rowid"
            ).fetchall()
        tags: dict[str, list[str]] = {}
        for asset_id, tag in tag_rows:
            tags.setdefault(asset_id, []).append(tag)
        hosts = [Host(i, name, ip, port, tuple(tags.get(i, ()))) for i, name, ip, port in rows]
        terms = search.split()
        return [host for host in hosts if all(_term_matches(host, term) for term in terms)]

    def host(self, host_id: str) -> Host:
        """One host; ``NotFound`` when there is none with that id."""
        for host in self.hosts():
            if host.id == host_id:
                return host
        raise NotFound(f"host '{host_id}' not found")

    def tags(self) -> list[Tag]:
        """Every tag in use, by name, with its assets in the order they were tagged."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT t.tag, a.id, a.type FROM asset_tags t JOIN assets a ON a.id = t.asset_id"
                " ORDER BY t.tag, t.rowid"
            ).fetchall()
        grouped: dict[str, list[AssetRef]] = {}
        for tag, asset_id, kind in rows:
            grouped.setdefault(tag, []).append(AssetRef(asset_id, kind))
        return [Tag(name, tuple(assets)) for name, assets in grouped.items()]

    def update_tags(self, changes: Sequence[TagChange]) -> None:
        """Apply all changes in one transaction; an unknown asset raises ``NotFound``."""
        with self._transaction() as db:
            for change in changes:
                for asset in change.assets:
                    row = db.execute("SELECT type FROM assets WHERE id = ?", (asset.id,)).fetchone()
                    if row is None or row[0] != asset.type:
                        raise NotFound(f"{asset.type.lower()} '{asset.id}' not found")
                    if change.tagged:
                        self._add_tags(db, asset.id, [change.name])
                    else:
                        db.execute(
                            "DELETE FROM asset_tags WHERE asset_id = ? AND tag = ?",
                            (asset.id, change.name),
                        )

    def channels(self, username: str) -> list[Channel]:
        """The channels ``username`` may see and use, in inventory order."""
        with self._lock:
            return self._channels(self._conn, username)

    @staticmethod
    def _channels(db: sqlite3.Connection, username: str) -> list[Channel]:
        rows = db.execute("SELECT id, name, webhook FROM channels ORDER BY rowid").fetchall()
        users: dict[str, list[str]] = {}
        for channel_id, name in db.execute(
            "SELECT channel_id, username FROM channel_users ORDER BY rowid"
        ):
            users.setdefault(channel_id, []).append(name)
        channels = [
            Channel(channel_id, name, webhook, tuple(users.get(channel_id, ())))
            for channel_id, name, webhook in rows
        ]
        return [channel for channel in channels if channel.open_to(username)]

    def add_messages(
        self, sender: str, channel_ids: Sequence[str], message: str, task_id: str | None = None
    ) -> list[Message]:
        """Store ``message`` from ``sender`` once per channel; a channel that does not
        exist or is not open to ``sender`` raises ``NotFound``."""
        created_at = now_text()
        stored = []
        with self._transaction(readable=False) as db:
            names = {channel.id: channel.name for channel in self._channels(db, sender)}
            for channel_id in channel_ids:
                if channel_id not in names:
                    raise NotFound(f"channel '{channel_id}' not found")
                cursor = db.execute(
                    "INSERT INTO messages"
                    " (channel_id, channel_name, message, created_at, task_id, sender)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (channel_id, names[channel_id], message, created_at, task_id, sender),
                )
                assert cursor.lastrowid is not None
                stored.append(
                    Message(
                        cursor.lastrowid,
                        channel_id,
                        names[channel_id],
                        message,
                        created_at,
                        task_id,
                    )
                )
        return stored

    def messages(self, sender: str, after: int = 0, task_id: str | None = None) -> list[Message]:
        """The messages ``sender`` sent with an id above ``after`` (of one task when
        given), oldest first."""
        query = (
            "SELECT id, channel_id, channel_name, message, created_at, task_id FROM messages"
            " WHERE sender = ? AND id > ?"
        )
        params: list[object] = [sender, after]
        if task_id is not None:
            query += " AND task_id = ?"
            params.append(task_id)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id", params).fetchall()
        return [Message(*row) for row in rows]

    def put_item(
        self,
        owner: str,
        kind: str,
        item_id: str,
        version: str,
        content: bytes,
        overwrite: bool = False,
    ) -> tuple[Deployed, Outcome]:
        """Store a zip ``owner`` deploys; same digest -> unchanged, other digest ->
        ``Conflict``; another user's item (whatever ``overwrite``) -> ``Forbidden``."""
        digest = hashlib.sha256(content).hexdigest()
        item = Deployed(kind, item_id, version, digest, len(content), now_text())
        with self._transaction() as db:
            row = db.execute(
                "SELECT digest, owner FROM deployed WHERE kind = ? AND id = ? AND version = ?",
                (kind, item_id, version),
            ).fetchone()
            if row is not None and row[1] is None:
                row = None  # deployed before items had owners: nobody's, so replaced
            if row is not None and row[1] != owner:
                raise Forbidden(f"{kind} {item_id} {version} belongs to another user")
            if row is not None and row[0] == digest:
                return self._item(db, owner, kind, item_id, version), "unchanged"
            if row is not None and not overwrite:
                raise Conflict(f"{kind} {item_id} {version} already exists")
            db.execute(
                "INSERT OR REPLACE INTO deployed VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, item_id, version, digest, item.size, item.created_at, content, owner),
            )
        return item, "created" if row is None else "overwritten"

    def item(self, owner: str, kind: str, item_id: str, version: str) -> Deployed:
        """The metadata of a zip ``owner`` deployed; ``NotFound`` when absent or another
        user's (which is not told apart)."""
        with self._lock:
            return self._item(self._conn, owner, kind, item_id, version)

    def listing(self, owner: str, kind: str) -> list[Listed]:
        """Every ``kind`` item ``owner`` deployed, by id and version, with the projects a
        template is assigned to."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT kind, id, version, digest, size, created_at FROM deployed"
                " WHERE kind = ? AND owner = ? ORDER BY id, version",
                (kind, owner),
            ).fetchall()
            assigned: dict[tuple[str, str], list[str]] = {}
            if kind == "template":
                for item_id, version, project in self._conn.execute(
                    "SELECT id, version, project FROM template_projects ORDER BY project"
                ):
                    assigned.setdefault((item_id, version), []).append(project)
        return [Listed(Deployed(*row), tuple(assigned.get((row[1], row[2]), ()))) for row in rows]

    def assign(self, owner: str, item_id: str, version: str, projects: Sequence[str]) -> list[str]:
        """Assign ``owner``'s template to ``projects`` as well (added to those it has);
        every project it is assigned to now. ``NotFound`` as :meth:`item`."""
        with self._transaction(readable=False) as db:
            self._item(db, owner, "template", item_id, version)
            db.executemany(
                "INSERT OR IGNORE INTO template_projects VALUES (?, ?, ?)",
                [(item_id, version, project) for project in projects],
            )
            rows = db.execute(
                "SELECT project FROM template_projects WHERE id = ? AND version = ?"
                " ORDER BY project",
                (item_id, version),
            ).fetchall()
        return [row[0] for row in rows]

    @staticmethod
    def _item(
        db: sqlite3.Connection, owner: str, kind: str, item_id: str, version: str
    ) -> Deployed:
        row = db.execute(
            "SELECT kind, id, version, digest, size, created_at FROM deployed"
            " WHERE kind = ? AND id = ? AND version = ? AND owner = ?",
            (kind, item_id, version, owner),
        ).fetchone()
        if row is None:
            raise NotFound(f"{kind} {item_id} {version} not found")
        return Deployed(*row)


def _make_private(db_path: Path) -> None:
    """Create the database file 0600 when missing, and make an existing one (and its
    -wal/-shm, which SQLite creates with the database's mode) 0600."""
    os.close(os.open(db_path, os.O_CREAT | os.O_RDWR, 0o600))
    for path in (db_path, *(db_path.with_name(db_path.name + end) for end in ("-wal", "-shm"))):
        if path.exists():
            os.chmod(path, 0o600)

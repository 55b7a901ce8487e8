"""Calling a Marvin (the local one or a remote one): JSON over ``trek_tasks.http`` with a token."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from blcks.retry import CONNECT_TIMEOUT, READ_TIMEOUT
from trek_tasks import http
from trek_tasks.errors import StepFailed

if TYPE_CHECKING:
    import sqlite3

TIMEOUT = (CONNECT_TIMEOUT, READ_TIMEOUT)  # the SDK's services wait as long
STATE_PATH = "/api/v1/state"  # the local Marvin's digest of what scripts can read


class MarvinClient(NamedTuple):
    """A Marvin URL and the token to use there (unpacks as ``url, token``).

    Each call returns the answer's ``data``; failures are ``http.HttpError`` (a
    ``StepFailed``) naming the method, URL and status, never the token."""

    url: str
    token: str

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body)

    def put(self, path: str, body: Any = None) -> Any:
        return self.call("PUT", path, body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    def upload(self, path: str, data: bytes, content_type: str = "application/zip") -> Any:
        """``PUT <url><path>`` with ``data`` as the body (a deployed zip); the answer's JSON."""
        url = self.url.rstrip("/") + path
        headers = {"Content-Type": content_type}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return http.request("PUT", url, headers=headers, body=data, timeout=TIMEOUT).json()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """``method <url><path>`` with ``body`` as JSON; the ``data`` of the answer."""
        url = self.url.rstrip("/") + path
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = http.request(method, url, headers=headers, payload=body, timeout=TIMEOUT)
        try:
            return response.json()["data"]
        except (ValueError, KeyError, TypeError):
            raise StepFailed(
                f"{method} {http.shown_url(url)}: the answer is not Marvin JSON (no 'data')"
            ) from None


class StateProbe:
    """The digest of what scripts can read from a local Marvin (``GET /api/v1/state``),
    asked over one kept-alive connection: a run asks at every action node's start, and a
    new connection per question would cost more than the node. ``""`` when it cannot
    answer (nothing is reused then; the scripts meet the failure themselves).

    With ``db``, the Marvin's database, it asks only after a change: SQLite's
    ``data_version`` moves whenever another connection commits, so an unchanged version
    means the digest last answered still holds (read before asking, so a change made
    while asking is seen next time)."""

    def __init__(self, url: str, token: str, db: Path | None = None) -> None:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=TIMEOUT[1])
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.db = _read_only(db) if db is not None else None
        self.known: tuple[int, str] | None = None  # (data_version, digest) last answered

    def __call__(self) -> str:
        version = self._version()
        if version is not None and self.known is not None and self.known[0] == version:
            return self.known[1]
        digest = self._ask()
        self.known = (version, digest) if version is not None and digest else None
        return digest

    def _version(self) -> int | None:
        import sqlite3

        if self.db is None:
            return None
        try:
            return int(self.db.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return None

    def _ask(self) -> str:
        import http.client
        import json

        for _ in (1, 2):  # the kept connection may have been closed by the server since
            try:
                self.conn.request("GET", STATE_PATH, headers=self.headers)
                response = self.conn.getresponse()
                payload = response.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
        else:
            return ""
        try:
            digest = json.loads(payload)["data"]["digest"] if response.status == 200 else ""
        except (ValueError, KeyError, TypeError):
            return ""
        return digest if isinstance(digest, str) else ""

    def close(self) -> None:
        self.conn.close()
        if self.db is not None:
            self.db.close()


def _read_only(db: Path) -> sqlite3.Connection | None:
    """A read-only connection to the database at ``db``, or None when it cannot be opened."""
    import sqlite3

    try:
        uri = f"{db.resolve().as_uri()}?mode=ro"
        return sqlite3.connect(uri, uri=True, check_same_thread=False)
    except (sqlite3.Error, OSError, ValueError):
        return None

"""Calling scripts: POST a script event to the script's URL, get its outputs back.

This stays on http.client rather than ``trek_tasks.http``: a run makes one call per node,
and one kept-alive connection per thread and script (http.client turns Nagle's algorithm
off, so the small request is not held back) keeps a node near a millisecond. Failures
read as ``trek_tasks.http``'s do and never show the event's token.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.http import HttpError, reason, scrub, shown_url

HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Endpoint:
    """A script URL, split once."""

    https: bool
    host: str
    port: int | None
    path: str
    shown: str  # for messages

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput(f"not a script URL: {shown_url(url)}")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.scheme == "https", parts.hostname, parts.port, path, shown_url(url))

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=timeout)


# Connections a finished run left open, by endpoint, for the next run in this process (a
# watch, ``trek serve``): a new connection costs a script a thread and the run a connect.
_KEPT: dict[Endpoint, list[http.client.HTTPConnection]] = {}
_KEPT_LOCK = threading.Lock()


class HttpInvoker:
    """POSTs events to script URLs (``handle.url``) over keep-alive connections, one per
    thread and script, taken over from the last run in this process where it left them."""

    def __init__(self, urls: Mapping[str, str]) -> None:
        self.endpoints = {script_id: Endpoint.parse(url) for script_id, url in urls.items()}
        self.local = threading.local()
        self.opened: list[tuple[Endpoint, http.client.HTTPConnection]] = []
        self.busy: set[int] = set()  # ids of the connections a call is using
        self.lock = threading.Lock()
        self.closed = False
        wanted = set(self.endpoints.values())
        with _KEPT_LOCK:  # a restarted script serves elsewhere: its old connections go
            for endpoint in [e for e in _KEPT if e not in wanted]:
                for conn in _KEPT.pop(endpoint):
                    conn.close()

    def _connection(self, endpoint: Endpoint, timeout: float) -> http.client.HTTPConnection:
        pool: dict[Endpoint, http.client.HTTPConnection] = self.local.__dict__.setdefault(
            "pool", {}
        )
        conn = pool.get(endpoint)
        with self.lock:
            if self.closed:  # the run was interrupted: no call starts, none is retried
                raise StepFailed("interrupted")
            if conn is None:
                with _KEPT_LOCK:
                    kept = _KEPT.get(endpoint)
                    conn = kept.pop() if kept else endpoint.connect(timeout)
                pool[endpoint] = conn
                self.opened.append((endpoint, conn))
            self.busy.add(id(conn))
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _done(self, conn: http.client.HTTPConnection) -> None:
        with self.lock:
            self.busy.discard(id(conn))

    def __call__(self, script_id: str, event: dict[str, Any], timeout: float) -> dict[str, Any]:
        endpoint = self.endpoints.get(script_id)
        if endpoint is None:
            raise StepFailed(f"script {script_id} is not running; run `trek initenv`")
        body = json.dumps(event).encode()
        # The first try may meet a kept connection the script closed since: try once more.
        for attempt in (1, 2):
            conn = self._connection(endpoint, timeout)
            try:
                conn.request("POST", endpoint.path, body, HEADERS)
                response = conn.getresponse()
                payload = response.read()
                break
            except TimeoutError:
                conn.close()
                raise StepFailed(f"timed out after {timeout:g} s (action_timeout)") from None
            except (http.client.HTTPException, OSError) as err:
                conn.close()
                if attempt == 2:
                    raise HttpError("POST", endpoint.shown, why=reason(err)) from None
            finally:
                self._done(conn)
        try:
            data = json.loads(payload)
        except ValueError:
            raise StepFailed(f"answered {response.status} with non-JSON output") from None
        if response.status != 200:
            said = scrub(_said(data, payload), (str(event.get("token") or ""),))
            raise StepFailed(f"failed with HTTP {response.status}: {said}")
        if not isinstance(data, dict):
            raise StepFailed("returned outputs that are not an object")
        return data

    def close(self, keep: bool = False) -> None:
        """Close the connections of every thread that used this invoker; a call still in
        flight (a run interrupted) ends at once and its script sees the caller hang up.
        With ``keep`` (the run is over), the idle ones stay open for the next run here."""
        with self.lock:
            self.closed = True
            for endpoint, conn in self.opened:
                sock = conn.sock
                if keep and sock is not None and id(conn) not in self.busy:
                    with _KEPT_LOCK:
                        _KEPT.setdefault(endpoint, []).append(conn)
                    continue
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                conn.auto_open = 0  # a thread about to send cannot reconnect
                conn.close()
            self.opened.clear()


def _said(data: Any, payload: bytes) -> str:
    """What a failed script said: its ``msg``, else the whole answer."""
    if isinstance(data, dict):
        return str(data.get("msg", payload.decode(errors="replace")))
    return str(data)

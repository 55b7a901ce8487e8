"""The embedded local Marvin: a JSON API over HTTP/1.1, by default on 127.0.0.1.

Standard library only, so it starts fast and needs nothing installed. The routes are
documented in docs/marvin-api.md. Run it alone with::

    python -m trek_tasks.marvin.server --db .trek/marvin.sqlite --secret-file FILE \\
        --inventory inputs/inventory.yml --port 0
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import math
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import traceback
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from email.message import Message as Headers
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from trek_tasks.errors import BadInput, TrekError
from trek_tasks.files import display
from trek_tasks.marvin.client import STATE_PATH, MarvinClient
from trek_tasks.marvin.inventory import Channel, Inventory, load_inventory, tag_problem
from trek_tasks.marvin.logins import LoginGuard
from trek_tasks.marvin.store import (
    ASSET_TYPES,
    AssetRef,
    Conflict,
    Forbidden,
    NotFound,
    Store,
    StoredUser,
    TagChange,
)
from trek_tasks.marvin.tokens import TokenError, TokenExpired, issue_token, verify_token
from trek_tasks.paratypes import event_problem

NAME = "local-marvin"
READY = "local Marvin listening on"  # + the URL: the line that says the server is up
MAX_BODY = 64 * 1024 * 1024
WEBHOOK_TIMEOUT = 5.0
IDLE_TIMEOUT = 60.0
MAX_WAIT = 30  # seconds a take of fires may wait for one
# 401 answers: what to do is part of the message (the CLI prints it as it is).
BAD_TOKEN = "missing or invalid token; run `trek login` to get one"
EXPIRED_TOKEN = "the token has expired; run `trek login` for a new one"
_ITEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_KINDS = {"templates": "template", "scripts": "script"}
# A test hook, never set in real use: ``kind:id`` items (``script:detectredis``, comma
# separated) whose first upload answers 500 and stores nothing (a fault in the middle of
# a multi-artifact deploy); later uploads of them are stored as usual.
FAIL_ONCE_ENV = "TREK_MARVIN_FAIL_ONCE"

Reply = tuple[int, dict[str, Any]]


class PortInUse(TrekError):
    """The port is taken by another program (exit code 4)."""

    exit_code = 4


class ApiError(Exception):
    """An answer other than success: becomes ``{"code": status, "msg": message}`` (plus
    ``"retry_after"`` and a ``Retry-After`` header when the client should wait)."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Request:
    """What a route handler sees of one HTTP request."""

    params: dict[str, str]
    query: dict[str, str]
    headers: Headers
    body: bytes
    subject: str | None
    client: str = ""  # the client's address


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[[Api, Request], Reply]
    auth: bool = True


def _json_body(request: Request) -> Any:
    if not request.body.strip():
        raise ApiError(400, "the body must be JSON")
    try:
        return json.loads(request.body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ApiError(
            400, f"the body is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None


def _parse_tag_changes(body: Any) -> list[TagChange]:
    shape = 'the body must be a list of {"name", "tagged", "assets"} objects'
    if not isinstance(body, list):
        raise ApiError(400, shape)
    changes = []
    for index, item in enumerate(body):
        if not isinstance(item, dict):
            raise ApiError(400, f"{shape}; item {index} is not an object")
        problem = tag_problem(item.get("name"))
        if problem:
            raise ApiError(400, f"item {index}: {problem}")
        tagged = item.get("tagged")
        # Marvin's own blckssettags para declares tagged as enum [1, 0]: take those too.
        if not isinstance(tagged, int) or tagged not in (0, 1):
            raise ApiError(400, f"item {index}: 'tagged' must be true or false")
        changes.append(TagChange(item["name"], bool(tagged), _parse_assets(item, index)))
    return changes


def _parse_assets(item: dict[str, Any], index: int) -> tuple[AssetRef, ...]:
    assets = item.get("assets")
    shape = f'item {index}: \'assets\' must be a list of {{"id", "type"}} objects'
    if not isinstance(assets, list):
        raise ApiError(400, shape)
    refs = []
    for asset in assets:
        if not isinstance(asset, dict):
            raise ApiError(400, shape)
        asset_id, kind = asset.get("id"), asset.get("type")
        if not isinstance(asset_id, str) or not asset_id:
            raise ApiError(400, f"item {index}: an asset id must be a non-empty string")
        if not isinstance(kind, str) or kind.upper() not in ASSET_TYPES:
            known = ", ".join(ASSET_TYPES)
            raise ApiError(400, f"item {index}: asset type {kind!r} is not one of {known}")
        refs.append(AssetRef(asset_id, ASSET_TYPES[kind.upper()]))
    return tuple(refs)


def _parse_message_body(body: Any) -> tuple[list[str], str]:
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be an object {"channel_ids": [...], "message": "..."}')
    channel_ids = body.get("channel_ids")
    if (
        not isinstance(channel_ids, list)
        or not channel_ids
        or not all(isinstance(i, str) and i for i in channel_ids)
    ):
        raise ApiError(400, "'channel_ids' must be a non-empty list of channel ids")
    message = body.get("message")
    if not isinstance(message, str):
        raise ApiError(400, "'message' must be a string")
    return list(dict.fromkeys(channel_ids)), message


def forward(channel: Channel, message: str) -> bool:
    """POST the message to the channel's webhook; False when it has none or it failed.

    A failure is also logged to stderr: the message stays stored either way.
    """
    if not channel.webhook:
        return False
    payload = {"channel_id": channel.id, "channel_name": channel.name, "message": message}
    request = urllib.request.Request(
        channel.webhook,
        data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
            response.read()
        return True
    except urllib.error.HTTPError as err:
        err.close()
        reason = f"HTTP {err.code}"
    except urllib.error.URLError as err:
        reason = str(err.reason)
    except (OSError, ValueError) as err:
        reason = str(err) or type(err).__name__
    # The webhook's path may be its secret (chat webhooks are), so show only its origin.
    parts = urlsplit(channel.webhook)
    log(f"webhook of channel {channel.id} ({parts.scheme}://{parts.netloc}) failed: {reason}")
    return False


def log(text: str) -> None:
    """One line on the server's log stream (stderr; a script's log file when started by
    trek), read at call time so a redirected stderr is honoured."""
    sys.stderr.write(f"local Marvin: {text}\n")
    sys.stderr.flush()


class Fires:
    """The triggers ``trek serve`` registered, by workflow, and the fires (events POSTed,
    manual runs asked for) waiting for it to take them. Kept in memory: a restarted
    local Marvin forgets them, and ``trek serve`` registers again."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._triggers: dict[str, dict[str, Any]] = {}
        self._waiting: dict[str, list[dict[str, Any]]] = {}
        self._count = 0

    def register(self, workflow: str, trigger: dict[str, Any]) -> None:
        with self._changed:
            self._triggers[workflow] = trigger
            self._waiting.setdefault(workflow, [])

    def trigger(self, workflow: str) -> dict[str, Any]:
        with self._changed:
            found = self._triggers.get(workflow)
        if found is None:
            raise ApiError(404, f"no `trek serve` has registered workflow '{workflow}'")
        return found

    def add(self, workflow: str, kind: str, event: dict[str, Any]) -> dict[str, Any]:
        self.trigger(workflow)
        with self._changed:
            self._count += 1
            fire = {"id": self._count, "kind": kind, "event": event}
            self._waiting[workflow].append(fire)
            self._changed.notify_all()
            return {**fire, "waiting": len(self._waiting[workflow])}

    def take(self, workflow: str, wait: float) -> list[dict[str, Any]]:
        """The waiting fires, removed; waits up to ``wait`` seconds for one."""
        self.trigger(workflow)
        with self._changed:
            self._changed.wait_for(lambda: bool(self._waiting.get(workflow)), timeout=wait)
            taken, self._waiting[workflow] = self._waiting.get(workflow, []), []
            return taken


class Api:
    """The routes: each takes a :class:`Request` and returns ``(status, json)``."""

    def __init__(
        self, store: Store, secret: str, token: str = "", fires: Fires | None = None
    ) -> None:
        self.store = store
        self.secret = secret
        self.token = token
        self.fires = fires or Fires()
        self.logins = LoginGuard()
        self.fail_once = {k.strip() for k in os.environ.get(FAIL_ONCE_ENV, "").split(",")} - {""}

    def health(self, request: Request) -> Reply:
        # pid and token: how the process that started this one knows it is its own
        return 200, {"status": "ok", "name": NAME, "pid": os.getpid(), "token": self.token}

    def login(self, request: Request) -> Reply:
        body = _json_body(request)
        if not isinstance(body, dict) or not all(
            isinstance(body.get(key), str) for key in ("username", "password")
        ):
            raise ApiError(400, 'the body must be {"username": "...", "password": "..."}')
        username = body["username"]
        wait = self.logins.admit(username, request.client)
        if wait > 0:
            seconds = math.ceil(wait)
            raise ApiError(
                429,
                f"too many failed logins for this user or from this address; "
                f"try again in {seconds} s",
                retry_after=seconds,
            )
        if not self.store.check_password(username, body["password"]):
            raise ApiError(401, "wrong username or password")
        self.logins.succeeded(username, request.client)
        return 200, {"token": issue_token(self.secret, username)}

    def users_me(self, request: Request) -> Reply:
        assert request.subject is not None
        account = self.store.account(request.subject)
        if account is None:
            raise ApiError(404, f"user '{request.subject}' not found")
        return 200, {"data": asdict(account)}

    def hosts(self, request: Request) -> Reply:
        hosts = self.store.hosts(request.query.get("search", ""))
        return 200, {"data": [asdict(host) for host in hosts]}

    def host(self, request: Request) -> Reply:
        return 200, {"data": asdict(self.store.host(request.params["id"]))}

    def tags(self, request: Request) -> Reply:
        return 200, {"data": [asdict(tag) for tag in self.store.tags()]}

    def update_tags(self, request: Request) -> Reply:
        changes = _parse_tag_changes(_json_body(request))
        self.store.update_tags(changes)
        data = [
            {"name": c.name, "tagged": c.tagged, "assets": [a.id for a in c.assets]}
            for c in changes
        ]
        return 200, {"data": data}

    def channels(self, request: Request) -> Reply:
        channels = self.store.channels(_user(request))
        return 200, {"data": [{"id": c.id, "name": c.name} for c in channels]}

    def send_messages(self, request: Request) -> Reply:
        channel_ids, text = _parse_message_body(_json_body(request))
        task_id = (request.headers.get("X-Task-Id") or "").strip() or None
        stored = self.store.add_messages(_user(request), channel_ids, text, task_id)
        channels = {channel.id: channel for channel in self.store.channels(_user(request))}
        data = []
        for message in stored:
            channel = channels.get(message.channel_id)
            forwarded = channel is not None and forward(channel, text)
            data.append(
                {"id": message.id, "channel_id": message.channel_id, "forwarded": forwarded}
            )
        return 200, {"data": data}

    def state(self, request: Request) -> Reply:
        # what trek run --reuse compares: the digest of everything scripts can read here
        return 200, {"data": {"digest": self.store.state_digest()}}

    def messages(self, request: Request) -> Reply:
        after_text = request.query.get("after", "0")
        if not _is_number(after_text, digits=18):
            raise ApiError(400, f"'after' must be a whole number, not '{after_text}'")
        after = int(after_text)
        task_id = request.query.get("task_id")
        messages = self.store.messages(_user(request), after, task_id)
        return 200, {"data": [asdict(m) for m in messages]}

    def _item_key(self, request: Request) -> tuple[str, str, str]:
        kind = _KINDS[request.params["kind"]]
        for part in ("id", "version"):
            value = request.params[part]
            if not _ITEM_ID.fullmatch(value):
                raise ApiError(400, f"'{value}' is not a valid {kind} {part}")
        return kind, request.params["id"], request.params["version"]

    def put_item(self, request: Request) -> Reply:
        kind, item_id, version = self._item_key(request)
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type.lower() != "application/zip":
            raise ApiError(415, f"a {kind} upload needs Content-Type application/zip")
        if not zipfile.is_zipfile(io.BytesIO(request.body)):
            raise ApiError(400, f"the {kind} upload is not a zip file")
        overwrite = request.query.get("overwrite", "").lower() in ("true", "1", "yes")
        if f"{kind}:{item_id}" in self.fail_once:
            self.fail_once.discard(f"{kind}:{item_id}")
            raise ApiError(500, f"injected fault ({FAIL_ONCE_ENV}): {kind} {item_id} not stored")
        item, outcome = self.store.put_item(
            _user(request), kind, item_id, version, request.body, overwrite
        )
        data = {"id": item.id, "version": item.version, "digest": item.digest}
        if outcome == "created":
            return 201, {"data": data}
        return 200, {"data": data, outcome: True}

    def get_item(self, request: Request) -> Reply:
        item = self.store.item(_user(request), *self._item_key(request))
        return 200, {"data": {key: value for key, value in asdict(item).items() if key != "kind"}}

    def list_items(self, request: Request) -> Reply:
        kind = _KINDS[request.params["kind"]]
        data = []
        for listed in self.store.listing(_user(request), kind):
            shown = {key: value for key, value in asdict(listed.item).items() if key != "kind"}
            if kind == "template":
                shown["projects"] = list(listed.projects)
            data.append(shown)
        return 200, {"data": data}

    def assign_projects(self, request: Request) -> Reply:
        _, item_id, version = self._item_key(request)
        body = _json_body(request)
        projects = body.get("projects") if isinstance(body, dict) else None
        if not isinstance(projects, list) or not all(isinstance(p, str) for p in projects):
            raise ApiError(400, 'the body must be {"projects": ["<project>", ...]}')
        for project in projects:
            if not _ITEM_ID.fullmatch(project):
                raise ApiError(400, f"'{project}' is not a valid project name")
        assigned = self.store.assign(_user(request), item_id, version, projects)
        return 200, {"data": {"id": item_id, "version": version, "projects": assigned}}

    def register_trigger(self, request: Request) -> Reply:
        body = _json_body(request)
        outputs = body.get("outputs") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(body.get("events"), bool):
            raise ApiError(400, 'the body must be {"events": true|false, "outputs": {...}}')
        if not isinstance(outputs, dict):
            raise ApiError(400, "'outputs' must map each event field to a para field")
        self.fires.register(request.params["id"], {"events": body["events"], "outputs": outputs})
        return 200, {"data": {"id": request.params["id"]}}

    def post_event(self, request: Request) -> Reply:
        workflow = request.params["id"]
        trigger = self.fires.trigger(workflow)
        if not trigger["events"]:
            raise ApiError(409, f"the trigger of workflow '{workflow}' has no event source")
        problem, event = event_problem(trigger["outputs"], _json_body(request))
        if problem:
            raise ApiError(400, problem)
        return 202, {"data": self.fires.add(workflow, "event", event)}

    def post_run(self, request: Request) -> Reply:
        return 202, {"data": self.fires.add(request.params["id"], "manual", {})}

    def take_fires(self, request: Request) -> Reply:
        wait_text = request.query.get("wait", "0")
        if not _is_number(wait_text, digits=3):
            raise ApiError(400, f"'wait' must be a whole number of seconds, not '{wait_text}'")
        taken = self.fires.take(request.params["id"], min(int(wait_text), MAX_WAIT))
        return 200, {"data": taken}

    def authenticate(self, authorization: str | None) -> str:
        """The token's subject; ``ApiError`` 401 for anything else (never echoing it)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, BAD_TOKEN)
        try:
            claims = verify_token(self.secret, token.strip())
        except TokenExpired:
            raise ApiError(401, EXPIRED_TOKEN) from None
        except TokenError:
            raise ApiError(401, BAD_TOKEN) from None
        subject = claims.get("sub")
        if not isinstance(subject, str):
            raise ApiError(401, BAD_TOKEN)
        return subject

    def handle(
        self,
        method: str,
        target: str,
        headers: Headers,
        read_body: Callable[[], bytes],
        client: str = "",
    ) -> Reply:
        """Route one request; every failure becomes an error reply."""
        url = urlsplit(target)
        try:
            matched = [(route, m) for route in ROUTES if (m := route.pattern.fullmatch(url.path))]
            if any(route.auth for route, _ in matched) or (
                not matched and url.path.startswith("/api/")
            ):
                subject: str | None = self.authenticate(headers.get("Authorization"))
            else:
                subject = None
            chosen = [(route, m) for route, m in matched if route.method == method]
            if not chosen:
                if matched:
                    raise ApiError(405, f"{method} is not allowed on {url.path}")
                raise ApiError(404, f"no such endpoint: {method} {url.path}")
            route, match = chosen[0]
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            params = {key: unquote(value) for key, value in match.groupdict().items()}
            request = Request(params, query, headers, read_body(), subject, client)
            return route.handler(self, request)
        except ApiError as err:
            payload: dict[str, Any] = {"code": err.status, "msg": err.message}
            if err.retry_after is not None:
                payload["retry_after"] = err.retry_after
            return err.status, payload
        except Forbidden as err:
            return 403, {"code": 403, "msg": err.message}
        except NotFound as err:
            return 404, {"code": 404, "msg": err.message}
        except Conflict as err:
            return 409, {"code": 409, "msg": err.message}


def _route(
    method: str, path: str, handler: Callable[[Api, Request], Reply], auth: bool = True
) -> Route:
    return Route(method, re.compile(path), handler, auth)


_ITEM = r"/api/v1/(?P<kind>templates|scripts)/(?P<id>[^/]+)/(?P<version>[^/]+)"
_WORKFLOW = r"/api/v1/workflows/(?P<id>[^/]+)"
ROUTES = (
    _route("GET", "/healthz", Api.health, auth=False),
    _route("POST", "/api/v1/auth/login", Api.login, auth=False),
    _route("GET", "/api/v1/users/me", Api.users_me),
    _route("GET", "/api/v1/hosts", Api.hosts),
    _route("GET", r"/api/v1/hosts/(?P<id>[^/]+)", Api.host),
    _route("GET", "/api/v1/tags", Api.tags),
    _route("POST", "/api/v1/tags/update", Api.update_tags),
    _route("GET", "/api/v1/channels", Api.channels),
    _route("POST", "/api/v1/channels/messages", Api.send_messages),
    _route("GET", "/api/v1/messages", Api.messages),
    _route("GET", STATE_PATH, Api.state),
    _route("PUT", _ITEM, Api.put_item),
    _route("GET", _ITEM, Api.get_item),
    _route("GET", r"/api/v1/(?P<kind>templates|scripts)", Api.list_items),
    _route(
        "PUT",
        r"/api/v1/(?P<kind>templates)/(?P<id>[^/]+)/(?P<version>[^/]+)/projects",
        Api.assign_projects,
    ),
    _route("PUT", rf"{_WORKFLOW}/trigger", Api.register_trigger),
    _route("POST", rf"{_WORKFLOW}/events", Api.post_event),
    _route("POST", rf"{_WORKFLOW}/run", Api.post_run),
    _route("POST", rf"{_WORKFLOW}/fires/take", Api.take_fires),
)


def _user(request: Request) -> str:
    """The username of a request that passed ``authenticate`` (the token's subject)."""
    assert request.subject is not None
    return request.subject


def _is_number(text: str, digits: int = 30) -> bool:
    """Plain ASCII digits, not too many of them (SQLite integers stop at 2**63)."""
    return text.isascii() and text.isdigit() and len(text) <= digits


def _check_size(length: int) -> None:
    if length > MAX_BODY:
        raise ApiError(413, f"the body is larger than {MAX_BODY // 2**20} MiB")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._body: bytes | ApiError | None = None
        try:
            status, payload = self.server.api.handle(
                self.command, self.path, self.headers, self._read_body, self.client_address[0]
            )
        except Exception:
            traceback.print_exc(file=sys.stderr)
            status, payload = 500, {"code": 500, "msg": "internal error of the local Marvin"}
        if self._body is None:
            # Take in a body the answer did not need (a 401, a 404) so the client can finish
            # sending it and read the answer, and the connection stays usable.
            try:
                self._read_body()
            except ApiError:
                pass
        self._send(status, payload)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _read_body(self) -> bytes:
        """The request body, read once; a bad one closes the connection after the answer."""
        if self._body is None:
            try:
                self._body = self._receive()
            except ApiError as err:
                self._body = err
                self.close_connection = True
        if isinstance(self._body, ApiError):
            raise self._body
        return self._body

    def _receive(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._receive_chunked()
        text = (self.headers.get("Content-Length") or "0").strip()
        if not _is_number(text):
            raise ApiError(400, "Content-Length must be a whole number")
        length = int(text)
        _check_size(length)
        body = self.rfile.read(length)
        if len(body) < length:
            raise ApiError(400, "the body ended before Content-Length bytes")
        return body

    def _receive_chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                size = -1
            if size < 0:
                raise ApiError(400, "malformed chunked body")
            if size == 0:
                break
            _check_size(len(body) + size)
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3).strip():
                raise ApiError(400, "malformed chunked body")
            body += chunk
        while self.rfile.readline(1024).strip():
            pass  # trailer fields: not used
        return bytes(body)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if "retry_after" in payload:
            self.send_header("Retry-After", str(payload["retry_after"]))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def version_string(self) -> str:
        return NAME

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            log(f"{self.address_string()} {format % args}")


class _HTTPServer(ThreadingHTTPServer):
    # Handler threads are joined on close; stop() first shuts their sockets down.
    daemon_threads = False
    allow_reuse_port = False
    # socketserver's default backlog of 5 resets connections when scripts run in parallel.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], log_requests: bool) -> None:
        self.api: Api
        self.log_requests = log_requests
        self._connections: set[socket.socket] = set()
        self._guard = threading.Lock()
        self._closing = False
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall on bad DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-request (a reset, a broken pipe) is no error of ours;
        # anything else keeps socketserver's traceback on stderr.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def track(self, conn: socket.socket) -> None:
        with self._guard:
            self._connections.add(conn)
            if self._closing:
                conn.shutdown(socket.SHUT_RDWR)

    def untrack(self, conn: socket.socket) -> None:
        with self._guard:
            self._connections.discard(conn)

    def drop_connections(self) -> None:
        """Wake every handler waiting on a keep-alive connection so it can end."""
        with self._guard:
            self._closing = True
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class MarvinServer:
    """The local Marvin served from a thread: ``start()``, ``.url``, ``stop()``."""

    def __init__(
        self,
        db_path: Path,
        inventory: Inventory,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        log_requests: bool = False,
        token: str = "",
        listen: tuple[str, ...] = (),
        users: tuple[StoredUser, ...] | None = None,
    ) -> None:
        if not secret:
            raise BadInput("the local Marvin needs a non-empty secret (marvin_secret)", "secret")
        self.db_path = db_path
        self.inventory = inventory
        self.secret = secret
        self.host = host
        self.port = port
        self.log_requests = log_requests
        self.token = token
        self.listen = listen  # more addresses, same port (the docker bridge gateway)
        self.users = users  # replace the inventory's (a standalone Marvin's users.json)
        self._httpd: _HTTPServer | None = None
        self._more: list[tuple[_HTTPServer, threading.Thread]] = []
        self._store: Store | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._httpd is None:
            raise RuntimeError("the local Marvin is not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def _bind(self, host: str, port: int) -> _HTTPServer:
        try:
            return _HTTPServer((host, port), self.log_requests)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"port {port} is already in use; stop what uses it or choose another",
                    f"{host}:{port}",
                ) from None
            reason = err.strerror or str(err)
            raise BadInput(f"cannot listen: {reason}", f"{host}:{port}") from None

    def start(self) -> None:
        """Bind (``PortInUse`` if taken) on ``host`` and each ``listen`` address (the port
        the first one got), reseed the database, serve each in a thread."""
        httpd = self._bind(self.host, self.port)
        more: list[_HTTPServer] = []
        try:
            for address in self.listen:
                more.append(self._bind(address, httpd.server_address[1]))
            self._store = Store.create(self.db_path, self.inventory)
            if self.users is not None:
                self._store.set_users(self.users)
        except BaseException:
            for server in (httpd, *more):
                server.server_close()
            raise
        fires = Fires()  # one queue whichever address a fire comes to
        for server in (httpd, *more):
            server.api = Api(self._store, self.secret, self.token, fires)
        self._httpd = httpd
        self._thread = self._serve(httpd)
        self._more = [(server, self._serve(server)) for server in more]

    @staticmethod
    def _serve(httpd: _HTTPServer) -> threading.Thread:
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=NAME, daemon=True
        )
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop serving, end open connections, close the database. Safe to call twice."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        more, self._more = self._more, []
        for server, thread in [*more, (httpd, self._thread)]:
            server.shutdown()
            server.drop_connections()
            server.server_close()
            if thread is not None:
                thread.join()
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> MarvinServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_secret(path: Path) -> str:
    """The secret kept in a file (so it never shows in ``ps``); surrounding space dropped."""
    shown = display(path)
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise BadInput("secret file not found", shown) from None
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(f"cannot read the secret file: {err}", shown) from None
    if not secret:
        raise BadInput("the secret file is empty; write marvin_secret into it", shown)
    return secret


def _port(text: str) -> int:
    if not _is_number(text, digits=5) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 65535, not '{text}'")
    return int(text)


@contextlib.contextmanager
def local_marvin(
    inventory: Inventory, folder: Path, secret: str = "local-tests"
) -> Iterator[MarvinClient]:
    """A local Marvin serving ``inventory`` (database in ``folder``) on a free port, with
    a client holding a token for it: what handler tests talk to."""
    server = MarvinServer(folder / "marvin.db", inventory, secret)
    server.start()
    try:
        yield MarvinClient(server.url, issue_token(secret, inventory.users[0].username))
    finally:
        server.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trek_tasks.marvin.server", description="Run the local Marvin."
    )
    parser.add_argument("--db", type=Path, required=True, help="SQLite file (made if missing)")
    parser.add_argument("--inventory", type=Path, help="inventory YAML (missing = empty)")
    parser.add_argument("--secret-file", type=Path, required=True, help="file holding the secret")
    parser.add_argument("--port", type=_port, default=0, help="0 picks a free port (default)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="ADDR",
        help="another address to listen on, same port (repeatable)",
    )
    parser.add_argument("--log-requests", action="store_true", help="log each request to stderr")
    return parser


class StopSignals:
    """SIGTERM and SIGINT ask a server in the foreground to stop: :meth:`wait` returns its
    exit code then (0, or 130 after Ctrl-C). Set up before the server starts, so a signal
    during the start is not lost."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._received: list[int] = []
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._received.append(signum)
        self._stopping.set()

    def wait(self, server: MarvinServer) -> int:
        """Serve until a signal, then stop ``server``."""
        try:
            self._stopping.wait()
        finally:
            server.stop()
        return 130 if self._received and self._received[0] == signal.SIGINT else 0


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM (exit 0) or SIGINT (exit 130); errors print one line."""
    args = _parser().parse_args(argv)
    signals = StopSignals()
    try:
        secret = read_secret(args.secret_file)
        inventory = load_inventory(args.inventory) if args.inventory else Inventory()
        token = os.environ.get("TREK_PROCESS_TOKEN", "")
        server = MarvinServer(
            args.db,
            inventory,
            secret,
            args.host,
            args.port,
            args.log_requests,
            token,
            tuple(args.listen),
        )
        server.start()
    except TrekError as err:
        sys.stderr.write(f"{err}\n")
        return err.exit_code
    # The ready line on stdout tells whoever started the server where it listens.
    sys.stdout.write(f"{READY} {server.url}\n")
    sys.stdout.flush()
    return signals.wait(server)


if __name__ == "__main__":
    raise SystemExit(main())

"""The local Marvin over real HTTP: in-process on a free port, and as a real subprocess."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

import trek_tasks
from trek_tasks.errors import BadInput
from trek_tasks.marvin.inventory import load_inventory
from trek_tasks.marvin.server import BAD_TOKEN, EXPIRED_TOKEN, MarvinServer, PortInUse
from trek_tasks.marvin.tokens import issue_token, verify_token

SECRET = "a-test-secret-of-thirty-two-bytes"
UNAUTHORIZED = {"code": 401, "msg": BAD_TOKEN}
BAD_CHANNEL_IDS = "'channel_ids' must be a non-empty list of channel ids"

INVENTORY = """\
hosts:
  - id: S-redis-ok
    name: redis-ok
    ip: 127.0.0.1
    port: 6379
    tags: [redis]
  - id: S-redis-down
    name: redis-down
    ip: 10.0.0.7
    port: 6390
    tags: [redis, prod]
  - id: S-web
    name: web-1
    ip: 10.0.1.5
domains:
  - {id: D-example, name: example.com, tags: [web]}
cdns:
  - {id: CDN-edge, name: edge}
channels:
  - {id: C-ops, name: ops, webhook: "WEBHOOK/hook"}
  - {id: C-dev, name: dev}
  - {id: C-broken, name: broken, webhook: "WEBHOOK/fail"}
  - {id: C-dead, name: dead, webhook: "DEAD/hook"}
users:
  - {username: alice, password: wonderland, name: Alice, email: alice@example.com}
"""


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


def connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(str(parts.hostname), parts.port, timeout=30)


def call(
    url: str,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Answer:
    """One request on its own connection; the answer's JSON decoded."""
    conn = connect(url)
    try:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        return Answer(response.status, json.loads(response.read()), dict(response.getheaders()))
    finally:
        conn.close()


class Webhook:
    """A real HTTP server recording what is POSTed to it; ``/fail`` answers 500."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/fail":
                    self.send_response(500)
                else:
                    received.append(json.loads(body))
                    self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,))

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def inventory_file(tmp_path: Path, webhook: Webhook, dead_url: str) -> Path:
    path = tmp_path / "inputs" / "inventory.yml"
    path.parent.mkdir()
    path.write_text(INVENTORY.replace("WEBHOOK", webhook.url).replace("DEAD", dead_url))
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / ".trek" / "marvin.db"


@pytest.fixture
def marvin(db_path: Path, inventory_file: Path) -> Iterator[MarvinServer]:
    with MarvinServer(db_path, load_inventory(inventory_file), SECRET) as server:
        yield server


@pytest.fixture
def url(marvin: MarvinServer) -> str:
    return marvin.url


@pytest.fixture
def token(url: str) -> str:
    answer = call(
        url, "POST", "/api/v1/auth/login", {"username": "alice", "password": "wonderland"}
    )
    assert answer.status == 200
    return str(answer.body["token"])


def zip_bytes(content: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("graph.yml", content)
    return buffer.getvalue()


# --- health and login -------------------------------------------------------------------


def test_healthz_needs_no_token(url: str) -> None:
    answer = call(url, "GET", "/healthz")
    assert (answer.status, answer.body) == (
        200,
        {"status": "ok", "name": "local-marvin", "pid": os.getpid(), "token": ""},
    )
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"


def test_login_gives_a_twelve_hour_token_signed_with_the_secret(token: str) -> None:
    claims = verify_token(SECRET, token)
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 12 * 60 * 60


@pytest.mark.parametrize(
    "body",
    [{"username": "alice", "password": "wrong"}, {"username": "mallory", "password": "x"}],
)
def test_login_with_wrong_credentials_is_401(url: str, body: dict[str, str]) -> None:
    answer = call(url, "POST", "/api/v1/auth/login", body)
    assert (answer.status, answer.body) == (401, {"code": 401, "msg": "wrong username or password"})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "the body must be JSON"),
        (
            b"{nope",
            "the body is not valid JSON: Expecting property name enclosed in double "
            "quotes at line 1 column 2",
        ),
        (b'{"username": "alice"}', 'the body must be {"username": "...", "password": "..."}'),
        (b'["alice", "wonderland"]', 'the body must be {"username": "...", "password": "..."}'),
        (b"\xff\xfe", "the body is not UTF-8 text"),
    ],
)
def test_login_with_a_malformed_body_is_400(url: str, raw: bytes, message: str) -> None:
    answer = call(url, "POST", "/api/v1/auth/login", raw=raw)
    assert (answer.status, answer.body) == (400, {"code": 400, "msg": message})


def test_default_user_logs_in_when_the_inventory_has_none(tmp_path: Path) -> None:
    with MarvinServer(tmp_path / "m.db", load_inventory(tmp_path / "none.yml"), SECRET) as server:
        login = {"username": "trek", "password": "trek"}
        token = call(server.url, "POST", "/api/v1/auth/login", login).body["token"]
        me = call(server.url, "GET", "/api/v1/users/me", token=token)
    assert me.body == {
        "data": {
            "id": "U-trek",
            "username": "trek",
            "name": "Trek Developer",
            "email": "trek@localhost",
        }
    }


# --- authentication ---------------------------------------------------------------------


def _forged() -> str:
    header, _, signature = issue_token(SECRET, "alice").split(".")
    claims = issue_token(SECRET, "admin").split(".")[1]
    return f"{header}.{claims}.{signature}"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic YWxpY2U6d29uZGVybGFuZA==",
        "Bearer not-a-jwt",
        f"Bearer {issue_token('another-secret-of-thirty-two-bytes', 'alice')}",
        f"Bearer {_forged()}",
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/hosts", "/api/v1/users/me", "/api/v1/no-such-thing"])
def test_api_needs_a_valid_token(url: str, authorization: str | None, path: str) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = call(url, "GET", path, headers=headers)
    assert (answer.status, answer.body) == (401, UNAUTHORIZED)


def test_an_expired_token_is_refused_with_its_own_message(url: str) -> None:
    answer = call(url, "GET", "/api/v1/hosts", token=issue_token(SECRET, "alice", ttl_seconds=-1))
    assert (answer.status, answer.body) == (401, {"code": 401, "msg": EXPIRED_TOKEN})
    assert "run `trek login`" in EXPIRED_TOKEN and "run `trek login`" in BAD_TOKEN


def test_a_token_without_subject_is_refused(url: str) -> None:
    jwt = pytest.importorskip("jwt")
    token = jwt.encode({"exp": 4102444800}, SECRET, algorithm="HS256")
    answer = call(url, "GET", "/api/v1/hosts", token=token)
    assert (answer.status, answer.body) == (401, UNAUTHORIZED)


def test_lowercase_bearer_is_accepted(url: str, token: str) -> None:
    answer = call(url, "GET", "/api/v1/channels", headers={"Authorization": f"bearer {token}"})
    assert answer.status == 200


# --- users, hosts, tags -----------------------------------------------------------------


def test_users_me(url: str, token: str) -> None:
    answer = call(url, "GET", "/api/v1/users/me", token=token)
    assert (answer.status, answer.body) == (
        200,
        {
            "data": {
                "id": "U-alice",
                "username": "alice",
                "name": "Alice",
                "email": "alice@example.com",
            }
        },
    )


def test_users_me_for_a_user_not_in_the_inventory_is_404(url: str) -> None:
    answer = call(url, "GET", "/api/v1/users/me", token=issue_token(SECRET, "ghost"))
    assert (answer.status, answer.body) == (404, {"code": 404, "msg": "user 'ghost' not found"})


def test_hosts_lists_every_host_with_its_fields(url: str, token: str) -> None:
    answer = call(url, "GET", "/api/v1/hosts", token=token)
    assert answer.body == {
        "data": [
            {
                "id": "S-redis-ok",
                "name": "redis-ok",
                "ip": "127.0.0.1",
                "port": 6379,
                "tags": ["redis"],
            },
            {
                "id": "S-redis-down",
                "name": "redis-down",
                "ip": "10.0.0.7",
                "port": 6390,
                "tags": ["redis", "prod"],
            },
            {"id": "S-web", "name": "web-1", "ip": "10.0.1.5", "port": None, "tags": []},
        ]
    }


@pytest.mark.parametrize(
    ("search", "ids"),
    [
        ("", ["S-redis-ok", "S-redis-down", "S-web"]),
        ("tag:redis", ["S-redis-ok", "S-redis-down"]),
        ("tag:red", []),
        ("tag:web", []),
        ("name:REDIS", ["S-redis-ok", "S-redis-down"]),
        ("ip:10.0", ["S-redis-down", "S-web"]),
        ("id:S-web", ["S-web"]),
        ("id:S-we", []),
        ("down", ["S-redis-down"]),
        ("10.0.1", ["S-web"]),
        ("tag:redis prod", []),
        ("tag:redis tag:prod", ["S-redis-down"]),
        ("tag:redis  name:ok", ["S-redis-ok"]),
        ("nothing-matches", []),
    ],
)
def test_host_search_terms_must_all_match(
    url: str, token: str, search: str, ids: list[str]
) -> None:
    answer = call(url, "GET", f"/api/v1/hosts?search={quote(search)}", token=token)
    assert [host["id"] for host in answer.body["data"]] == ids


def test_one_host_by_id(url: str, token: str) -> None:
    answer = call(url, "GET", "/api/v1/hosts/S-web", token=token)
    assert answer.body == {
        "data": {"id": "S-web", "name": "web-1", "ip": "10.0.1.5", "port": None, "tags": []}
    }


@pytest.mark.parametrize("host_id", ["S-nope", "D-example"])
def test_unknown_host_is_404(url: str, token: str, host_id: str) -> None:
    answer = call(url, "GET", f"/api/v1/hosts/{host_id}", token=token)
    assert (answer.status, answer.body) == (
        404,
        {"code": 404, "msg": f"host '{host_id}' not found"},
    )


def test_tags_list_their_assets(url: str, token: str) -> None:
    answer = call(url, "GET", "/api/v1/tags", token=token)
    assert answer.body == {
        "data": [
            {"name": "prod", "assets": [{"id": "S-redis-down", "type": "HOST"}]},
            {
                "name": "redis",
                "assets": [
                    {"id": "S-redis-ok", "type": "HOST"},
                    {"id": "S-redis-down", "type": "HOST"},
                ],
            },
            {"name": "web", "assets": [{"id": "D-example", "type": "DOMAIN"}]},
        ]
    }


def test_tag_update_adds_and_removes_tags(url: str, token: str) -> None:
    add = [
        {
            "name": "redis:unreachable",
            "tagged": True,
            "assets": [{"id": "S-redis-down", "type": "server"}, {"id": "CDN-edge", "type": "Cdn"}],
        },
        {"name": "prod", "tagged": 0, "assets": [{"id": "S-redis-down", "type": "HOST"}]},
    ]
    answer = call(url, "POST", "/api/v1/tags/update", add, token=token)
    assert (answer.status, answer.body) == (
        200,
        {
            "data": [
                {
                    "name": "redis:unreachable",
                    "tagged": True,
                    "assets": ["S-redis-down", "CDN-edge"],
                },
                {"name": "prod", "tagged": False, "assets": ["S-redis-down"]},
            ]
        },
    )
    found = call(url, "GET", "/api/v1/hosts?search=tag:redis:unreachable", token=token)
    assert found.body["data"] == [
        {
            "id": "S-redis-down",
            "name": "redis-down",
            "ip": "10.0.0.7",
            "port": 6390,
            "tags": ["redis", "redis:unreachable"],
        }
    ]
    remove = [
        {
            "name": "redis:unreachable",
            "tagged": False,
            "assets": [{"id": "S-redis-down", "type": "SERVER"}],
        }
    ]
    call(url, "POST", "/api/v1/tags/update", remove, token=token)
    tags = call(url, "GET", "/api/v1/tags", token=token).body["data"]
    assert [(t["name"], [a["id"] for a in t["assets"]]) for t in tags] == [
        ("redis", ["S-redis-ok", "S-redis-down"]),
        ("redis:unreachable", ["CDN-edge"]),
        ("web", ["D-example"]),
    ]


@pytest.mark.parametrize(
    ("asset", "message"),
    [
        ({"id": "S-nope", "type": "SERVER"}, "host 'S-nope' not found"),
        ({"id": "D-example", "type": "HOST"}, "host 'D-example' not found"),
        ({"id": "S-web", "type": "cdn"}, "cdn 'S-web' not found"),
    ],
)
def test_tag_update_with_an_unknown_asset_changes_nothing(
    url: str, token: str, asset: dict[str, str], message: str
) -> None:
    before = call(url, "GET", "/api/v1/tags", token=token).body
    body = [
        {"name": "new", "tagged": True, "assets": [{"id": "S-web", "type": "HOST"}]},
        {"name": "redis", "tagged": False, "assets": [{"id": "S-redis-ok", "type": "HOST"}]},
        {"name": "new", "tagged": True, "assets": [asset]},
    ]
    answer = call(url, "POST", "/api/v1/tags/update", body, token=token)
    assert (answer.status, answer.body) == (404, {"code": 404, "msg": message})
    assert call(url, "GET", "/api/v1/tags", token=token).body == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "x"}, 'the body must be a list of {"name", "tagged", "assets"} objects'),
        (
            ["x"],
            'the body must be a list of {"name", "tagged", "assets"} objects; '
            "item 0 is not an object",
        ),
        (
            [{"tagged": True, "assets": []}],
            "item 0: a tag name must be a non-empty string, not empty",
        ),
        (
            [{"name": "a b", "tagged": True, "assets": []}],
            "item 0: tag name 'a b' contains a space; search terms are split at spaces",
        ),
        ([{"name": "x", "tagged": "yes", "assets": []}], "item 0: 'tagged' must be true or false"),
        ([{"name": "x", "tagged": 2, "assets": []}], "item 0: 'tagged' must be true or false"),
        (
            [{"name": "x", "tagged": True}],
            'item 0: \'assets\' must be a list of {"id", "type"} objects',
        ),
        (
            [{"name": "x", "tagged": True, "assets": ["S-web"]}],
            'item 0: \'assets\' must be a list of {"id", "type"} objects',
        ),
        (
            [{"name": "x", "tagged": True, "assets": [{"id": "", "type": "HOST"}]}],
            "item 0: an asset id must be a non-empty string",
        ),
        (
            [{"name": "x", "tagged": True, "assets": [{"id": "S-web", "type": "VM"}]}],
            "item 0: asset type 'VM' is not one of SERVER, HOST, DOMAIN, CDN",
        ),
    ],
)
def test_tag_update_with_a_malformed_body_is_400(
    url: str, token: str, body: Any, message: str
) -> None:
    answer = call(url, "POST", "/api/v1/tags/update", body, token=token)
    assert (answer.status, answer.body) == (400, {"code": 400, "msg": message})


# --- channels and messages --------------------------------------------------------------


def test_channels_list(url: str, token: str) -> None:
    answer = call(url, "GET", "/api/v1/channels", token=token)
    assert answer.body == {
        "data": [
            {"id": "C-ops", "name": "ops"},
            {"id": "C-dev", "name": "dev"},
            {"id": "C-broken", "name": "broken"},
            {"id": "C-dead", "name": "dead"},
        ]
    }


def test_message_is_stored_and_forwarded_to_the_webhook(
    url: str, token: str, webhook: Webhook
) -> None:
    body = {"channel_ids": ["C-ops", "C-dev"], "message": "redis-down is unreachable"}
    answer = call(
        url, "POST", "/api/v1/channels/messages", body, token=token, headers={"X-Task-Id": "task-7"}
    )
    assert (answer.status, answer.body) == (
        200,
        {
            "data": [
                {"id": 1, "channel_id": "C-ops", "forwarded": True},
                {"id": 2, "channel_id": "C-dev", "forwarded": False},
            ]
        },
    )
    assert webhook.received == [
        {"channel_id": "C-ops", "channel_name": "ops", "message": "redis-down is unreachable"}
    ]
    stored = call(url, "GET", "/api/v1/messages", token=token).body["data"]
    assert [{k: v for k, v in m.items() if k != "created_at"} for m in stored] == [
        {
            "id": 1,
            "channel_id": "C-ops",
            "channel_name": "ops",
            "message": "redis-down is unreachable",
            "task_id": "task-7",
        },
        {
            "id": 2,
            "channel_id": "C-dev",
            "channel_name": "dev",
            "message": "redis-down is unreachable",
            "task_id": "task-7",
        },
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stored[0]["created_at"])


def test_failing_webhooks_are_logged_and_the_message_kept(
    url: str, token: str, dead_url: str, webhook: Webhook, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"channel_ids": ["C-dead", "C-broken"], "message": "hello"}
    answer = call(url, "POST", "/api/v1/channels/messages", body, token=token)
    assert (answer.status, answer.body) == (
        200,
        {
            "data": [
                {"id": 1, "channel_id": "C-dead", "forwarded": False},
                {"id": 2, "channel_id": "C-broken", "forwarded": False},
            ]
        },
    )
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"local Marvin: webhook of channel C-dead ({dead_url}) failed: ")
    assert "refused" in lines[0]
    assert lines[1] == f"local Marvin: webhook of channel C-broken ({webhook.url}) failed: HTTP 500"
    stored = call(url, "GET", "/api/v1/messages", token=token).body["data"]
    assert [(m["channel_id"], m["message"], m["task_id"]) for m in stored] == [
        ("C-dead", "hello", None),
        ("C-broken", "hello", None),
    ]


def test_message_to_an_unknown_channel_stores_nothing(
    url: str, token: str, webhook: Webhook
) -> None:
    body = {"channel_ids": ["C-ops", "C-nope"], "message": "hello"}
    answer = call(url, "POST", "/api/v1/channels/messages", body, token=token)
    assert (answer.status, answer.body) == (404, {"code": 404, "msg": "channel 'C-nope' not found"})
    assert call(url, "GET", "/api/v1/messages", token=token).body == {"data": []}
    assert webhook.received == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (["C-ops"], 'the body must be an object {"channel_ids": [...], "message": "..."}'),
        ({"message": "x"}, BAD_CHANNEL_IDS),
        ({"channel_ids": [], "message": "x"}, BAD_CHANNEL_IDS),
        ({"channel_ids": "C-ops", "message": "x"}, BAD_CHANNEL_IDS),
        ({"channel_ids": [1], "message": "x"}, BAD_CHANNEL_IDS),
        ({"channel_ids": ["C-ops"]}, "'message' must be a string"),
        ({"channel_ids": ["C-ops"], "message": {"text": "x"}}, "'message' must be a string"),
    ],
)
def test_malformed_message_is_400(url: str, token: str, body: Any, message: str) -> None:
    answer = call(url, "POST", "/api/v1/channels/messages", body, token=token)
    assert (answer.status, answer.body) == (400, {"code": 400, "msg": message})


def test_messages_after_an_id_and_of_one_task(url: str, token: str) -> None:
    for task, text in (("t1", "one"), ("t2", "two"), ("t1", "three")):
        call(
            url,
            "POST",
            "/api/v1/channels/messages",
            {"channel_ids": ["C-dev"], "message": text},
            token=token,
            headers={"X-Task-Id": task},
        )

    def texts(query: str) -> list[str]:
        answer = call(url, "GET", f"/api/v1/messages{query}", token=token)
        return [m["message"] for m in answer.body["data"]]

    assert texts("") == ["one", "two", "three"]
    assert texts("?after=1") == ["two", "three"]
    assert texts("?after=3") == []
    assert texts("?task_id=t1") == ["one", "three"]
    assert texts("?after=1&task_id=t1") == ["three"]
    for after in ("last", "-1", "1" * 19):
        bad = call(url, "GET", f"/api/v1/messages?after={after}", token=token)
        message = f"'after' must be a whole number, not '{after}'"
        assert (bad.status, bad.body) == (400, {"code": 400, "msg": message})


def state_of(url: str, token: str) -> str:
    answer = call(url, "GET", "/api/v1/state", token=token)
    assert answer.status == 200
    digest = answer.body["data"]["digest"]
    assert isinstance(digest, str) and len(digest) == 16
    return digest


def test_state_digest_follows_what_scripts_read_not_the_messages_they_send(
    url: str, token: str
) -> None:
    """What ``trek run --reuse`` compares at each node's start (docs/marvin-api.md)."""
    assert call(url, "GET", "/api/v1/state").status == 401
    first = state_of(url, token)
    assert state_of(url, token) == first
    sent = {"channel_ids": ["C-dev"], "message": "hello"}
    call(url, "POST", "/api/v1/channels/messages", sent, token=token)
    assert state_of(url, token) == first
    tag = [{"name": "down", "tagged": True, "assets": [{"id": "S-web", "type": "HOST"}]}]
    call(url, "POST", "/api/v1/tags/update", tag, token=token)
    tagged = state_of(url, token)
    assert tagged != first
    call(url, "POST", "/api/v1/tags/update", tag, token=token)  # already tagged: no change
    assert state_of(url, token) == tagged
    untag = [{**tag[0], "tagged": False}]
    call(url, "POST", "/api/v1/tags/update", untag, token=token)
    assert state_of(url, token) == first
    upload = {"Content-Type": "application/zip"}
    call(url, "PUT", "/api/v1/scripts/s/1.0.0", raw=zip_bytes("s"), token=token, headers=upload)
    assert state_of(url, token) not in (first, tagged)


def test_state_digest_after_a_reseed(db_path: Path, inventory_file: Path) -> None:
    token = issue_token(SECRET, "alice")
    digests = []
    text = inventory_file.read_text()
    for inventory in (
        text,
        "# a comment only\n" + text,
        text.replace("password: wonderland", "password: looking-glass"),
        text.replace("port: 6390", "port: 6391"),
    ):
        inventory_file.write_text(inventory)
        with MarvinServer(db_path, load_inventory(inventory_file), SECRET) as server:
            digests.append(state_of(server.url, token))
    assert digests[1] == digests[0]
    assert len(set(digests)) == 3  # a password or a host's port are part of what is served


def test_concurrent_messages_all_get_their_own_id(url: str, token: str) -> None:
    results: list[int] = []

    def post(index: int) -> None:
        body = {"channel_ids": ["C-dev"], "message": f"m{index}"}
        answer = call(url, "POST", "/api/v1/channels/messages", body, token=token)
        results.append(answer.body["data"][0]["id"])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(1, 17))
    stored = call(url, "GET", "/api/v1/messages", token=token).body["data"]
    assert sorted(m["message"] for m in stored) == sorted(f"m{i}" for i in range(16))


# --- deploy -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["templates", "scripts"])
def test_deploy_creates_keeps_refuses_and_overwrites(url: str, token: str, kind: str) -> None:
    singular = kind[:-1]
    first, second = zip_bytes("one"), zip_bytes("two")
    zip_header = {"Content-Type": "application/zip"}
    path = f"/api/v1/{kind}/host.detect.redis/0.1.0"

    created = call(url, "PUT", path, raw=first, token=token, headers=zip_header)
    first_data = {
        "id": "host.detect.redis",
        "version": "0.1.0",
        "digest": hashlib.sha256(first).hexdigest(),
    }
    assert (created.status, created.body) == (201, {"data": first_data})

    same = call(url, "PUT", path, raw=first, token=token, headers=zip_header)
    assert (same.status, same.body) == (200, {"data": first_data, "unchanged": True})

    other = call(url, "PUT", path, raw=second, token=token, headers=zip_header)
    assert (other.status, other.body) == (
        409,
        {"code": 409, "msg": f"{singular} host.detect.redis 0.1.0 already exists"},
    )
    meta = call(url, "GET", path, token=token)
    assert meta.body["data"]["digest"] == first_data["digest"]

    forced = call(url, "PUT", f"{path}?overwrite=true", raw=second, token=token, headers=zip_header)
    second_data = dict(first_data, digest=hashlib.sha256(second).hexdigest())
    assert (forced.status, forced.body) == (200, {"data": second_data, "overwritten": True})

    meta = call(url, "GET", path, token=token)
    assert meta.status == 200
    assert {k: v for k, v in meta.body["data"].items() if k != "created_at"} == dict(
        second_data, size=len(second)
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta.body["data"]["created_at"])


def test_templates_and_scripts_are_apart(url: str, token: str) -> None:
    headers = {"Content-Type": "application/zip"}
    call(url, "PUT", "/api/v1/scripts/same/1.0.0", raw=zip_bytes("s"), token=token, headers=headers)
    answer = call(
        url, "PUT", "/api/v1/templates/same/1.0.0", raw=zip_bytes("t"), token=token, headers=headers
    )
    assert answer.status == 201


@pytest.mark.parametrize(
    ("path", "headers", "raw", "status", "message"),
    [
        (
            "/api/v1/templates/t/1.0.0",
            {"Content-Type": "application/json"},
            b"{}",
            415,
            "a template upload needs Content-Type application/zip",
        ),
        (
            "/api/v1/scripts/s/1.0.0",
            {},
            b"PK",
            415,
            "a script upload needs Content-Type application/zip",
        ),
        (
            "/api/v1/templates/t/1.0.0",
            {"Content-Type": "application/zip"},
            b"not a zip",
            400,
            "the template upload is not a zip file",
        ),
        (
            "/api/v1/templates/-t/1.0.0",
            {"Content-Type": "application/zip"},
            b"",
            400,
            "'-t' is not a valid template id",
        ),
        (
            "/api/v1/scripts/s/1.0%2F0",
            {"Content-Type": "application/zip"},
            b"",
            400,
            "'1.0/0' is not a valid script version",
        ),
    ],
)
def test_deploy_refuses_bad_uploads(
    url: str,
    token: str,
    path: str,
    headers: dict[str, str],
    raw: bytes,
    status: int,
    message: str,
) -> None:
    answer = call(url, "PUT", path, raw=raw, token=token, headers=headers)
    assert (answer.status, answer.body) == (status, {"code": status, "msg": message})
    assert call(url, "GET", "/api/v1/templates/t/1.0.0", token=token).status == 404


@pytest.mark.parametrize("kind", ["templates", "scripts"])
def test_absent_deploy_is_404(url: str, token: str, kind: str) -> None:
    answer = call(url, "GET", f"/api/v1/{kind}/nothing/9.9.9", token=token)
    assert (answer.status, answer.body) == (
        404,
        {"code": 404, "msg": f"{kind[:-1]} nothing 9.9.9 not found"},
    )


# --- HTTP behaviour ---------------------------------------------------------------------


def test_unknown_endpoint_is_404_and_wrong_method_405(url: str, token: str) -> None:
    assert call(url, "GET", "/nope").body == {"code": 404, "msg": "no such endpoint: GET /nope"}
    wrong = call(url, "DELETE", "/api/v1/hosts", token=token)
    assert (wrong.status, wrong.body) == (
        405,
        {"code": 405, "msg": "DELETE is not allowed on /api/v1/hosts"},
    )
    login = call(url, "GET", "/api/v1/auth/login")
    assert (login.status, login.body) == (
        405,
        {"code": 405, "msg": "GET is not allowed on /api/v1/auth/login"},
    )


def test_keep_alive_serves_several_requests_on_one_connection(url: str, token: str) -> None:
    conn = connect(url)
    try:
        for path in ("/healthz", "/api/v1/channels", "/api/v1/hosts/S-nope"):
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            response.read()
            assert response.getheader("Connection") is None
        assert response.status == 404
    finally:
        conn.close()


def test_a_refused_upload_is_answered_and_the_connection_kept(url: str) -> None:
    """A 401 on a big upload reaches the client (no broken pipe); the connection lives on."""
    conn = connect(url)
    try:
        conn.request(
            "PUT",
            "/api/v1/templates/t/1.0.0",
            body=b"\0" * (4 * 2**20),
            headers={"Content-Type": "application/zip"},
        )
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())) == (401, UNAUTHORIZED)
        assert response.getheader("Connection") is None
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())["status"]) == (200, "ok")
    finally:
        conn.close()


def test_chunked_upload_is_accepted(url: str, token: str) -> None:
    content = zip_bytes("sent in chunks")
    conn = connect(url)
    try:
        conn.request(
            "PUT",
            "/api/v1/templates/chunky/1.0.0",
            body=iter([content[:10], content[10:50], content[50:]]),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/zip"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())["data"]["digest"]) == (
            201,
            hashlib.sha256(content).hexdigest(),
        )
        conn.request(
            "GET", "/api/v1/templates/chunky/1.0.0", headers={"Authorization": f"Bearer {token}"}
        )
        assert json.loads(conn.getresponse().read())["data"]["size"] == len(content)
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("framing", "status", "message"),
    [
        ("Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "malformed chunked body"),
        ("Transfer-Encoding: chunked\r\n\r\n-2\r\n", 400, "malformed chunked body"),
        ("Transfer-Encoding: chunked\r\n\r\n2\r\n[]xx\r\n", 400, "malformed chunked body"),
        ("Content-Length: many\r\n\r\n[]", 400, "Content-Length must be a whole number"),
        ("Content-Length: 99999999999\r\n\r\n[]", 413, "the body is larger than 64 MiB"),
    ],
)
def test_a_badly_framed_body_is_refused_and_closes(
    url: str, token: str, framing: str, status: int, message: str
) -> None:
    parts = urlsplit(url)
    request = (
        "POST /api/v1/tags/update HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: Bearer {token}\r\n{framing}"
    )
    with socket.create_connection((str(parts.hostname), parts.port), timeout=30) as sock:
        sock.sendall(request.encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"\r\nConnection: close" in head
    assert json.loads(body) == {"code": status, "msg": message}


def test_stop_ends_idle_keep_alive_connections(db_path: Path, inventory_file: Path) -> None:
    server = MarvinServer(db_path, load_inventory(inventory_file), SECRET)
    server.start()
    conn = connect(server.url)
    try:
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        server.stop()
        server.stop()
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            conn.request("GET", "/healthz")
            conn.getresponse()
    finally:
        conn.close()


# --- life cycle -------------------------------------------------------------------------


def test_restart_reseeds_the_inventory_but_keeps_messages_and_deploys(
    db_path: Path, inventory_file: Path
) -> None:
    with MarvinServer(db_path, load_inventory(inventory_file), SECRET) as server:
        token = issue_token(SECRET, "alice")
        call(
            server.url,
            "POST",
            "/api/v1/tags/update",
            token=token,
            body=[{"name": "extra", "tagged": True, "assets": [{"id": "S-web", "type": "HOST"}]}],
        )
        call(
            server.url,
            "POST",
            "/api/v1/channels/messages",
            token=token,
            body={"channel_ids": ["C-dev"], "message": "kept"},
        )
        call(
            server.url,
            "PUT",
            "/api/v1/templates/t/1.0.0",
            raw=zip_bytes("t"),
            token=token,
            headers={"Content-Type": "application/zip"},
        )

    inventory_file.write_text(
        "hosts:\n  - {id: S-new, name: new, ip: 10.9.9.9, tags: [fresh]}\n"
        "channels:\n  - {id: C-other, name: other}\n"
    )
    with MarvinServer(db_path, load_inventory(inventory_file), SECRET) as server:
        token = issue_token(SECRET, "trek")
        alice_token = issue_token(SECRET, "alice")  # no longer a user: her token still reads
        hosts = call(server.url, "GET", "/api/v1/hosts", token=token).body["data"]
        tags = call(server.url, "GET", "/api/v1/tags", token=token).body["data"]
        channels = call(server.url, "GET", "/api/v1/channels", token=token).body["data"]
        messages = call(server.url, "GET", "/api/v1/messages", token=alice_token).body["data"]
        deployed = call(server.url, "GET", "/api/v1/templates/t/1.0.0", token=alice_token)
        not_trek = call(server.url, "GET", "/api/v1/templates/t/1.0.0", token=token).status
        alice = call(
            server.url,
            "POST",
            "/api/v1/auth/login",
            {"username": "alice", "password": "wonderland"},
        )
        nxt = call(
            server.url,
            "POST",
            "/api/v1/channels/messages",
            token=token,
            body={"channel_ids": ["C-other"], "message": "new"},
        )

    assert [h["id"] for h in hosts] == ["S-new"]
    assert tags == [{"name": "fresh", "assets": [{"id": "S-new", "type": "HOST"}]}]
    assert channels == [{"id": "C-other", "name": "other"}]
    assert [(m["id"], m["channel_name"], m["message"]) for m in messages] == [(1, "dev", "kept")]
    assert deployed.status == 200
    assert not_trek == 404
    assert alice.status == 401
    assert nxt.body["data"] == [{"id": 2, "channel_id": "C-other", "forwarded": False}]


def test_a_file_that_is_not_a_database_is_bad_input(tmp_path: Path) -> None:
    db = tmp_path / "marvin.db"
    db.write_text("this is not SQLite, just text that is long enough to look like a header\n" * 20)
    server = MarvinServer(db, load_inventory(tmp_path / "none.yml"), SECRET)
    with pytest.raises(BadInput) as info:
        server.start()
    assert str(info.value) == (
        f"{db}: not a usable local Marvin database (file is not a database); "
        "delete it to start afresh"
    )


def test_a_database_of_another_schema_is_bad_input(tmp_path: Path) -> None:
    db = tmp_path / "marvin.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    server = MarvinServer(db, load_inventory(tmp_path / "none.yml"), SECRET)
    with pytest.raises(BadInput) as info:
        server.start()
    assert str(info.value) == (
        f"{db}: database schema 7 is not the expected 2; delete the file to start afresh"
    )


def test_requests_are_logged_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = load_inventory(tmp_path / "none.yml")
    with MarvinServer(tmp_path / "m.db", inventory, SECRET, log_requests=True) as server:
        call(server.url, "GET", "/healthz")
    assert capsys.readouterr().err == 'local Marvin: 127.0.0.1 "GET /healthz HTTP/1.1" 200 -\n'


def test_a_secret_is_required(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as info:
        MarvinServer(tmp_path / "m.db", load_inventory(tmp_path / "none.yml"), "")
    assert str(info.value) == "secret: the local Marvin needs a non-empty secret (marvin_secret)"


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MarvinServer(
            tmp_path / "m.db", load_inventory(tmp_path / "none.yml"), SECRET, port=port
        )
        with pytest.raises(PortInUse) as info:
            server.start()
    assert str(info.value) == (
        f"127.0.0.1:{port}: port {port} is already in use; stop what uses it or choose another"
    )
    assert info.value.exit_code == 4
    assert not (tmp_path / "m.db").exists()


def test_listen_addresses_serve_on_the_same_port_and_a_taken_one_is_reported(
    tmp_path: Path,
) -> None:
    inventory = load_inventory(tmp_path / "none.yml")
    with MarvinServer(tmp_path / "m.db", inventory, SECRET, listen=("127.0.0.2",)) as server:
        port = urlsplit(server.url).port
        for host in ("127.0.0.1", "127.0.0.2"):  # both loopback, as the bridge gateway is local
            assert call(f"http://{host}:{port}", "GET", "/healthz").status == 200
    with socket.socket() as busy:
        busy.bind(("127.0.0.2", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        server = MarvinServer(
            tmp_path / "n.db", inventory, SECRET, port=taken, listen=("127.0.0.2",)
        )
        with pytest.raises(PortInUse) as info:
            server.start()
    assert str(info.value).startswith(f"127.0.0.2:{taken}: port {taken} is already in use")
    with socket.socket() as again:  # the address bound first was let go
        again.bind(("127.0.0.1", taken))


# --- the command line, as a real subprocess ---------------------------------------------


def _env() -> dict[str, str]:
    root = str(Path(trek_tasks.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def _command(tmp_path: Path, *extra: str) -> list[str]:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    return [
        sys.executable,
        "-m",
        "trek_tasks.marvin.server",
        "--db",
        str(tmp_path / "m.db"),
        "--secret-file",
        str(secret_file),
        *extra,
    ]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_cli_serves_until_signalled(
    tmp_path: Path, inventory_file: Path, signum: int, code: int
) -> None:
    command = _command(tmp_path, "--inventory", str(inventory_file), "--port", "0")
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        ready = proc.stdout.readline()
        match = re.fullmatch(r"local Marvin listening on (http://127\.0\.0\.1:\d+)\n", ready)
        assert match, ready + proc.stderr.read()
        url = match.group(1)
        login = call(
            url, "POST", "/api/v1/auth/login", {"username": "alice", "password": "wonderland"}
        )
        hosts = call(url, "GET", "/api/v1/hosts?search=tag:prod", token=login.body["token"])
        assert [h["id"] for h in hosts.body["data"]] == ["S-redis-down"]
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == code
        assert proc.stdout.read() == ""
        assert proc.stderr.read() == ""
    assert SECRET not in " ".join(command)


def test_cli_port_in_use_exits_4(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            _command(tmp_path, "--port", str(port)),
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )
    assert (result.returncode, result.stdout, result.stderr) == (
        4,
        "",
        f"127.0.0.1:{port}: port {port} is already in use; stop what uses it or choose another\n",
    )


def test_cli_bad_inventory_exits_2(tmp_path: Path) -> None:
    (tmp_path / "inventory.yml").write_text("hosts:\n  - {id: S-1, name: a}\n")
    result = subprocess.run(
        _command(tmp_path, "--inventory", "inventory.yml"),
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        "inventory.yml:2:5: host has no 'ip'; add it\n",
    )


def test_cli_missing_secret_file_exits_2(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "trek_tasks.marvin.server",
        "--db",
        "m.db",
        "--secret-file",
        "absent",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=60
    )
    assert (result.returncode, result.stderr) == (2, "absent: secret file not found\n")


def test_cli_empty_secret_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("\n")
    command = [
        sys.executable,
        "-m",
        "trek_tasks.marvin.server",
        "--db",
        "m.db",
        "--secret-file",
        "secret",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=60
    )
    assert (result.returncode, result.stderr) == (
        2,
        "secret: the secret file is empty; write marvin_secret into it\n",
    )


def test_server_imports_no_heavy_dependency() -> None:
    code = (
        "import sys, trek_tasks.marvin.server; "
        "print(sorted({'requests', 'jinja2', 'jsonschema', 'doit'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=True,
    )
    assert result.stdout == "[]\n"


# --- users are kept apart: messages, channels, deployed items; logins; the file ----------

TWO_USERS = """\
channels:
  - {id: C-shared, name: shared}
  - {id: C-alice, name: alice-only, users: [alice]}
users:
  - {username: alice, password: wonderland}
  - {username: bob, password: builder}
"""


@pytest.fixture
def two_users(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "two.yml"
    path.write_text(TWO_USERS)
    with MarvinServer(tmp_path / "two.sqlite", load_inventory(path), SECRET) as server:
        yield server.url


def login(url: str, username: str, password: str, source: str = "127.0.0.1") -> Answer:
    """POST /api/v1/auth/login from the loopback address ``source`` (127.0.0.0/8)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(
        str(parts.hostname), parts.port, timeout=30, source_address=(source, 0)
    )
    try:
        body = json.dumps({"username": username, "password": password})
        conn.request("POST", "/api/v1/auth/login", body=body)
        response = conn.getresponse()
        return Answer(response.status, json.loads(response.read()), dict(response.getheaders()))
    finally:
        conn.close()


def token_of(url: str, username: str, password: str) -> str:
    answer = login(url, username, password)
    assert answer.status == 200, answer.body
    return str(answer.body["token"])


def test_each_user_reads_only_their_own_messages(two_users: str) -> None:
    alice = token_of(two_users, "alice", "wonderland")
    bob = token_of(two_users, "bob", "builder")
    sent = {"channel_ids": ["C-shared", "C-alice"], "message": "for alice's eyes"}
    assert call(two_users, "POST", "/api/v1/channels/messages", sent, token=alice).status == 200
    call(
        two_users,
        "POST",
        "/api/v1/channels/messages",
        {**sent, "channel_ids": ["C-shared"], "message": "from bob"},
        token=bob,
    )

    def texts(token: str, query: str = "") -> list[str]:
        answer = call(two_users, "GET", f"/api/v1/messages{query}", token=token)
        return [m["message"] for m in answer.body["data"]]

    assert texts(alice) == ["for alice's eyes", "for alice's eyes"]
    assert texts(bob) == ["from bob"]
    assert texts(bob, "?after=0") == ["from bob"]


def test_a_channel_for_some_users_is_hidden_from_the_others(two_users: str) -> None:
    alice = token_of(two_users, "alice", "wonderland")
    bob = token_of(two_users, "bob", "builder")
    listed = {
        who: [c["id"] for c in call(two_users, "GET", "/api/v1/channels", token=t).body["data"]]
        for who, t in (("alice", alice), ("bob", bob))
    }
    assert listed == {"alice": ["C-shared", "C-alice"], "bob": ["C-shared"]}
    body = {"channel_ids": ["C-shared", "C-alice"], "message": "hi"}
    answer = call(two_users, "POST", "/api/v1/channels/messages", body, token=bob)
    assert (answer.status, answer.body) == (
        404,
        {"code": 404, "msg": "channel 'C-alice' not found"},
    )
    assert call(two_users, "GET", "/api/v1/messages", token=bob).body == {"data": []}


def test_another_users_template_is_neither_replaced_nor_read(two_users: str) -> None:
    alice = token_of(two_users, "alice", "wonderland")
    bob = token_of(two_users, "bob", "builder")
    upload = {"Content-Type": "application/zip"}
    path = "/api/v1/templates/host.detect.redis/0.1.0"
    mine = zip_bytes("alice's graph")
    assert call(two_users, "PUT", path, raw=mine, token=alice, headers=upload).status == 201
    refused = {"code": 403, "msg": "template host.detect.redis 0.1.0 belongs to another user"}
    for query, data in (("?overwrite=true", zip_bytes("bob's graph")), ("", mine)):
        answer = call(two_users, "PUT", path + query, raw=data, token=bob, headers=upload)
        assert (answer.status, answer.body) == (403, refused)
    answer = call(two_users, "GET", path, token=bob)
    assert (answer.status, answer.body) == (
        404,
        {"code": 404, "msg": "template host.detect.redis 0.1.0 not found"},
    )
    kept = call(two_users, "GET", path, token=alice)
    assert kept.body["data"]["digest"] == hashlib.sha256(mine).hexdigest()
    again = call(
        two_users, "PUT", path + "?overwrite=true", raw=zip_bytes("v2"), token=alice, headers=upload
    )
    assert (again.status, again.body.get("overwritten")) == (200, True)


WRONG = {"code": 401, "msg": "wrong username or password"}


def slowed(seconds: int) -> dict[str, Any]:
    return {
        "code": 429,
        "msg": f"too many failed logins for this user or from this address; "
        f"try again in {seconds} s",
        "retry_after": seconds,
    }


def test_failed_logins_of_a_user_are_slowed_down(two_users: str) -> None:
    for _ in range(5):
        assert login(two_users, "alice", "guess").body == WRONG
    refused = login(two_users, "alice", "wonderland")  # even the right password waits
    assert (refused.status, refused.body, refused.headers["Retry-After"]) == (429, slowed(1), "1")
    assert login(two_users, "alice", "wonderland", source="127.0.0.2").status == 429  # per user
    assert login(two_users, "bob", "builder", source="127.0.0.2").status == 200
    time.sleep(1.1)
    assert login(two_users, "alice", "wonderland").status == 200  # a success clears the count
    assert login(two_users, "alice", "guess").body == WRONG


def test_failed_logins_from_a_client_are_slowed_down(two_users: str) -> None:
    for index in range(5):  # a spray over usernames from one address
        assert login(two_users, f"user{index}", "guess", source="127.0.0.3").body == WRONG
    assert login(two_users, "bob", "builder", source="127.0.0.3").body == slowed(1)
    assert login(two_users, "bob", "builder", source="127.0.0.4").status == 200


def test_hammering_the_login_gets_few_password_checks(two_users: str) -> None:
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + 3

    def hammer() -> None:
        while time.monotonic() < deadline:
            statuses[login(two_users, "alice", "guess").status] += 1

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 5 free failures, then one after 1 s and one after 2 more: nowhere near 143 in 3 s
    assert statuses[401] <= 7
    assert statuses[429] > 0 and set(statuses) == {401, 429}


def test_the_database_is_private_whatever_the_umask(tmp_path: Path) -> None:
    inventory = load_inventory(tmp_path / "none.yml")
    fresh = tmp_path / "fresh" / "marvin.sqlite"
    old = tmp_path / "old" / "marvin.sqlite"
    old.parent.mkdir()
    sqlite3.connect(old).close()
    old.chmod(0o644)
    mask = os.umask(0)
    try:
        for db in (fresh, old):
            with MarvinServer(db, inventory, SECRET) as server:
                call(server.url, "GET", "/healthz")
                files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
                assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {
                    p.name: "0o600" for p in files
                }
    finally:
        os.umask(mask)


SCHEMA_1 = """
CREATE TABLE assets (id TEXT PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL, ip TEXT,
    port INTEGER);
CREATE TABLE asset_tags (asset_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (asset_id, tag));
CREATE TABLE channels (id TEXT PRIMARY KEY, name TEXT NOT NULL, webhook TEXT);
CREATE TABLE users (username TEXT PRIMARY KEY, salt BLOB NOT NULL, password_hash BLOB NOT NULL,
    name TEXT NOT NULL, email TEXT NOT NULL);
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, channel_id TEXT NOT NULL,
    channel_name TEXT NOT NULL, message TEXT NOT NULL, created_at TEXT NOT NULL, task_id TEXT);
CREATE TABLE deployed (kind TEXT NOT NULL, id TEXT NOT NULL, version TEXT NOT NULL,
    digest TEXT NOT NULL, size INTEGER NOT NULL, created_at TEXT NOT NULL,
    content BLOB NOT NULL, PRIMARY KEY (kind, id, version));
INSERT INTO messages (channel_id, channel_name, message, created_at)
    VALUES ('C-shared', 'shared', 'from before', '2024-05-01T12:00:00Z');
INSERT INTO deployed VALUES ('template', 't', '1.0.0', 'x', 1, '2024-05-01T12:00:00Z', 'x');
PRAGMA user_version = 1;
"""


def test_a_database_from_before_owners_is_upgraded_and_its_rows_are_nobodys(
    tmp_path: Path,
) -> None:
    db = tmp_path / "marvin.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA_1)
    conn.close()
    path = tmp_path / "two.yml"
    path.write_text(TWO_USERS)
    with MarvinServer(db, load_inventory(path), SECRET) as server:
        alice = token_of(server.url, "alice", "wonderland")
        messages = call(server.url, "GET", "/api/v1/messages", token=alice).body
        fetched = call(server.url, "GET", "/api/v1/templates/t/1.0.0", token=alice).status
        upload = {"Content-Type": "application/zip"}
        put = call(
            server.url,
            "PUT",
            "/api/v1/templates/t/1.0.0",
            raw=zip_bytes("t"),
            token=alice,
            headers=upload,
        )
        sent = call(
            server.url,
            "POST",
            "/api/v1/channels/messages",
            {"channel_ids": ["C-shared"], "message": "now"},
            token=alice,
        )
    assert (messages, fetched, put.status) == ({"data": []}, 404, 201)
    assert sent.body["data"][0]["id"] == 2  # ids keep counting up
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_client_resetting_its_connection_leaves_no_traceback(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parts = urlsplit(url)
    for _ in range(3):
        sock = socket.create_connection((str(parts.hostname), int(parts.port or 0)), timeout=30)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, while the server waits for the next request
    assert call(url, "GET", "/healthz").status == 200
    assert capsys.readouterr().err == ""

"""trek_tasks.http against a real local http.server: timeouts, retries, one message style,
no credentials in messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import REPO, free_port

from trek_tasks import http
from trek_tasks.errors import StepFailed
from trek_tasks.http import HttpError, shown_url

# 127.0.0.1 is called through http.client (``http.is_loopback``); 127.0.0.2, also this
# machine but not one of its usual loopback names, through requests: both transports.
HOSTS = ("127.0.0.1", "127.0.0.2")


class Scripted(ThreadingHTTPServer):
    """Answers each path with the next (status, body) planned for it; 200 when none is left."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), Handler)
        self.plan: dict[str, list[tuple[int, bytes]]] = {}
        self.hits: Counter[tuple[str, str]] = Counter()
        self.host = host
        self.url = f"http://{host}:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Scripted
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # one write per answer: no Nagle and delayed-ACK pause

    def _answer(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.hits[self.command, path] += 1
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length) if length else b""
        if path == "/slow":
            time.sleep(1.0)
        if path == "/echo":  # says back what it was sent: the URL and the credentials
            said = f"{self.path} {self.headers.get('Authorization')} {received.decode()}"
            self._send(401, json.dumps({"msg": said}).encode())
            return
        planned = self.server.plan.get(path) or []
        status, body = planned.pop(0) if planned else (200, b'{"data": "ok"}')
        self._send(status, body)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def scripted(host: str = "127.0.0.1") -> Iterator[Scripted]:
    server = Scripted(host)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(params=HOSTS)
def server(request: pytest.FixtureRequest) -> Iterator[Scripted]:
    with scripted(request.param) as running:
        yield running


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff pauses taken (recorded, not slept)."""
    taken: list[float] = []
    monkeypatch.setattr(http, "sleep", taken.append)
    return taken


def busy(status: int) -> tuple[int, bytes]:
    return status, json.dumps({"msg": "busy, try later"}).encode()


def test_request_returns_the_answer(server: Scripted) -> None:
    response = http.request("PUT", server.url + "/item", payload={"a": 1})
    assert (response.status, response.json()) == (200, {"data": "ok"})
    assert server.hits["PUT", "/item"] == 1


@pytest.mark.parametrize("status", [502, 503, 504])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_idempotent_calls_are_retried_with_backoff_when_busy(
    server: Scripted, sleeps: list[float], method: str, status: int
) -> None:
    server.plan["/item"] = [busy(status), busy(status)]
    assert http.request(method, server.url + "/item").status == 200
    assert server.hits[method, "/item"] == 3
    assert sleeps == [0.1, 0.2]


def test_a_post_is_sent_once(server: Scripted, sleeps: list[float]) -> None:
    server.plan["/item"] = [busy(503)]
    with pytest.raises(HttpError) as caught:
        http.request("POST", server.url + "/item", payload={})
    assert str(caught.value) == f"POST {server.url}/item: HTTP 503: busy, try later"
    assert (server.hits["POST", "/item"], sleeps) == (1, [])


def test_retries_stop_after_three_attempts(server: Scripted, sleeps: list[float]) -> None:
    server.plan["/item"] = [busy(502)] * 5
    with pytest.raises(HttpError) as caught:
        http.request("GET", server.url + "/item")
    assert str(caught.value) == f"GET {server.url}/item: HTTP 502: busy, try later"
    assert caught.value.status == 502
    assert server.hits["GET", "/item"] == 3


@pytest.mark.parametrize("status", [400, 404, 500])
def test_other_failures_are_not_retried(server: Scripted, sleeps: list[float], status: int) -> None:
    server.plan["/item"] = [(status, b'{"code": 1, "msg": "no such item"}')]
    with pytest.raises(HttpError) as caught:
        http.request("GET", server.url + "/item")
    assert str(caught.value) == f"GET {server.url}/item: HTTP {status}: no such item"
    assert isinstance(caught.value, StepFailed)
    assert (server.hits["GET", "/item"], sleeps) == (1, [])


def test_an_answer_without_a_message_names_the_status_phrase(server: Scripted) -> None:
    server.plan["/item"] = [(404, b"")]
    with pytest.raises(HttpError) as caught:
        http.request("GET", server.url + "/item")
    assert str(caught.value) == f"GET {server.url}/item: HTTP 404: Not Found"


def test_a_slow_answer_times_out_once(server: Scripted, sleeps: list[float]) -> None:
    started = time.monotonic()
    with pytest.raises(HttpError) as caught:
        http.request("GET", server.url + "/slow", timeout=(2.0, 0.2))
    assert time.monotonic() - started < 0.9
    assert str(caught.value) == f"GET {server.url}/slow: no answer within 0.2 s"
    assert (server.hits["GET", "/slow"], sleeps) == (1, [])


@pytest.mark.parametrize("host", HOSTS)
def test_nobody_listening_is_retried_then_cannot_connect(sleeps: list[float], host: str) -> None:
    url = f"http://{host}:{free_port()}/item"
    with pytest.raises(HttpError) as caught:
        http.request("DELETE", url)
    assert str(caught.value) == f"DELETE {url}: cannot connect: Connection refused"
    assert (caught.value.status, caught.value.why) == (0, "Connection refused")
    assert sleeps == [0.1, 0.2]


@pytest.mark.parametrize("host", HOSTS)
def test_a_post_to_nobody_is_not_retried(sleeps: list[float], host: str) -> None:
    url = f"http://{host}:{free_port()}/item"
    with pytest.raises(HttpError, match="cannot connect: Connection refused$"):
        http.request("POST", url, payload={})
    assert sleeps == []


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_credentials_never_reach_a_message(server: Scripted, method: str) -> None:
    port = server.server_address[1]
    url = f"http://alice:pa55word-x@{server.host}:{port}/echo?page=2&access_token=qs-token-123"
    with pytest.raises(HttpError) as caught:
        http.request(
            method,
            url,
            headers={"Authorization": "Bearer jwt.header-token.sig"},
            payload={"password": "pa55word-x"} if method == "POST" else None,
        )
    message = str(caught.value)
    assert message.startswith(
        f"{method} http://{server.host}:{port}/echo?page=2&access_token=...: HTTP 401: "
    )
    assert "Basic YWxpY2U6cGE1NXdvcmQteA==" not in message  # the user info, sent as Basic auth
    for secret in ("pa55word-x", "qs-token-123", "jwt.header-token.sig", "alice", "Bearer jwt"):
        assert secret not in message


@pytest.mark.parametrize("host", HOSTS)
def test_no_answer_messages_hide_credentials_too(host: str) -> None:
    url = f"http://bob:hunter22@{host}:{free_port()}/x?token=abcdef123"
    with pytest.raises(HttpError) as caught:
        http.request("POST", url)
    assert str(caught.value) == (f"POST {shown_url(url)}: cannot connect: Connection refused")
    assert "hunter22" not in str(caught.value) and "abcdef123" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "hide_query", "shown"),
    [
        ("https://u:p@host:8443/a/b?token=x#frag", False, "https://host:8443/a/b?token=..."),
        ("https://u:p@host:8443/a/b?token=x", True, "https://host:8443/a/b?..."),
        ("http://h/a?search=tag:redis&after=3", False, "http://h/a?search=tag:redis&after=3"),
        ("http://h/a?API_KEY=k&x=1&sig=s", False, "http://h/a?API_KEY=...&x=1&sig=..."),
        ("http://h/a", True, "http://h/a"),
        ("file:///srv/repo", False, "file:///srv/repo"),
    ],
)
def test_shown_url(url: str, hide_query: bool, shown: str) -> None:
    assert shown_url(url, hide_query) == shown


def test_stream_yields_chunks_and_refuses_failures(server: Scripted) -> None:
    server.plan["/blob"] = [(200, b"x" * 10_000)]
    with http.stream("GET", server.url + "/blob") as answer:
        assert answer.headers["Content-Length"] == "10000"
        assert b"".join(answer.chunks(4096)) == b"x" * 10_000
    server.plan["/blob"] = [(404, b"")]
    with pytest.raises(HttpError) as caught, http.stream("GET", server.url + "/blob"):
        pass
    assert (caught.value.status, caught.value.phrase) == (404, "Not Found")


def test_importing_the_http_layer_loads_no_requests() -> None:
    probe = (
        "import sys\n"
        "import trek_tasks.http, trek_tasks.invoker, trek_tasks.marvin.client\n"
        "import trek_tasks.marvin.target\n"
        "print('requests' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "False"), proc.stderr

"""The script invoker against a real local http.server: script URLs, kept connections, and
failures in the HTTP layer's style without the event's token."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import free_port

from trek_tasks.errors import StepFailed
from trek_tasks.invoker import HttpInvoker

TOKEN = "eyJhbGciOi.secret-claims.signature"


class Stub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), StubHandler)
        self.connections = 0
        self.paths: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client gave up on /nap before the answer: expected


class StubHandler(BaseHTTPRequestHandler):
    """``/echo`` answers the event's body; ``/boom`` fails saying the token; ``/nap`` naps."""

    server: Stub
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # one write per answer: no Nagle and delayed-ACK pause

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_POST(self) -> None:
        event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.paths.append(self.path)
        if self.path == "/nap":
            time.sleep(1.0)
        if self.path == "/boom":
            status, body = 500, json.dumps({"msg": f"bad token {event['token']}"}).encode()
        elif self.path == "/text":
            status, body = 200, b"not json"
        else:
            status, body = 200, event["body"].encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def event(inputs: dict) -> dict:
    return {"action": "s", "token": TOKEN, "body": json.dumps(inputs)}


def test_calls_go_to_the_script_url_over_one_kept_connection(stub: Stub) -> None:
    invoker = HttpInvoker({"echo": stub.url + "/echo"})
    try:
        outputs = [invoker("echo", event({"n": n}), 5) for n in range(5)]
    finally:
        invoker.close()
    assert outputs == [{"n": n} for n in range(5)]
    assert (stub.paths, stub.connections) == (["/echo"] * 5, 1)


def test_the_next_run_in_this_process_takes_over_the_connections_a_finished_run_kept(
    stub: Stub,
) -> None:
    first = HttpInvoker({"echo": stub.url + "/echo"})
    assert first("echo", event({"n": 1}), 5) == {"n": 1}
    first.close(keep=True)
    second = HttpInvoker({"echo": stub.url + "/echo"})
    assert second("echo", event({"n": 2}), 5) == {"n": 2}
    second.close()  # not kept: an interrupted or one-off run closes them
    third = HttpInvoker({"echo": stub.url + "/echo"})
    assert third("echo", event({"n": 3}), 5) == {"n": 3}
    third.close(keep=True)
    assert stub.connections == 2
    HttpInvoker({"other": stub.url + "/other"}).close()  # echo is gone: its connection too
    fourth = HttpInvoker({"echo": stub.url + "/echo"})
    assert fourth("echo", event({"n": 4}), 5) == {"n": 4}
    fourth.close()
    assert stub.connections == 3


def test_a_failed_script_says_why_without_the_token(stub: Stub) -> None:
    invoker = HttpInvoker({"boom": stub.url + "/boom"})
    with pytest.raises(StepFailed) as caught:
        invoker("boom", event({}), 5)
    invoker.close()
    assert str(caught.value) == "failed with HTTP 500: bad token ..."


def test_non_json_outputs_and_timeouts(stub: Stub) -> None:
    invoker = HttpInvoker({"text": stub.url + "/text", "nap": stub.url + "/nap"})
    try:
        with pytest.raises(StepFailed, match="^answered 200 with non-JSON output$"):
            invoker("text", event({}), 5)
        with pytest.raises(StepFailed, match=r"^timed out after 0\.2 s \(action_timeout\)$"):
            invoker("nap", event({}), 0.2)
    finally:
        invoker.close()


def test_an_unreachable_script_is_named_by_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    invoker = HttpInvoker({"gone": url})
    with pytest.raises(StepFailed) as caught:
        invoker("gone", event({}), 5)
    assert str(caught.value) == f"POST {url}: cannot connect: Connection refused"


def test_a_script_without_a_url_is_not_running() -> None:
    with pytest.raises(StepFailed, match=r"^script x is not running; run `trek initenv`$"):
        HttpInvoker({})("x", event({}), 5)

"""The blcks SDK in-process: the handler decorator, the testing harness and the service clients
against a real local HTTP server standing in for Marvin."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pytest

import blcks as sdk
from blcks import InputError, ScriptError, ServiceError, ServiceName, blcks
from blcks.testing import call, make_event


class Recorded(NamedTuple):
    method: str
    path: str
    authorization: str | None
    body: Any


class FakeMarvin(ThreadingHTTPServer):
    """A stand-in Marvin that records requests and answers from a table (default: echo)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), MarvinHandler)
        self.seen: list[Recorded] = []
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.held: set[str] = set()  # paths that never answer (until `release`, then close)
        self.release = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_port}"


class MarvinHandler(BaseHTTPRequestHandler):
    server: FakeMarvin

    def do_GET(self) -> None:  # noqa: N802
        self._answer(None)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

    def _answer(self, body: Any) -> None:
        path = self.path
        self.server.seen.append(Recorded(self.command, path, self.headers["Authorization"], body))
        if path in self.server.held:
            self.server.release.wait(20)
            return  # the client gave up long ago: close without an answer
        status, payload = self.server.answers.get(
            path, (200, json.dumps({"path": path, "data": []}).encode())
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def marvin() -> Iterator[FakeMarvin]:
    server = FakeMarvin()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,))
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.fixture(autouse=True)
def no_marvin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARVIN_URL", raising=False)
    monkeypatch.delenv("MARVIN_TOKEN", raising=False)


def load_handler(tmp_path: Path, source: str) -> ModuleType:
    """Import a handler.py under a unique module name, as a script folder would hold it."""
    path = tmp_path / f"handler_{uuid.uuid4().hex}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GREET = """
    from blcks import blcks

    FAAS_METHOD_NAME = "greet"


    @blcks
    def main(event, context):
        pass


    @blcks.script(FAAS_METHOD_NAME)
    def process(name, punctuation="!"):
        return {"greeting": "hello " + name + punctuation}
"""

SERVICES = """
    from blcks import blcks, ServiceName

    FAAS_METHOD_NAME = "svc"


    @blcks
    def main(event, context):
        pass


    @blcks.script(FAAS_METHOD_NAME)
    def process(service, method, params):
        return {"answer": blcks.createService(service).call(method, **params)}
"""


@pytest.fixture
def greet(tmp_path: Path) -> ModuleType:
    return load_handler(tmp_path, GREET)


@pytest.fixture
def svc(tmp_path: Path) -> ModuleType:
    return load_handler(tmp_path, SERVICES)


def test_make_event_has_the_workflow_shape() -> None:
    assert make_event({"a": 1}, action="x", token="tok", marvin_url="http://m", task_id="t1") == {
        "action": "x",
        "taskId": "t1",
        "token": "tok",
        "headers": {"Authorization": "Bearer tok"},
        "body": '{"a": 1}',
        "context": {"marvin_url": "http://m"},
    }
    assert make_event({}) == {
        "action": "",
        "taskId": "local-test",
        "token": "",
        "headers": {},
        "body": "{}",
        "context": {},
    }


def test_call_runs_the_only_script(greet: ModuleType) -> None:
    assert call(greet.main, {"name": "Ada"}) == {"greeting": "hello Ada!"}
    assert call(greet.main, {"name": "Ada", "punctuation": "?"}, action="greet") == {
        "greeting": "hello Ada?"
    }


def test_event_may_be_json_text_and_body_a_dict(greet: ModuleType) -> None:
    event = make_event({}, action="greet")
    event["body"] = {"name": "Bo"}
    assert greet.main(json.dumps(event), None) == {"greeting": "hello Bo!"}
    assert greet.main(json.dumps(event).encode(), None) == {"greeting": "hello Bo!"}


def test_call_says_when_main_is_not_decorated() -> None:
    with pytest.raises(TypeError) as caught:
        call(lambda event, context: None, {"name": "Ada"})
    assert str(caught.value) == (
        "main returned NoneType, expected the outputs dict: decorate main with @blcks"
    )


def test_wrapper_keeps_the_name_of_main(greet: ModuleType) -> None:
    assert greet.main.__name__ == "main"


def test_main_hook_result_replaces_the_script(tmp_path: Path) -> None:
    handler = load_handler(
        tmp_path,
        """
        from blcks import blcks

        @blcks
        def main(event, context):
            if event["action"] == "hooked":
                return {"seen": [event["taskId"], event["body"], context]}

        @blcks.script("hooked")
        def process():
            raise AssertionError("the hook answered, process must not run")

        @blcks.script("plain")
        def plain():
            return {"plain": True}
        """,
    )
    assert handler.main(make_event({"a": 1}, action="hooked", task_id="t9"), "ctx") == {
        "seen": ["t9", '{"a": 1}', "ctx"]
    }
    assert call(handler.main, action="plain") == {"plain": True}


def test_unknown_and_missing_inputs_are_input_errors(greet: ModuleType) -> None:
    with pytest.raises(InputError) as caught:
        call(greet.main, {"nmae": "x", "colour": "red"})
    assert isinstance(caught.value, ScriptError)
    assert caught.value.code == 400
    assert caught.value.msg == (
        "greet: unknown input(s) nmae (did you mean name?), colour; "
        "missing required input(s) name (process takes: name, punctuation)"
    )
    with pytest.raises(InputError, match=r"^greet: missing required input\(s\) name \("):
        call(greet.main, {})


def test_process_with_var_keywords_takes_any_input(tmp_path: Path) -> None:
    handler = load_handler(
        tmp_path,
        """
        from blcks import blcks

        @blcks
        def main(event, context):
            pass

        @blcks.script("any")
        def process(first, **rest):
            return {"first": first, "rest": rest}
        """,
    )
    assert call(handler.main, {"first": 1, "x": 2}) == {"first": 1, "rest": {"x": 2}}


def test_non_dict_result_is_a_script_error(tmp_path: Path) -> None:
    handler = load_handler(
        tmp_path,
        """
        from blcks import blcks

        @blcks
        def main(event, context):
            pass

        @blcks.script("listy")
        def process():
            return ["not", "outputs"]
        """,
    )
    with pytest.raises(ScriptError) as caught:
        call(handler.main)
    assert (caught.value.code, caught.value.msg) == (
        500,
        "listy: returned list, expected a dict of outputs",
    )


def test_action_selects_among_scripts(tmp_path: Path) -> None:
    handler = load_handler(
        tmp_path,
        """
        from blcks import blcks

        @blcks
        def main(event, context):
            pass

        @blcks.script("one")
        def one():
            return {"n": 1}

        @blcks.script("two")
        def two():
            return {"n": 2}
        """,
    )
    assert call(handler.main, action="two") == {"n": 2}
    with pytest.raises(ScriptError) as caught:
        call(handler.main, action="three")
    assert (caught.value.code, caught.value.msg) == (
        404,
        "no script named 'three' here (this handler serves: one, two)",
    )
    with pytest.raises(
        InputError, match="names no action and this handler serves several: one, two"
    ):
        call(handler.main)


def test_main_without_any_script_says_how_to_register(tmp_path: Path) -> None:
    # Its own process: a handler whose module registers nothing sees every registered script.
    (tmp_path / "lonely.py").write_text(
        "from blcks import blcks\n"
        "from blcks.testing import call\n"
        "main = blcks(lambda event, context: None)\n"
        "try:\n"
        "    call(main)\n"
        "except blcks.ScriptError as err:\n"
        "    print(err.code, err.msg)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(sdk.__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, str(tmp_path / "lonely.py")], capture_output=True, text=True, env=env
    )
    assert done.stdout == (
        "500 no script registered: decorate process with @blcks.script(FAAS_METHOD_NAME)\n"
    )


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ('{"action": ', "event is not valid JSON: Expecting value"),
        ("[1]", "event must be a JSON object, got list"),
        ({"body": "[1]"}, "body must be a JSON object, got list"),
        ({"body": 3}, "body must be a JSON object, got int"),
        ({"headers": "x"}, "event headers must be an object, got str"),
        ({"action": 5}, "event action must be a string, got int"),
    ],
)
def test_malformed_events_are_input_errors(greet: ModuleType, event: object, message: str) -> None:
    with pytest.raises(InputError) as caught:
        greet.main(event, None)
    assert caught.value.msg.startswith(message)


def test_sdk_exports() -> None:
    assert blcks.ServiceName is ServiceName is sdk.ServiceName
    assert blcks.InputError is InputError and blcks.ScriptError is ScriptError
    assert blcks.ServiceError is ServiceError
    assert issubclass(InputError, ScriptError)
    assert isinstance(blcks.logger, logging.Logger)


# --- services -------------------------------------------------------------------------------


def run_service(
    handler: ModuleType, service: str, method: str, params: dict[str, Any], **event: Any
) -> Any:
    inputs = {"service": service, "method": method, "params": params}
    return call(handler.main, inputs, **event)["answer"]


@pytest.mark.parametrize(
    ("service", "method", "params", "expected"),
    [
        (
            ServiceName.HostsManager,
            "getHosts",
            {"search": "tag:redis db"},
            ("GET", "/api/v1/hosts?search=tag%3Aredis%20db", None),
        ),
        (ServiceName.HostsManager, "getHosts", {}, ("GET", "/api/v1/hosts?search=", None)),
        (
            ServiceName.HostsManager,
            "getHost",
            {"id": "S-a/1"},
            ("GET", "/api/v1/hosts/S-a%2F1", None),
        ),
        (
            ServiceName.TagManager,
            "updateTags",
            {
                "tags": [
                    {"name": "redis", "tagged": False, "assets": [{"id": "h1", "type": "server"}]}
                ]
            },
            (
                "POST",
                "/api/v1/tags/update",
                [{"name": "redis", "tagged": False, "assets": [{"id": "h1", "type": "server"}]}],
            ),
        ),
        (ServiceName.TagManager, "getTags", {}, ("GET", "/api/v1/tags", None)),
        (
            ServiceName.ChannelManager,
            "sendMessage",
            {"channel_ids": ["c1", "c2"], "message": "3 hosts down"},
            (
                "POST",
                "/api/v1/channels/messages",
                {"channel_ids": ["c1", "c2"], "message": "3 hosts down"},
            ),
        ),
        (ServiceName.ChannelManager, "getChannels", {}, ("GET", "/api/v1/channels", None)),
        (ServiceName.RBACManager, "get_users_me", {}, ("GET", "/api/v1/users/me", None)),
    ],
)
def test_each_service_method_calls_its_endpoint(
    svc: ModuleType,
    marvin: FakeMarvin,
    service: ServiceName,
    method: str,
    params: dict[str, Any],
    expected: tuple[str, str, Any],
) -> None:
    answer = run_service(svc, service.value, method, params, token="tok-1", marvin_url=marvin.url)
    verb, path, body = expected
    assert answer == {"path": path, "data": []}
    assert marvin.seen == [Recorded(verb, path, "Bearer tok-1", body)]


def test_methods_are_plain_calls_too(marvin: FakeMarvin) -> None:
    hosts = blcks.createService(ServiceName.HostsManager, marvin_url=marvin.url + "/", token="t")
    host = {"id": "h1", "name": "db1", "ip": "10.0.0.1", "port": 6379, "tags": ["redis"]}
    marvin.answers["/api/v1/hosts?search=tag%3Aredis"] = (
        200,
        json.dumps({"data": [host]}).encode(),
    )
    assert hosts.getHosts(search="tag:redis") == {"data": [host]}
    assert marvin.seen[0].path == "/api/v1/hosts?search=tag%3Aredis"


def test_token_comes_from_the_authorization_header(svc: ModuleType, marvin: FakeMarvin) -> None:
    event = make_event(
        {"service": "RBACManager", "method": "get_users_me", "params": {}},
        marvin_url=marvin.url,
    )
    event["token"] = {"userId": "u1"}  # the platform sometimes sends token details, not a token
    event["headers"] = {"authorization": "Bearer from-header"}
    svc.main(event, None)
    event["headers"] = {"Authorization": "raw-token"}
    svc.main(event, None)
    assert [r.authorization for r in marvin.seen] == ["Bearer from-header", "Bearer raw-token"]


def test_url_and_token_fall_back_to_the_environment(
    svc: ModuleType, marvin: FakeMarvin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARVIN_URL", marvin.url)
    monkeypatch.setenv("MARVIN_TOKEN", "env-token")
    run_service(svc, "RBACManager", "get_users_me", {})
    blcks.createService(ServiceName.TagManager).getTags()  # outside any call
    assert [(r.path, r.authorization) for r in marvin.seen] == [
        ("/api/v1/users/me", "Bearer env-token"),
        ("/api/v1/tags", "Bearer env-token"),
    ]


def test_no_token_sends_no_authorization(marvin: FakeMarvin) -> None:
    blcks.createService("RBACManager", marvin_url=marvin.url).get_users_me()
    assert marvin.seen[0].authorization is None


def test_concurrent_calls_keep_their_own_token(tmp_path: Path, marvin: FakeMarvin) -> None:
    handler = load_handler(
        tmp_path,
        """
        import threading
        from blcks import blcks

        together = threading.Barrier(2, timeout=10)

        @blcks
        def main(event, context):
            pass

        @blcks.script("me")
        def process():
            together.wait()
            return blcks.createService(blcks.ServiceName.RBACManager).get_users_me()
        """,
    )
    threads = [
        threading.Thread(
            target=call, args=(handler.main,), kwargs={"token": t, "marvin_url": marvin.url}
        )
        for t in ("alice", "bob")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(r.authorization or "" for r in marvin.seen) == ["Bearer alice", "Bearer bob"]


def test_error_answer_raises_service_error_without_the_token(marvin: FakeMarvin) -> None:
    marvin.answers["/api/v1/hosts/h9"] = (404, b'{"code": 40401, "msg": "no host h9"}')
    hosts = blcks.createService(ServiceName.HostsManager, marvin_url=marvin.url, token="s3cret")
    with pytest.raises(ServiceError) as caught:
        hosts.getHost("h9")
    err = caught.value
    url = f"{marvin.url}/api/v1/hosts/h9"
    assert (err.status, err.code, err.msg, err.url, err.method) == (
        404,
        40401,
        "no host h9",
        url,
        "GET",
    )
    assert str(err) == f"GET {url} -> HTTP 404: no host h9 (code 40401)"


def test_error_answer_that_is_not_json(marvin: FakeMarvin) -> None:
    marvin.answers["/api/v1/tags"] = (502, b"upstream down")
    with pytest.raises(ServiceError) as caught:
        blcks.createService("TagManager", marvin_url=marvin.url).getTags()
    assert (caught.value.status, caught.value.code, caught.value.msg) == (502, 502, "upstream down")


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"<html>", "the answer is not JSON"), (b"[1, 2]", "expected a JSON object, got list")],
)
def test_success_answer_must_be_a_json_object(
    marvin: FakeMarvin, payload: bytes, message: str
) -> None:
    marvin.answers["/api/v1/tags"] = (200, payload)
    with pytest.raises(ServiceError) as caught:
        blcks.createService("TagManager", marvin_url=marvin.url).getTags()
    assert (caught.value.status, caught.value.code, caught.value.msg) == (200, 502, message)


def test_unreachable_marvin() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(ServiceError) as caught:
        blcks.createService("TagManager", marvin_url=url, token="s3cret").getTags()
    err = caught.value
    assert (err.status, err.code) == (0, 502)
    assert str(err).startswith(f"GET {url}/api/v1/tags: cannot reach Marvin: ")
    assert "s3cret" not in str(err)


def test_slow_marvin_times_out(marvin: FakeMarvin) -> None:
    marvin.held.add("/api/v1/users/me")
    service = blcks.createService(ServiceName.RBACManager, marvin_url=marvin.url, timeout=0.2)
    with pytest.raises(ServiceError) as caught:
        service.get_users_me()
    assert (caught.value.status, caught.value.code, caught.value.msg) == (
        0,
        504,
        "no answer within 0.2 s",
    )


def test_no_marvin_url_says_where_to_set_it() -> None:
    with pytest.raises(ServiceError) as caught:
        blcks.createService("TagManager").getTags()
    assert caught.value.code == 503
    assert str(caught.value) == (
        "no Marvin URL: the event context has no marvin_url and MARVIN_URL is unset"
    )


def test_call_dispatches_by_name_and_rejects_unknown_methods(marvin: FakeMarvin) -> None:
    tags = blcks.createService(ServiceName.TagManager, marvin_url=marvin.url)
    assert tags.call("getTags") == {"path": "/api/v1/tags", "data": []}
    with pytest.raises(ServiceError) as caught:
        tags.call("deleteEverything")
    assert (caught.value.code, str(caught.value)) == (
        404,
        "TagManager has no method 'deleteEverything' (methods: updateTags, getTags)",
    )
    for private in ("_get", "call", "methods"):
        with pytest.raises(ServiceError):
            tags.call(private)
    with pytest.raises(ServiceError) as caught:
        tags.call("updateTags", labels=[])
    assert caught.value.code == 400
    assert str(caught.value).startswith("TagManager.updateTags: ")
    assert len(marvin.seen) == 1


def test_unknown_service_name() -> None:
    with pytest.raises(ServiceError) as caught:
        blcks.createService("AssetManager")
    assert str(caught.value) == (
        "no service named 'AssetManager' "
        "(services: HostsManager, TagManager, ChannelManager, RBACManager)"
    )


def test_service_error_reaches_the_caller_through_main(svc: ModuleType, marvin: FakeMarvin) -> None:
    marvin.answers["/api/v1/users/me"] = (401, b'{"code": 401, "msg": "token expired"}')
    with pytest.raises(ServiceError, match="HTTP 401: token expired"):
        run_service(svc, "RBACManager", "get_users_me", {}, token="tok", marvin_url=marvin.url)


# --- the retry rule the services share with trek_tasks.http ------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_get_is_tried_again_when_marvin_is_busy(marvin: FakeMarvin, status: int) -> None:
    marvin.answers["/api/v1/tags"] = (status, b'{"code": 1, "msg": "busy"}')
    with pytest.raises(ServiceError) as caught:
        blcks.createService("TagManager", marvin_url=marvin.url).getTags()
    assert (caught.value.status, caught.value.msg) == (status, "busy")
    assert [r.method for r in marvin.seen] == ["GET"] * 3


def test_a_post_is_sent_once_and_other_errors_are_not_retried(marvin: FakeMarvin) -> None:
    marvin.answers["/api/v1/tags/update"] = (503, b'{"code": 503, "msg": "busy"}')
    marvin.answers["/api/v1/tags"] = (404, b'{"code": 404, "msg": "no"}')
    tags = blcks.createService("TagManager", marvin_url=marvin.url)
    for attempt in (lambda: tags.updateTags([]), tags.getTags):
        with pytest.raises(ServiceError):
            attempt()
    assert [r.method for r in marvin.seen] == ["POST", "GET"]


def test_nobody_listening_is_tried_again_then_one_error() -> None:
    from blcks import retry

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    started = time.monotonic()
    with pytest.raises(ServiceError, match="cannot reach Marvin"):
        blcks.createService("TagManager", marvin_url=url).getTags()
    assert time.monotonic() - started >= retry.pause(1) + retry.pause(2)


def test_trek_and_the_sdk_follow_one_rule() -> None:
    from blcks import retry
    from trek_tasks import http

    assert (http.IDEMPOTENT, http.RETRY_STATUSES, http.ATTEMPTS, http.BACKOFF) == (
        retry.IDEMPOTENT,
        retry.RETRY_STATUSES,
        retry.ATTEMPTS,
        retry.BACKOFF,
    )
    assert blcks.createService("TagManager").timeout == retry.READ_TIMEOUT

"""`python -m blcks.serve` driven as a real subprocess over real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from blcks.testing import make_event
from trek_tasks.runtimes import process

ROOT = Path(__file__).resolve().parents[1]
GUARD = 20.0  # seconds; only ever a guard against a hang, never an assertion
FORBIDDEN = ["yaml", "jinja2", "requests", "jsonschema", "doit", "trek_tasks"]

MULTI = f"""
import sys
from blcks import blcks

FAAS_METHOD_NAME = "multi"


@blcks
def main(event, context):
    pass


@blcks.script("greet")
def greet(name):
    return {{"greeting": "hello " + name}}


@blcks.script("reject")
def reject():
    raise blcks.ScriptError(422, "no host carries that tag")


@blcks.script("odd")
def odd():
    raise blcks.ScriptError(7, "odd failure")


@blcks.script("crash")
def crash():
    return {{"ratio": 1 / 0}}


@blcks.script("notdict")
def notdict():
    return [1, 2]


@blcks.script("modules")
def modules():
    return {{"loaded": [m for m in {FORBIDDEN!r} if m in sys.modules]}}
"""

SLOW = """
import os
import time
from blcks import blcks

FAAS_METHOD_NAME = "slow"


@blcks
def main(event, context):
    pass


@blcks.script(FAAS_METHOD_NAME)
def process(marker, release):
    open(marker, "w").close()
    while not os.path.exists(release):
        time.sleep(0.01)
    return {"released": True}
"""

PAIR = """
import threading
import time
from blcks import blcks

FAAS_METHOD_NAME = "pair"
both_inside = threading.Barrier(2, timeout=10)


@blcks
def main(event, context):
    pass


@blcks.script(FAAS_METHOD_NAME)
def process():
    start = time.monotonic()
    both_inside.wait()  # a server running calls one at a time never gets past this
    time.sleep(0.3)
    return {"start": start, "end": time.monotonic()}
"""


class Served(NamedTuple):
    proc: subprocess.Popen[str]
    port: int
    log: Path
    ready: str


def write_script(folder: Path, source: str, files: dict[str, str] | None = None) -> Path:
    (folder / "handler").mkdir(parents=True)
    (folder / "handler" / "__init__.py").write_text("")
    (folder / "handler" / "handler.py").write_text(textwrap.dedent(source))
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLCKS_", "SHOW_DEBUG"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**env, **extra}


def launch(
    folder: Path, port: int, *options: str, **env: str
) -> tuple[subprocess.Popen[str], str, Path]:
    """Start a server; the process, its ready line ("" if it exited) and its log file."""
    log = folder / "serve.log"
    argv = ["--script-dir", str(folder), "--port", str(port), *options]
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "blcks.serve", *argv],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=serve_env(**env),
        )
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(GUARD):
            stop(proc)
            pytest.fail(f"no ready line; log:\n{log.read_text()}")
    return proc, proc.stdout.readline(), log


def spawn(folder: Path, *options: str, **env: str) -> Served:
    """Start a server on a port it picks and wait until it is ready."""
    proc, ready, log = launch(folder, 0, *options, **env)
    if not ready:
        stop(proc)
        pytest.fail(f"server died; log:\n{log.read_text()}")
    return Served(proc, int(ready.rsplit(":", 1)[1]), log, ready)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
    proc.wait(GUARD)
    if proc.stdout:
        proc.stdout.close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    running: list[Served] = []

    def start_script(source: str, files: dict[str, str] | None = None, **env: str) -> Served:
        folder = write_script(tmp_path / f"s{len(running)}", source, files)
        served = spawn(folder, **env)
        running.append(served)
        return served

    yield start_script
    for served in running:
        stop(served.proc)


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = write_script(tmp_path_factory.mktemp("multi"), MULTI)
    served = spawn(folder)
    yield served
    stop(served.proc)


def request(
    port: int, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=GUARD)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def post(port: int, event: object, path: str = "/") -> tuple[int, dict[str, Any]]:
    return request(port, "POST", path, json.dumps(event).encode())


def test_ready_line_names_script_and_address(multi: Served) -> None:
    assert re.fullmatch(r"blcks multi listening on http://127\.0\.0\.1:[1-9][0-9]*\n", multi.ready)


def test_listens_on_the_port_asked_for(tmp_path: Path) -> None:
    folder = write_script(tmp_path / "fixed", MULTI)
    for _ in range(5):  # another process may take the free port before the server does
        port = free_port()
        proc, ready, _ = launch(folder, port)
        try:
            if ready or proc.wait(GUARD) != 4:
                break
        finally:
            stop(proc)
    assert ready == f"blcks multi listening on http://127.0.0.1:{port}\n"


def test_post_event_returns_outputs(multi: Served) -> None:
    event = make_event({"name": "Ada"}, action="greet", token="tok")
    assert post(multi.port, event) == (200, {"greeting": "hello Ada"})


def test_openfaas_function_path(multi: Served) -> None:
    event = make_event({"name": "Bo"}, action="greet")
    assert post(multi.port, event, "/function/multi") == (200, {"greeting": "hello Bo"})


def test_keep_alive_serves_several_calls_on_one_connection(multi: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", multi.port, timeout=GUARD)
    try:
        answers = []
        sockets = []
        for name in ("a", "b", "c"):
            conn.request("POST", "/", body=json.dumps(make_event({"name": name}, action="greet")))
            response = conn.getresponse()
            answers.append(json.loads(response.read()))
            assert response.getheader("Connection") is None
            sockets.append(conn.sock)
    finally:
        conn.close()
    assert answers == [{"greeting": f"hello {n}"} for n in "abc"]
    assert sockets[0] is not None and sockets[0] is sockets[1] is sockets[2]


def test_wrong_inputs_answer_400_naming_them(multi: Served) -> None:
    status, answer = post(multi.port, make_event({"nam": "Ada"}, action="greet"))
    assert status == 400
    assert answer == {
        "code": 400,
        "msg": "greet: unknown input(s) nam (did you mean name?); "
        "missing required input(s) name (process takes: name)",
    }


def test_script_error_code_becomes_the_status(multi: Served) -> None:
    assert post(multi.port, make_event({}, action="reject")) == (
        422,
        {"code": 422, "msg": "no host carries that tag"},
    )


def test_script_error_code_outside_4xx_5xx_answers_500(multi: Served) -> None:
    assert post(multi.port, make_event({}, action="odd")) == (
        500,
        {"code": 7, "msg": "odd failure"},
    )


def test_exception_answers_500_and_logs_the_traceback(multi: Served) -> None:
    status, answer = post(multi.port, make_event({}, action="crash", task_id="t-crash"))
    assert (status, answer) == (500, {"code": 500, "msg": "ZeroDivisionError: division by zero"})
    records = [json.loads(line) for line in multi.log.read_text().splitlines()]
    failed = [r for r in records if r["message"] == "multi failed"]
    assert len(failed) == 1
    assert failed[0]["level"] == "ERROR"
    assert failed[0]["task_id"] == "t-crash"
    assert failed[0]["traceback"].startswith("Traceback (most recent call last):")
    assert failed[0]["traceback"].endswith("ZeroDivisionError: division by zero")


def test_non_dict_outputs_answer_500(multi: Served) -> None:
    assert post(multi.port, make_event({}, action="notdict")) == (
        500,
        {"code": 500, "msg": "notdict: returned list, expected a dict of outputs"},
    )


def test_unknown_action_answers_404(multi: Served) -> None:
    status, answer = post(multi.port, make_event({}, action="nosuch"))
    assert status == 404
    assert answer["msg"] == (
        "no script named 'nosuch' here (this handler serves: crash, greet, modules, notdict, odd,"
        " reject)"
    )


def test_malformed_json_answers_400(multi: Served) -> None:
    status, answer = request(multi.port, "POST", "/", b'{"action": ')
    assert status == 400
    assert answer["code"] == 400
    assert answer["msg"].startswith("the request body is not JSON: Expecting value")


def test_event_that_is_not_an_object_answers_400(multi: Served) -> None:
    assert request(multi.port, "POST", "/", b"[1, 2]") == (
        400,
        {"code": 400, "msg": "event must be a JSON object, got list"},
    )


def test_healthz(multi: Served) -> None:
    status, health = request(multi.port, "GET", "/healthz")
    socket_inode = health.pop("socket")
    assert (status, health) == (
        200,
        {"status": "ok", "script": "multi", "pid": multi.proc.pid, "token": "", "restarts": 0},
    )
    # the listening socket it names is the one the kernel lists on its port
    assert process.listening_sockets(multi.port) == {f"socket:[{socket_inode}]"}


def test_unknown_routes_answer_404(multi: Served) -> None:
    assert request(multi.port, "GET", "/nope") == (404, {"code": 404, "msg": "no route GET /nope"})
    status, answer = request(multi.port, "POST", "/nope", b"{}")
    assert status == 404
    assert answer["msg"] == "no route POST /nope (POST / or /function/<name>)"


def test_server_loads_no_heavy_module(multi: Served) -> None:
    assert post(multi.port, make_event({}, action="modules")) == (200, {"loaded": []})


def test_calls_run_concurrently(start: Callable[..., Served]) -> None:
    served = start(PAIR)
    answers: list[tuple[int, dict[str, Any]]] = []

    def call() -> None:
        answers.append(post(served.port, make_event({})))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)
    assert [status for status, _ in answers] == [200, 200]
    first, second = (answer for _, answer in answers)
    assert first["start"] < second["end"] and second["start"] < first["end"]


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + GUARD
    while not path.exists():
        assert proc.poll() is None, "server exited early"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def wait_for_log(served: Served, message: str) -> None:
    deadline = time.monotonic() + GUARD
    while message not in served.log.read_text():
        assert served.proc.poll() is None, "server exited early"
        assert time.monotonic() < deadline, f"{message!r} never logged"
        time.sleep(0.01)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_lets_the_call_in_flight_finish_then_exits_0(
    start: Callable[..., Served], tmp_path: Path, signum: signal.Signals
) -> None:
    served = start(SLOW)
    marker, release = tmp_path / "inside", tmp_path / "release"
    answers: list[tuple[int, dict[str, Any]]] = []
    inputs = {"marker": str(marker), "release": str(release)}
    caller = threading.Thread(target=lambda: answers.append(post(served.port, make_event(inputs))))
    caller.start()
    wait_for(marker, served.proc)
    served.proc.send_signal(signum)
    wait_for_log(served, "stopping, 1 call(s) in flight")
    release.touch()
    caller.join(GUARD)
    assert answers == [(200, {"released": True})]
    assert served.proc.wait(GUARD) == 0
    records = [json.loads(line) for line in served.log.read_text().splitlines()]
    assert [(r["message"], r["script"]) for r in records[-2:]] == [
        ("stopping, 1 call(s) in flight", "slow"),
        ("stopped", "slow"),
    ]


def test_a_call_whose_caller_hung_up_is_not_waited_for_on_sigterm(
    start: Callable[..., Served], tmp_path: Path
) -> None:
    served = start(SLOW)
    marker = tmp_path / "inside"
    inputs = {"marker": str(marker), "release": str(tmp_path / "never")}
    body = json.dumps(make_event(inputs)).encode()
    with socket.create_connection(("127.0.0.1", served.port)) as caller:
        caller.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wait_for(marker, served.proc)
    served.proc.send_signal(signal.SIGTERM)  # the call never ends; nobody waits for it
    assert served.proc.wait(GUARD) == 0
    records = [json.loads(line) for line in served.log.read_text().splitlines()]
    assert [r["message"] for r in records[-2:]] == ["stopping, 1 call(s) in flight", "stopped"]


VERSIONED = """
from blcks import blcks
from handler import helpers

FAAS_METHOD_NAME = "versioned"


@blcks
def main(event, context):
    pass


@blcks.script(FAAS_METHOD_NAME)
def process():
    return {"version": helpers.VERSION}
"""


def test_sighup_reexecutes_in_the_same_process_with_the_edited_handler(
    start: Callable[..., Served], tmp_path: Path
) -> None:
    served = start(VERSIONED, files={"handler/helpers.py": "VERSION = 1\n"}, TREK_PROCESS_TOKEN="t")
    assert post(served.port, make_event({})) == (200, {"version": 1})
    (tmp_path / "s0" / "handler" / "helpers.py").write_text("VERSION = 2\n")
    served.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + GUARD
    health: dict[str, Any] = {}
    while health.get("restarts") != 1:
        assert served.proc.poll() is None, served.log.read_text()
        assert time.monotonic() < deadline, "never restarted"
        try:
            health = request(served.port, "GET", "/healthz")[1]
        except (OSError, http.client.HTTPException):  # the old server going, the new coming
            time.sleep(0.01)
    assert (health["pid"], health["token"]) == (served.proc.pid, "t")  # same process
    assert post(served.port, make_event({})) == (200, {"version": 2})
    messages = [json.loads(line)["message"] for line in served.log.read_text().splitlines()]
    assert "restarting" in messages and "stopped" not in messages


def run_serve(folder: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blcks.serve", "--script-dir", str(folder), "--port", str(port)],
        capture_output=True,
        text=True,
        env=serve_env(),
        timeout=GUARD,
    )


def test_import_failure_exits_3_with_the_reason(tmp_path: Path) -> None:
    folder = write_script(tmp_path / "broken", "import no_such_module_xyz\n")
    done = run_serve(folder, free_port())
    assert done.returncode == 3
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0] == (
        f"blcks.serve: cannot import handler from {folder}: "
        "ModuleNotFoundError: No module named 'no_such_module_xyz'"
    )
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ModuleNotFoundError: No module named 'no_such_module_xyz'"


def test_handler_without_main_exits_3(tmp_path: Path) -> None:
    folder = write_script(tmp_path / "nomain", "FAAS_METHOD_NAME = 'nomain'\n")
    done = run_serve(folder, free_port())
    assert done.returncode == 3
    assert done.stderr.splitlines()[0] == (
        f"blcks.serve: cannot import handler from {folder}: "
        "AttributeError: handler/handler.py defines no main(event, context)"
    )


def test_port_in_use_exits_4(tmp_path: Path) -> None:
    folder = write_script(tmp_path / "s", MULTI)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_serve(folder, port)
    assert done.returncode == 4
    assert done.stderr == f"blcks.serve: port {port} on 127.0.0.1 is already in use\n"
    assert done.stdout == ""


def test_idle_keep_alive_connection_does_not_hold_up_shutdown(
    start: Callable[..., Served], tmp_path: Path
) -> None:
    served = start(SLOW)
    release = tmp_path / "release"
    release.touch()
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=GUARD)
    try:
        inputs = {"marker": str(tmp_path / "m"), "release": str(release)}
        conn.request("POST", "/", body=json.dumps(make_event(inputs)))
        assert json.loads(conn.getresponse().read()) == {"released": True}
        served.proc.terminate()
        assert served.proc.wait(GUARD) == 0
    finally:
        conn.close()


def test_call_after_the_signal_is_refused_on_an_open_connection(
    start: Callable[..., Served], tmp_path: Path
) -> None:
    served = start(SLOW)
    marker, release = tmp_path / "inside", tmp_path / "release"
    inputs = {"marker": str(marker), "release": str(release)}
    answers: list[tuple[int, dict[str, Any]]] = []
    caller = threading.Thread(target=lambda: answers.append(post(served.port, make_event(inputs))))
    late = http.client.HTTPConnection("127.0.0.1", served.port, timeout=GUARD)
    try:
        late.request("GET", "/healthz")  # opens the connection before the signal
        assert late.getresponse().read()
        caller.start()
        wait_for(marker, served.proc)
        served.proc.terminate()
        wait_for_log(served, "stopping, 1 call(s) in flight")
        late.request("POST", "/", body=json.dumps(make_event(inputs)))
        response = late.getresponse()
        status, answer = response.status, json.loads(response.read())
        connection = response.getheader("Connection")
    finally:
        late.close()
        release.touch()
        caller.join(GUARD)
    assert (status, answer, connection) == (
        503,
        {"code": 503, "msg": "the server is shutting down"},
        "close",
    )
    assert answers == [(200, {"released": True})]
    assert served.proc.wait(GUARD) == 0


def test_missing_handler_file_exits_3(tmp_path: Path) -> None:
    done = run_serve(tmp_path / "nowhere", free_port())
    assert done.returncode == 3
    assert done.stderr.splitlines()[0] == (
        f"blcks.serve: cannot import handler from {tmp_path / 'nowhere'}: "
        f"FileNotFoundError: {tmp_path / 'nowhere' / 'handler' / 'handler.py'} does not exist"
    )


def test_handler_imports_its_sibling_modules_as_a_package(start: Callable[..., Served]) -> None:
    served = start(
        """
        from blcks import blcks
        from handler import helpers
        from . import helpers as same

        FAAS_METHOD_NAME = "siblings"


        @blcks
        def main(event, context):
            pass


        @blcks.script(FAAS_METHOD_NAME)
        def process():
            return {"double": helpers.double(2), "same": same is helpers}
        """,
        files={"handler/helpers.py": "def double(n):\n    return 2 * n\n"},
    )
    assert post(served.port, make_event({})) == (200, {"double": 4, "same": True})


def test_handler_folder_needs_no_init_file(tmp_path: Path) -> None:
    folder = write_script(tmp_path / "ns", MULTI)
    (folder / "handler" / "__init__.py").unlink()
    served = spawn(folder)
    try:
        assert post(served.port, make_event({"name": "Cy"}, action="greet")) == (
            200,
            {"greeting": "hello Cy"},
        )
    finally:
        stop(served.proc)


def test_undecorated_main_answers_500_with_the_fix(start: Callable[..., Served]) -> None:
    served = start(
        """
        FAAS_METHOD_NAME = "bare"


        def main(event, context):
            pass
        """
    )
    assert post(served.port, make_event({})) == (
        500,
        {
            "code": 500,
            "msg": "TypeError: main returned NoneType, expected the outputs dict: "
            "decorate main with @blcks",
        },
    )


# --- bounded resources: request bodies, idle connections ------------------------------


def process_status(pid: int, field: str) -> int:
    """A number from /proc/<pid>/status (VmRSS in kB, Threads)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def raw_answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Read one HTTP answer from ``sock``: its status and JSON body."""
    reader = sock.makefile("rb")
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline().strip()) != b"":
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return status, json.loads(reader.read(length))


def log_records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


TOO_LARGE = (413, {"code": 413, "msg": "the request body is larger than 64 MiB"})


def test_a_huge_content_length_answers_413_without_reading_it(multi: Served) -> None:
    with socket.create_connection(("127.0.0.1", multi.port), timeout=GUARD) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
        assert raw_answer(sock) == TOO_LARGE
    assert post(multi.port, make_event({"name": "Al"}, action="greet")) == (
        200,
        {"greeting": "hello Al"},
    )
    refused = [r for r in log_records(multi.log) if "refused a request body" in r["message"]]
    assert [r["message"].split(" ", 1)[1] for r in refused] == [
        "refused a request body of 99999999999 bytes (over the 64 MiB limit)"
    ]
    assert "MemoryError" not in multi.log.read_text()


def test_a_300_mb_post_answers_413_and_the_process_does_not_grow(multi: Served) -> None:
    before = process_status(multi.proc.pid, "VmRSS")
    size = 300 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", multi.port), timeout=GUARD) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())

        def send_body() -> None:
            block = b"\0" * (1024 * 1024)
            try:
                for _ in range(300):
                    sock.sendall(block)
            except OSError:
                pass  # the server closed after its answer: fine

        sender = threading.Thread(target=send_body)
        sender.start()
        answer = raw_answer(sock)
        sender.join(GUARD)
    assert answer == TOO_LARGE
    assert process_status(multi.proc.pid, "VmRSS") - before < 20 * 1024  # kB
    assert post(multi.port, make_event({"name": "Bo"}, action="greet"))[0] == 200


def test_idle_connections_are_closed_and_free_their_threads(tmp_path: Path) -> None:
    served = spawn(write_script(tmp_path / "s", MULTI), "--idle-timeout", "0.5")
    try:
        threads = process_status(served.proc.pid, "Threads")
        event = json.dumps(make_event({"name": "Cy"}, action="greet"))
        idle = []
        for _ in range(10):
            conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=GUARD)
            conn.request("POST", "/", body=event)
            assert conn.getresponse().read() == b'{"greeting": "hello Cy"}'
            idle.append(conn)
        assert process_status(served.proc.pid, "Threads") == threads + 10
        active = http.client.HTTPConnection("127.0.0.1", served.port, timeout=GUARD)
        for _ in range(8):  # one call every 0.2 s: kept alive on the same connection
            active.request("POST", "/", body=event)
            assert active.getresponse().read() == b'{"greeting": "hello Cy"}'
            time.sleep(0.2)
        assert process_status(served.proc.pid, "Threads") == threads + 1
        for conn in idle:
            assert conn.sock is not None and conn.sock.recv(1) == b""  # closed by the server
            conn.close()
        active.close()
        assert "Request timed out" not in served.log.read_text()
    finally:
        stop(served.proc)


def test_a_client_resetting_its_connection_leaves_no_traceback(tmp_path: Path) -> None:
    served = spawn(write_script(tmp_path / "s", MULTI))
    try:
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=GUARD)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset, while the server waits for the next request
        assert request(served.port, "GET", "/healthz")[0] == 200
    finally:
        stop(served.proc)
    assert "Traceback" not in served.log.read_text()

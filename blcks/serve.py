"""`python -m blcks.serve --script-dir DIR --port N`: serve one script over HTTP.

The wire shape of an OpenFaaS function: POST the event JSON, get 200 with the outputs or
an error status with `{code, msg}`. One thread per connection, HTTP/1.1 keep-alive; a
connection idle for `--idle-timeout` seconds is closed, a body over 64 MiB answered 413.
SIGTERM/SIGINT stop accepting, let in-flight calls finish, then exit 0; a call whose
caller has hung up (an interrupted `trek run`) is not waited for: no one reads its answer.
SIGHUP does the same, then re-executes the server in the same process (same pid, a
container's pid 1 included), importing the handler afresh: a live update's restart.
`/healthz` answers how many times it restarted so (`restarts`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from blcks import blcks, exits
from blcks.context import CallContext, bound
from blcks.errors import InputError, ScriptError

MAX_BODY = 64 * 1024 * 1024  # bytes a request body may hold (as the local Marvin's)
IDLE_TIMEOUT = 60.0  # seconds a kept-alive connection may wait for its next request
DISCARD_SECONDS = 5.0  # how long a refused body is read and dropped, so the sender sees 413
DRAIN_POLL = 0.02  # seconds between looks, while stopping, for callers that hung up
# An idle server sleeps: ``stop`` wakes its loop by connecting to it. Polling 50 times a
# second cost each idle script 0.4 % of a core (40 % for a project of 100 scripts).
IDLE_POLL = 30.0
RESTARTS_VAR = "BLCKS_SERVE_RESTARTS"  # how many SIGHUP re-executions led to this process


class Script(NamedTuple):
    name: str
    main: Callable[..., Any]

    @classmethod
    def load(cls, script_dir: str, kind: str = "blcks") -> Script:
        """Import `handler.handler` from `script_dir`, which must define main(event, context);
        a script of another kind is run by that kind's runner (`ToolScript`)."""
        folder = os.path.abspath(script_dir)
        if kind != "blcks":
            return cls(os.path.basename(folder), ToolScript(folder, kind))
        source = os.path.join(folder, "handler", "handler.py")
        if not os.path.isfile(source):
            raise FileNotFoundError(f"{source} does not exist")
        sys.path.insert(0, folder)
        module = importlib.import_module("handler.handler")
        main = getattr(module, "main", None)
        if not callable(main):
            raise AttributeError("handler/handler.py defines no main(event, context)")
        return cls(str(getattr(module, "FAAS_METHOD_NAME", "") or os.path.basename(folder)), main)

    def invoke(self, body: bytes, context: dict[str, Any]) -> tuple[int, bytes]:
        """Run main on a request body; the HTTP status and the JSON answer."""
        try:
            event = json.loads(body)
        except ValueError as err:
            return 400, _error(400, f"the request body is not JSON: {err}")
        task_id = str(event.get("taskId") or "") if isinstance(event, dict) else ""
        with bound(CallContext(script=self.name, task_id=task_id)):
            try:
                outputs = self.main(event, context)
                if not isinstance(outputs, dict):
                    raise TypeError(
                        f"main returned {type(outputs).__name__}, expected the outputs dict: "
                        "decorate main with @blcks"
                    )
                return 200, _json(outputs)
            except InputError as err:
                return 400, _error(err.code, err.msg)
            except ScriptError as err:
                return (err.code if 400 <= err.code <= 599 else 500), _error(err.code, err.msg)
            except Exception as err:
                blcks.logger.error("%s failed", self.name, exc_info=True)
                return 500, _error(500, f"{type(err).__name__}: {err}")


class ToolScript:
    """main(event, context) of a shell, ansible or terraform script: its kind's runner
    (`blcks.tools`) runs it within the call's action_timeout."""

    def __init__(self, folder: str, kind: str) -> None:
        from blcks.tools import load_runner

        self.folder = folder
        self.script_id = os.path.basename(folder)
        self.runner = load_runner(kind)

    def __call__(self, event: Any, context: dict[str, Any]) -> dict[str, Any]:
        from blcks.tools import event_timeout

        if not isinstance(event, dict):
            raise InputError(f"the event must be a JSON object, not {type(event).__name__}")
        return self.runner.run(self.folder, self.script_id, event, event_timeout(event))


class Server(ThreadingHTTPServer):
    """Counts calls in flight so a shutdown can wait for them."""

    allow_reuse_port = False  # a second server on the same port must fail, not share it
    # Exiting joins no connection thread: ``drain`` has waited for the calls worth waiting for.
    daemon_threads = True

    def __init__(
        self,
        host: str,
        port: int,
        script: Script,
        token: str = "",
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.script = script
        self.token = token  # the identity token /healthz answers with (TREK_PROCESS_TOKEN)
        self.idle_timeout = idle_timeout
        self.stopping = False
        self._calls = threading.Condition()
        self._in_flight: set[socket.socket] = set()  # the connections of the calls under way
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-request (a reset, a broken pipe) is no error of ours;
        # anything else keeps socketserver's traceback on stderr.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # HTTPServer's own version calls socket.getfqdn(host): a DNS lookup at every start.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])
        # The listening socket's inode: while this process holds it, it listens here.
        self.socket_inode = os.fstat(self.socket.fileno()).st_ino

    def begin_call(self, connection: socket.socket) -> bool:
        with self._calls:
            if self.stopping:
                return False
            self._in_flight.add(connection)
            return True

    def end_call(self, connection: socket.socket) -> None:
        with self._calls:
            self._in_flight.discard(connection)
            self._calls.notify_all()

    def stop(self) -> None:
        """Refuse new calls and end serve_forever (from a thread other than its own)."""
        with self._calls:
            self.stopping = True
            in_flight = len(self._in_flight)
        with bound(CallContext(script=self.script.name)):
            blcks.logger.info("stopping, %d call(s) in flight", in_flight)
        stopped = threading.Event()
        threading.Thread(target=self._wake, args=(stopped,), daemon=True).start()
        self.shutdown()
        stopped.set()

    def _wake(self, stopped: threading.Event) -> None:
        """Connect to this server until its loop has seen the stop (it sleeps in select)."""
        while not stopped.is_set():
            with contextlib.suppress(OSError):
                socket.create_connection((self.server_name, self.server_port), 1.0).close()
            stopped.wait(0.05)

    def drain(self) -> None:
        """Wait until every call in flight has answered or its caller has hung up."""
        with self._calls:
            while not self._calls.wait_for(lambda: not self._in_flight, DRAIN_POLL):
                if all(_hung_up(connection) for connection in self._in_flight):
                    return


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # otherwise delayed ACKs cost ~40 ms per keep-alive call
    server_version = "blcks"
    server: Server

    def setup(self) -> None:
        super().setup()
        # A kept-alive connection with no next request (or a body that stops coming) times
        # out; handle_one_request then closes it, and its thread ends.
        self.connection.settimeout(self.server.idle_timeout)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            health = {
                "status": "ok",
                "script": self.server.script.name,
                "pid": os.getpid(),
                "token": self.server.token,
                "restarts": restarts(),
                "socket": self.server.socket_inode,  # trek asks the kernel if it holds it
            }
            self._reply(200, _json(health))
        else:
            self._reply(404, _error(404, f"no route GET {path}"))

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        length = self.headers.get("Content-Length")
        if length is None or not (length.strip().isascii() and length.strip().isdigit()):
            self._reply(411, _error(411, "a Content-Length header is required"), close=True)
            return
        declared = length.strip()
        if len(declared) > 18 or int(declared) > MAX_BODY:
            self._refuse_body(declared)
            return
        body = self.rfile.read(int(declared))
        if not _is_call(path):
            self._reply(404, _error(404, f"no route POST {path} (POST / or /function/<name>)"))
        elif not self.server.begin_call(self.connection):
            self._reply(503, _error(503, "the server is shutting down"), close=True)
        else:
            try:
                context = {"path": self.path, "headers": dict(self.headers)}
                self._reply(*self.server.script.invoke(body, context))
            finally:
                # After the reply: a shutdown waits for it to be sent.
                self.server.end_call(self.connection)

    def _refuse_body(self, declared: str) -> None:
        """413 without reading the body into memory; then read and drop what the client
        still sends for a few seconds (so it gets to read the answer, not a reset)."""
        limit = f"{MAX_BODY // 2**20} MiB"
        shown = declared if len(declared) <= 20 else declared[:20] + "..."
        blcks.logger.warning(
            "%s refused a request body of %s bytes (over the %s limit)",
            self.address_string(),
            shown,
            limit,
        )
        self._reply(413, _error(413, f"the request body is larger than {limit}"), close=True)
        left = int(declared) if len(declared) <= 18 else MAX_BODY
        deadline = time.monotonic() + DISCARD_SECONDS
        try:
            while left > 0 and (remaining := deadline - time.monotonic()) > 0:
                self.connection.settimeout(remaining)
                dropped = self.rfile.read1(min(left, 64 * 1024))
                if not dropped:
                    break
                left -= len(dropped)
        except OSError:
            pass  # the client stopped sending or went away: either is fine

    def _reply(self, status: int, body: bytes, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        blcks.logger.debug("%s %s", self.address_string(), format % args)

    def log_error(self, format: str, *args: Any) -> None:
        if args and isinstance(args[0], TimeoutError):  # an idle connection we close
            blcks.logger.debug("%s closing an idle connection", self.address_string())
            return
        blcks.logger.warning("%s %s", self.address_string(), format % args)


def main(
    argv: Sequence[str] | None = None, on_listening: Callable[[int], None] | None = None
) -> int:
    """Serve until stopped; ``on_listening`` is called with the listening socket's inode
    once the port accepts calls (the fork server's child tells its parent so)."""
    parser = argparse.ArgumentParser(prog="python -m blcks.serve", description=__doc__)
    parser.add_argument("--script-dir", required=True, help="the script folder holding handler/")
    parser.add_argument("--port", required=True, type=int, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT,
        help=f"seconds before an idle kept-alive connection is closed (default {IDLE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--kind", default="blcks", help="the script's kind: blcks, shell, ansible, terraform"
    )
    args = parser.parse_args(argv)

    try:
        script = Script.load(args.script_dir, args.kind)
    except (Exception, SystemExit) as err:
        print(
            f"blcks.serve: cannot import handler from {args.script_dir}: "
            f"{type(err).__name__}: {err}",
            file=sys.stderr,
        )
        traceback.print_exc()
        return exits.IMPORT_FAILED

    try:
        token = os.environ.get("TREK_PROCESS_TOKEN", "")
        server = Server(args.host, args.port, script, token, args.idle_timeout)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            problem = f"port {args.port} on {args.host} is already in use"
        else:
            problem = f"cannot listen on {args.host}:{args.port}: {err}"
        print(f"blcks.serve: {problem}", file=sys.stderr)
        return exits.CANNOT_LISTEN

    reexec: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            reexec.append(signum)
        # shutdown() waits for serve_forever, which runs in this (the main) thread.
        threading.Thread(target=server.stop, daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"{args.kind} {script.name} listening on http://{shown}:{server.server_port}", flush=True)
    if on_listening is not None:
        on_listening(server.socket_inode)
    with bound(CallContext(script=script.name)):
        try:
            server.serve_forever(poll_interval=IDLE_POLL)  # ``stop`` wakes it at once
            server.drain()
        finally:
            server.server_close()
        blcks.logger.info("restarting" if reexec else "stopped")
    if reexec:
        os.environ[RESTARTS_VAR] = str(restarts() + 1)
        sys.stdout.flush()
        sys.stderr.flush()
        again = [*(sys.argv[1:] if argv is None else argv), "--port", str(server.server_port)]
        os.execv(sys.executable, [sys.executable, "-m", "blcks.serve", *again])  # the last --port
    return 0


def restarts() -> int:
    """How many SIGHUP re-executions this server has been through."""
    value = os.environ.get(RESTARTS_VAR, "")
    return int(value) if value.isdigit() else 0


def _hung_up(connection: socket.socket) -> bool:
    """Whether the peer of ``connection`` has closed it (read side at end of stream)."""
    try:
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _is_call(path: str) -> bool:
    return path == "/" or (path.startswith("/function/") and len(path) > len("/function/"))


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _error(code: int, msg: str) -> bytes:
    return _json({"code": code, "msg": msg})


if __name__ == "__main__":
    sys.exit(main())

"""`python -m blcks.forkserver --port N [--preload DIST ...]`: a warm parent for scripts.

One runs per project and script environment. It imports the SDK and the packages the
environment installs (`--preload`, distribution names from the requirements), then forks
a child for each `POST /fork`: the child takes its own session, identity, log, folder and
variables, re-makes the SDK's logger from them, imports only the handler and serves it
(`blcks.serve`). A restart so costs a fork and the handler's own import, not a new
interpreter importing its packages.

Fork caveats, and how they are kept:
- The server is single-threaded (a plain HTTPServer) and forks from its only thread.
- A package that starts a thread or opens a socket while it is imported cannot be shared
  by fork: such a package is not kept. The server re-executes itself (same pid) without it
  (`--skip`), so each child imports it afresh; `/healthz` names it under `skipped`.
  A package that fails to import is likewise left to the children (they fail as they would).
- Handlers are imported in the child, after the fork: a handler may start threads.
- A child's identity (token and role) is written over the server's in the child's own
  environment block, so `/proc/<pid>/environ` names the child exactly (`claim_identity`).
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import importlib.metadata
import json
import os
import re
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, NamedTuple

from blcks import exits

TOKEN_VAR = "TREK_PROCESS_TOKEN"
ROLE_VAR = "TREK_PROCESS_ROLE"
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
READY_TIMEOUT = 20.0  # seconds a child may take to import its handler and listen
# The SDK, and what its first call imports (``inspect``: the SDK imports it when it calls
# ``process``), so a child's first call copies no freshly imported module into its pages.
SDK_MODULES = ("blcks", "blcks.serve", "blcks.sdk", "blcks.services", "blcks.event", "inspect")
# A requirement line's distribution name (PEP 508: the name before extras, versions, markers).
REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def distribution_name(requirement: str) -> str | None:
    """The distribution a requirement line names (``name @ url`` included); None for
    options, bare URLs and paths."""
    match = REQUIREMENT_NAME.match(requirement)
    if requirement.lstrip().startswith("-") or match is None:
        return None
    return None if requirement[match.end() :].startswith(("+", ":", "/")) else match.group(1)


def top_level_modules(distributions: Sequence[str]) -> list[str]:
    """The importable top-level modules of the installed ``distributions``, in order."""
    wanted = {_normal(name) for name in distributions}
    found = []
    for module, owners in sorted(importlib.metadata.packages_distributions().items()):
        if module.startswith("_") or module.endswith("-stubs"):
            continue
        if any(_normal(owner) in wanted for owner in owners):
            found.append(module)
    return found


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def thread_count() -> int:
    """Threads of this process as the kernel counts them (C threads included)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return threading.active_count()


def open_sockets() -> set[str]:
    """The sockets this process holds open (as ``socket:[inode]``)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


class Preloaded(NamedTuple):
    kept: list[str]  # imported, shared with every child
    skipped: dict[str, str]  # module -> why each child imports it instead
    unsafe: str | None  # the module that made this process unfit to fork, if one did


def preload(modules: Sequence[str]) -> Preloaded:
    """Import ``modules`` in turn, stopping at the first that starts a thread or opens a
    socket: this process can then no longer fork safely (the caller re-executes without it)."""
    kept: list[str] = []
    skipped: dict[str, str] = {}
    for module in modules:
        threads, sockets = thread_count(), open_sockets()
        try:
            importlib.import_module(module)
        except BaseException as err:  # noqa: BLE001 - a package may even raise SystemExit
            skipped[module] = f"does not import: {type(err).__name__}: {err}"[:300]
            continue
        if thread_count() > threads:
            skipped[module] = "starts a thread when imported"
        elif open_sockets() - sockets:
            skipped[module] = "opens a socket when imported"
        else:
            kept.append(module)
            continue
        return Preloaded(kept, skipped, module)
    return Preloaded(kept, skipped, None)


def claim_identity(token: str, role: str) -> bool:
    """Write ``token`` and ``role`` over this process's own environment block, which a
    forked child shares byte for byte with its parent until now, so ``/proc/<pid>/environ``
    names the child. The values must fit the parent's (the parent's role is padded with
    spaces); False when they do not, or the block cannot be written."""
    try:
        with open("/proc/self/environ", "rb") as block:
            raw = block.read()
        with open("/proc/self/stat") as stat:
            env_start = int(stat.read().rsplit(")", 1)[1].split()[47])  # field 50: env_start
        patches = []
        for key, value in ((TOKEN_VAR, token), (ROLE_VAR, role)):
            prefix = key.encode() + b"="
            at = 0 if raw.startswith(prefix) else raw.index(b"\0" + prefix) + 1
            start = at + len(prefix)
            old = raw[start : raw.index(b"\0", start)]
            new = value.encode()
            if len(new) > len(old):
                return False
            patches.append((env_start + start, new.ljust(len(old))))
        with open("/proc/self/mem", "r+b", buffering=0) as memory:
            for address, data in patches:
                memory.seek(address)
                memory.write(data)
    except (OSError, ValueError, IndexError):
        return False
    os.environ[TOKEN_VAR] = token
    os.environ[ROLE_VAR] = role
    return True


class Stop(BaseException):
    """SIGTERM or SIGINT: stop serving (children run on, in sessions of their own). Not an
    Exception: socketserver would report one raised in a request and serve on."""


class ForkServer(HTTPServer):
    """The control server: one request at a time, in the only thread."""

    def __init__(self, port: int, token: str, kept: list[str], skipped: dict[str, str]) -> None:
        self.token = token
        self.pid = os.getpid()
        self.kept = kept
        self.skipped = skipped
        self.children: dict[int, int | None] = {}  # pid -> exit status once reaped
        super().__init__(("127.0.0.1", port), ControlHandler)

    def server_bind(self) -> None:
        # HTTPServer's own version calls socket.getfqdn(host): a DNS lookup at every start.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def reap(self) -> None:
        """Collect ended children, keeping their exit status for ``/children``."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children[pid] = os.waitstatus_to_exitcode(status)
            if len(self.children) > 1000:  # keep the statuses of running children only
                for old in [p for p, code in self.children.items() if code is not None][:500]:
                    del self.children[old]

    def running(self) -> list[int]:
        self.reap()
        return [pid for pid, code in self.children.items() if code is None]

    def fork(self, request: dict[str, Any], connection: socket.socket) -> dict[str, Any]:
        """Fork a child serving the script ``request`` (received on ``connection``) names;
        its pid and whether it is ready (listening, on the socket it names), or its exit
        status when it ended first."""
        read_end, write_end = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            connection.close()  # the caller's answer comes from this process, not the child
            code = 1
            try:
                code = serve_child(self, request, write_end)
            finally:
                os._exit(code)
        os.close(write_end)
        self.children[pid] = None
        timeout = float(request.get("timeout", READY_TIMEOUT))
        deadline = time.monotonic() + timeout
        try:
            while True:
                ready, _, _ = select.select([read_end], [], [], 0.05)
                if ready:
                    said = os.read(read_end, 32)  # its listening socket's inode
                    if said:
                        return {"pid": pid, "ready": True, "socket": int(said)}
                    break  # the child ended (or closed the pipe) before listening
                if time.monotonic() > deadline:
                    return {"pid": pid, "ready": False}
        finally:
            os.close(read_end)
        for _ in range(200):  # it closed the pipe by exiting: collect its status
            self.reap()
            if self.children.get(pid) is not None:
                break
            time.sleep(0.005)
        return {"pid": pid, "ready": False, "exit": self.children.get(pid)}


@functools.cache
def _prctl() -> Callable[..., int]:
    """libc's ``prctl``: found once, in the fork server, and shared by every child (loading
    ctypes cost each restart over a millisecond)."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl


def parent_death_signal(signum: int) -> None:
    """Have the kernel send ``signum`` to this process when its parent ends (0: none)."""
    _prctl()(PR_SET_PDEATHSIG, signum)


def serve_child(server: ForkServer, request: dict[str, Any], ready_fd: int) -> int:
    """In a fresh child: become the script's own process, then serve it. Until it listens
    it dies with the fork server (whose caller then starts it again, from another one);
    from then on it is on its own."""
    parent_death_signal(signal.SIGKILL)
    if os.getppid() != server.pid:  # the fork server ended before the signal was asked for
        return exits.UNUSABLE_CHILD
    os.setsid()
    server.socket.close()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    log = os.open(str(request["log"]), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    os.chdir(str(request["cwd"]))
    os.environ.update({str(k): str(v) for k, v in dict(request.get("env", {})).items()})
    sys.dont_write_bytecode = os.environ.get("PYTHONDONTWRITEBYTECODE", "") not in ("", "0")
    if not claim_identity(str(request["token"]), str(request["role"])):
        print("blcks.forkserver: cannot take the script's identity", file=sys.stderr)
        return exits.UNUSABLE_CHILD
    import blcks
    from blcks import serve
    from blcks.logger import make_logger

    blcks.blcks.logger = make_logger(os.environ)  # the script's variables, not the server's

    def listening(socket_inode: int) -> None:
        parent_death_signal(0)
        os.write(ready_fd, str(socket_inode).encode())
        os.close(ready_fd)

    return serve.main([str(arg) for arg in request["args"]], on_listening=listening)


class ControlHandler(BaseHTTPRequestHandler):
    # One request per connection, read within a bound: a single-threaded server must not
    # wait on a caller that keeps its connection open or stops sending.
    protocol_version = "HTTP/1.0"
    timeout = 10.0
    server: ForkServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._reply(
                200,
                {
                    "status": "ok",
                    "pid": os.getpid(),
                    "token": self.server.token,
                    "preloaded": self.server.kept,
                    "skipped": self.server.skipped,
                    "children": self.server.running(),
                },
            )
        elif path.startswith("/children/") and path.removeprefix("/children/").isdigit():
            self.server.reap()
            pid = int(path.removeprefix("/children/"))
            known = pid in self.server.children
            self._reply(200, {"pid": pid, "known": known, "exit": self.server.children.get(pid)})
        else:
            self._reply(404, {"msg": f"no route GET {path}"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if self.path != "/fork":
            self._reply(404, {"msg": f"no route POST {self.path}"})
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            request = json.loads(body)
            if request.get("server_token") != self.server.token:
                self._reply(403, {"msg": "not this server's token"})
                return
            self._reply(200, self.server.fork(request, self.connection))
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as err:
            self._reply(400, {"msg": f"{type(err).__name__}: {err}"})

    def _reply(self, status: int, value: object) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a control request is not worth a log line; children log their own


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blcks.forkserver", description=__doc__)
    parser.add_argument("--port", required=True, type=int, help="TCP port on 127.0.0.1")
    parser.add_argument(
        "--preload", action="append", default=[], help="a requirement (its modules are imported)"
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        type=lambda text: tuple(text.split("=", 1)) if "=" in text else (text, "not to preload"),
        help="MODULE=WHY: a module not to import (it is unsafe to share by fork)",
    )
    args = parser.parse_args(argv)
    named = [name for line in args.preload if (name := distribution_name(line))]
    left_out = {module for module, _ in args.skip}
    modules = [m for m in (*SDK_MODULES, *top_level_modules(named)) if m not in left_out]
    kept, skipped, unsafe = preload(modules)
    if unsafe is not None:
        print(f"blcks.forkserver: not preloading {unsafe}: it {skipped[unsafe]}", flush=True)
        again = [*(sys.argv[1:] if argv is None else argv), "--skip", f"{unsafe}={skipped[unsafe]}"]
        os.execv(sys.executable, [sys.executable, "-m", "blcks.forkserver", *again])
    skipped.update(args.skip)
    _prctl()
    gc.collect()
    gc.freeze()  # what is imported now stays shared: a collection in a child copies no page
    server = ForkServer(args.port, os.environ.get(TOKEN_VAR, ""), kept, skipped)

    def on_stop(signum: int, frame: object) -> None:
        raise Stop

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGCHLD, lambda signum, frame: server.reap())
    print(f"blcks.forkserver listening on http://127.0.0.1:{server.server_port}", flush=True)
    try:
        server.serve_forever(poll_interval=3600)  # a signal, not a poll, ends it
    except Stop:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

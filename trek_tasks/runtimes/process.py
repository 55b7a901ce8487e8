"""Server processes of ours: spawn, wait until ready, check identity, find, stop.

Every process gets, in its environment, a random token and the project identity
(``TOKEN_VAR``, ``PROJECT_VAR``) and a role (``ROLE_VAR``: ``script:<id>`` or ``marvin``).
Its ``/healthz`` answers with its pid and that token, so "ours and healthy" means: the
pid is alive and ``/healthz`` answers with our pid and token. Finding strays reads the
exact project identity from ``/proc/<pid>/environ``; no name or path-prefix matching.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from trek_tasks.errors import StepFailed

TOKEN_VAR = "TREK_PROCESS_TOKEN"
PROJECT_VAR = "TREK_PROJECT"
ROLE_VAR = "TREK_PROCESS_ROLE"
STOP_TIMEOUT = 5.0

# Servers started by this interpreter, kept so they are reaped (not left as zombies or
# reported as leaked) when this interpreter stops them; others are found by pid.
_children: dict[int, subprocess.Popen[bytes]] = {}


class Exited(StepFailed):
    """The process ended before it answered; ``code`` is its exit status."""

    def __init__(self, message: str, where: str, code: int, detail: str = "") -> None:
        super().__init__(message, where, detail)
        self.code = code


@dataclass(frozen=True)
class Ours:
    """A running process of ours, as its environment names it."""

    pid: int
    token: str
    project: str
    role: str


def free_port(preferred: int = 0) -> int:
    """``preferred`` when it can be bound now, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise StepFailed("no free TCP port on 127.0.0.1")


def can_listen(port: int) -> bool:
    """Whether a server can listen on 127.0.0.1:``port`` now (with ``SO_REUSEADDR``, as
    socketserver's do: a port a stopped server left in TIME_WAIT is free)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def reap() -> None:
    """Collect the exit status of children that have ended (no zombies in long sessions)."""
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            del _children[pid]


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def pids() -> list[int]:
    """Every process id on this machine (from ``/proc``)."""
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def cmdline(pid: int) -> list[str]:
    """The arguments ``pid`` runs with (empty when unreadable or gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg for arg in raw.decode(errors="replace").split("\0") if arg]


def environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with (empty when unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.partition("=") for item in raw.decode(errors="replace").split("\0") if item)
    return {key: value for key, _, value in pairs}


def ours(pid: int) -> Ours | None:
    """``pid`` as a process of ours, or None when it is not one (or is gone)."""
    env = environ(pid)
    if not env.get(TOKEN_VAR) or PROJECT_VAR not in env or not pid_alive(pid):
        return None
    # A fork server's role is padded with spaces, for its children to write theirs over it.
    return Ours(pid, env[TOKEN_VAR], env[PROJECT_VAR], env.get(ROLE_VAR, "").rstrip(" "))


def owned(pid: int, token: str, project: str) -> bool:
    """True when ``pid`` runs and was started by us with ``token`` for exactly ``project``."""
    found = ours(pid)
    return found is not None and bool(token) and (found.token, found.project) == (token, project)


def state_int(state: dict, key: str) -> int:
    """``state[key]`` when it is an integer, else 0 (a hand-edited or corrupt state file
    names no process)."""
    value = state.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# What each process's environment says of it (``Ours``, or None: no process of ours), by
# pid, with what names that very process (its /proc entry's inode and time: a reused pid is
# another process). An environment is fixed at exec; a forked child writes its identity
# within milliseconds of its fork; so what was first seen over a second ago holds.
_SEEN: dict[int, tuple[tuple[int, int], Ours | None]] = {}
SETTLED_NS = 1_000_000_000


def find(project: str, role_prefix: str = "") -> list[Ours]:
    """Every running process of ours for exactly ``project`` whose role starts so.

    Each process's environment is read once while it lives (once it is a second old):
    reading every process's environment each time would cost a restart more than its fork
    does, and bringing up N scripts N times N reads."""
    reap()  # a child of this process that ended is no longer listed as running
    found = []
    for pid in pids():
        try:
            info = os.stat(f"/proc/{pid}")
        except OSError:
            continue
        instance = (info.st_ino, info.st_ctime_ns)
        known = _SEEN.get(pid)
        if known is not None and known[0] == instance:
            # A process of ours that ended may linger as a zombie until its parent reaps it.
            process = known[1] if known[1] is None or pid_alive(pid) else None
        else:
            process = ours(pid)
            if time.time_ns() - info.st_ctime_ns > SETTLED_NS:
                _SEEN[pid] = (instance, process)
        if process and process.project == project and process.role.startswith(role_prefix):
            found.append(process)
    return found


def listening_sockets(port: int) -> set[str]:
    """The sockets listening on TCP ``port`` (any address) as ``/proc/<pid>/fd`` links name
    them (``socket:[inode]``); empty when the kernel's tables cannot be read."""
    sockets: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local address "ADDR:PORT" in hex, state 0A = LISTEN, field 9 = socket inode
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":")[1], 16) == port:
                sockets.add(f"socket:[{fields[9]}]")
    return sockets


def holds(pid: int, sockets: set[str]) -> bool:
    """True when process ``pid`` has one of ``sockets`` open."""
    with contextlib.suppress(OSError), os.scandir(f"/proc/{pid}/fd") as fds:
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(fd.path) in sockets:
                    return True
    return False


def listener(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` (any address), when readable."""
    sockets = listening_sockets(port)
    if not sockets:
        return None
    for pid in pids():
        if holds(pid, sockets):
            return pid
    return None


def holder(port: int) -> Ours | None:
    """The process of ours listening on ``port``, or None (free, or held by another)."""
    pid = listener(port)
    return ours(pid) if pid is not None else None


def get_json(port: int, path: str, timeout: float = 1.0) -> dict | None:
    """GET a JSON document from 127.0.0.1:port, or None when nothing sensible answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        data = json.loads(body)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def post_json(port: int, path: str, value: object, timeout: float) -> dict | None:
    """POST ``value`` as JSON to 127.0.0.1:port; the JSON object answered with 200, or None
    when nothing (sensible) answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = json.dumps(value).encode()
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = json.loads(response.read())
        return data if response.status == 200 and isinstance(data, dict) else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


class Started(NamedTuple):
    """A server of ours that answered: its pid, its token, what its first ``/healthz`` said."""

    pid: int
    token: str
    health: dict


def health(port: int, pid: int, token: str, timeout: float = 1.0) -> dict | None:
    """What ``/healthz`` on ``port`` says when it answers as process ``pid`` with ``token``."""
    found = get_json(port, "/healthz", timeout)
    if found is None or found.get("pid") != pid or found.get("token") != token:
        return None
    return found


def answers(port: int, pid: int, token: str, timeout: float = 1.0) -> bool:
    """True when ``/healthz`` on ``port`` answers as process ``pid`` with ``token``."""
    return health(port, pid, token, timeout) is not None


def healthy(pid: int, port: int, token: str, project: str) -> bool:
    """Alive, started for ``project`` and answering as ours."""
    return owned(pid, token, project) and answers(port, pid, token)


def stopped(pid: int) -> bool:
    """True when ``pid`` is stopped (SIGSTOP, a debugger) or a zombie: it cannot answer."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat.rpartition(")")[2].split()[:1]  # the field after the (command name)
    return state in (["T"], ["t"], ["Z"], ["X"], [])


def serving(pid: int, port: int, token: str, project: str, socket_inode: int = 0) -> bool:
    """Alive, started for ``project``, not stopped, and still holding ``socket_inode``: the
    listening socket it named when it first answered on ``port`` (its inode, ``Started``).
    What ``healthy`` proves, asked of the kernel in a tenth of an HTTP round trip; a
    process that runs and listens but no longer answers (a deadlock) passes, and its next
    call fails within ``action_timeout``. Without ``socket_inode``, ``healthy``."""
    if not owned(pid, token, project) or stopped(pid):
        return False
    if not socket_inode:
        return answers(port, pid, token)
    return holds(pid, {f"socket:[{socket_inode}]"})


def tail_lines(path: Path, count: int | None) -> list[str]:
    """The last ``count`` lines of a text file (all when None); empty when unreadable."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return lines if count is None else lines[-count:]


def new_token() -> str:
    """A fresh identity token (always 32 characters: a fork server's child writes its own
    over its parent's in place)."""
    return secrets.token_hex(16)


def server_environ(env: Mapping[str, str], token: str, project: str, role: str) -> dict[str, str]:
    """The environment a server of ours runs with: ours, ``env``, its identity, unbuffered
    output (so its log is current)."""
    identity = {TOKEN_VAR: token, PROJECT_VAR: project, ROLE_VAR: role}
    return {**os.environ, **env, **identity, "PYTHONUNBUFFERED": "1"}


def spawn(
    args: Sequence[str],
    *,
    port: int,
    name: str,
    project: str,
    role: str,
    log_path: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    reasons: Mapping[int, str] | None = None,
) -> Started:
    """Start ``args`` as a server of ours on ``port`` logging to ``log_path``, wait until
    it answers ``/healthz`` as ours; returns its pid, token and that answer.

    Raises ``Exited`` (the log's tail in the message, ``reasons`` naming exit codes) when
    it dies first, StepFailed when it does not answer within ``timeout``."""
    token = new_token()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_environ(env or {}, token, project, role),
            cwd=cwd,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            _children.pop(proc.pid, None)
            tail = "\n".join(tail_lines(log_path, 15))
            reason = (reasons or {}).get(code, f"it exited with code {code}")
            raise Exited(f"{name} did not start: {reason}", name, code, tail)
        answered = health(port, proc.pid, token, timeout=0.5)
        if answered is not None:
            return Started(proc.pid, token, answered)
        time.sleep(0.005)  # a refused connection costs microseconds; poll often
    terminate(proc.pid)
    raise StepFailed(f"{name} did not answer within {timeout:.0f} s; see {log_path}", name)


def terminate(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process group of ``pid``, then SIGKILL what is left after ``timeout``."""
    child = _children.pop(pid, None)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        except PermissionError:
            os.kill(pid, sig)
        if child is not None:
            try:
                child.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                continue
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.01)
        if not pid_alive(pid):
            return
    if child is not None:
        child.wait()


def stop(pid: int, token: str, project: str, wait: bool = True) -> bool:
    """Stop ``pid`` if it is ours with ``token`` for ``project`` (without ``wait``: SIGTERM
    and return); False when it was not running as ours."""
    reap()
    if not owned(pid, token, project):
        return False
    if wait:
        terminate(pid)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    return True

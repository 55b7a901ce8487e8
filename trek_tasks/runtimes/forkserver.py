"""The local runtime's fork servers: per project and script environment, one warm
``python -m blcks.forkserver`` that the scripts of that environment are forked from.

A fork server is a server of ours like the others (token, project, role
``forkserver:<env key>``, padded so that a child can write its ``script:<id>`` over it);
its state is ``.trek/forkservers/<env key>.json``, its log beside it. It lives while a
script forked from it runs: stopping the last one stops it (``retire``), and
``shutdownenv -a`` stops any left (``stop_all``). It is started anew, and the restart
says why, when it has stopped or no longer answers; a requirements or SDK change gives
the script another environment, hence another fork server.

A script is not forked, but started in a fresh interpreter, when its command is not
``blcks.serve`` in its environment's Python, or its variables set ``PYTHON*`` settings
(read by the interpreter at start, so a fork would ignore them), or ``fork_server`` is
false in its config.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from blcks import exits
from trek_tasks.errors import StepFailed
from trek_tasks.events import emit
from trek_tasks.files import write_atomic
from trek_tasks.kinds.base import Command
from trek_tasks.runtimes import process
from trek_tasks.state import StateLayout

ROLE = "forkserver:"
ROLE_WIDTH = 300  # characters of the padded role; a longer ``script:<id>`` is not forked
SERVE = ("-m", "blcks.serve")
# Set for each child as it starts (the fork server applies them), not read at interpreter start.
CHILD_SETTINGS = frozenset({"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})
START_TIMEOUT = 30.0  # seconds a fork server may take to import what it preloads


class ForkFailed(StepFailed):
    """The fork server could not fork the script (it is gone or refused)."""


@dataclass(frozen=True)
class ForkServer:
    pid: int
    port: int
    token: str
    project: str
    env_key: str
    preloaded: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (module, why each child imports it)

    def healthy(self) -> bool:
        return process.healthy(self.pid, self.port, self.token, self.project)

    def children(self) -> list[int] | None:
        """The pids of the scripts it forked that run, or None when it does not answer."""
        health = process.get_json(self.port, "/healthz")
        if health is None or health.get("token") != self.token:
            return None
        return [pid for pid in health.get("children", []) if isinstance(pid, int)]


def forkable(command: Command, python: Path, env: Mapping[str, str], role: str) -> str | None:
    """Why ``command`` cannot be forked from a fork server (None when it can)."""
    if list(command.args[:3]) != [str(python), *SERVE]:
        return "its command is not blcks.serve"
    settings = sorted(k for k in env if k.startswith("PYTHON") and k not in CHILD_SETTINGS)
    if settings:
        return f"its variables set {', '.join(settings)}, which only a new interpreter reads"
    if len(role) > ROLE_WIDTH:
        return "its id is too long to write over the fork server's role"
    return None


def state_path(project: str, env_key: str) -> Path:
    return StateLayout.of_identity(project).fork_servers / f"{env_key}.json"


def load(project: str, env_key: str) -> ForkServer | None:
    """The saved fork server of ``project`` for ``env_key`` (None when missing or corrupt)."""
    try:
        data = json.loads(state_path(project, env_key).read_text())
        server = ForkServer(
            pid=process.state_int(data, "pid"),
            port=process.state_int(data, "port"),
            token=str(data["token"]),
            project=str(data["project"]),
            env_key=str(data["env_key"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return server if (server.project, server.env_key) == (project, env_key) else None


def ensure(project: str, env_dir: Path, requirements: list[str]) -> ForkServer:
    """The running fork server of ``project`` for the environment at ``env_dir``, started
    when there is none (``ForkServerStarted`` says why, when it is a restart)."""
    from trek_tasks.progress import ForkServerStarted

    env_key = env_dir.name
    saved = load(project, env_key)
    if saved is not None and saved.healthy():
        return saved
    for stray in process.find(project, ROLE + env_key):  # its state file was lost
        process.stop(stray.pid, stray.token, stray.project)
    path = state_path(project, env_key)
    port = process.free_port()
    started = process.spawn(
        [
            str(env_dir / "bin" / "python"),
            "-m",
            "blcks.forkserver",
            "--port",
            str(port),
            *(arg for line in requirements for arg in ("--preload", line)),
        ],
        port=port,
        name=f"the fork server of {env_key}",
        project=project,
        role=(ROLE + env_key).ljust(ROLE_WIDTH),
        log_path=path.with_suffix(".log"),
        timeout=START_TIMEOUT,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )
    pid, token, health = started
    skipped = health.get("skipped")
    skipped = skipped if isinstance(skipped, dict) else {}
    server = ForkServer(
        pid,
        port,
        token,
        project,
        env_key,
        preloaded=tuple(str(m) for m in health.get("preloaded", []) if isinstance(m, str)),
        skipped=tuple((str(m), str(why)) for m, why in skipped.items()),
    )
    write_atomic(path, json.dumps(asdict(server), indent=2) + "\n")
    if saved is not None or server.skipped:
        why = "not running" if saved is None else "it had stopped or did not answer"
        emit(ForkServerStarted(env_key, why, server.skipped))
    return server


def fork(
    server: ForkServer,
    command: Command,
    *,
    port: int,
    name: str,
    role: str,
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
    reasons: Mapping[int, str],
) -> process.Started:
    """Fork ``command``'s server from ``server`` and return once it answers as ours: its
    pid, token and that answer. Raises ``process.Exited`` when it ended first (its log's tail in the
    message), ``ForkFailed`` when the fork server did not fork it."""
    token = process.new_token()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    request = {
        "server_token": server.token,
        "args": list(command.args[3:]),
        "token": token,
        "role": role,
        "env": process.server_environ(env, token, server.project, role),
        "log": str(log_path),
        "cwd": str(cwd),
        "timeout": timeout,
    }
    answer = process.post_json(server.port, "/fork", request, timeout=timeout + 5)
    if answer is None or not isinstance(answer.get("pid"), int):
        raise ForkFailed(f"the fork server of {server.env_key} did not fork {name}", name)
    pid = answer["pid"]
    # The child listens on the socket it named: ours, and listening, is all /healthz would
    # have said (its first call wakes it instead).
    socket_inode = process.state_int(answer, "socket")
    if answer.get("ready") and process.serving(pid, port, token, server.project, socket_inode):
        return process.Started(pid, token, {"socket": socket_inode})
    code = answer.get("exit")
    if code == exits.UNUSABLE_CHILD:
        raise ForkFailed(f"{name} could not take its identity in a child of the fork server", name)
    if isinstance(code, int):
        tail = "\n".join(process.tail_lines(log_path, 15))
        reason = reasons.get(code, f"it exited with code {code}")
        raise process.Exited(f"{name} did not start: {reason}", name, code, tail)
    process.stop(pid, token, server.project)
    raise StepFailed(f"{name} did not answer within {timeout:.0f} s; see {log_path}", name)


def retire(project: str, env_key: str, leaving: int) -> None:
    """Stop the fork server of ``env_key`` once no script forked from it runs but
    ``leaving`` (asked to stop, maybe not gone yet; it runs on in a session of its own)."""
    server = load(project, env_key)
    children = server.children() if server is not None else None
    if server is not None and children is not None and set(children) <= {leaving}:
        stop(server)


def stop(server: ForkServer) -> None:
    process.stop(server.pid, server.token, server.project)
    state_path(server.project, server.env_key).unlink(missing_ok=True)


def stop_all(project: str) -> None:
    """Stop every fork server of ``project``, named by a state file or not."""
    for found in process.find(project, ROLE):
        process.stop(found.pid, found.token, found.project)
    folder = StateLayout.of_identity(project).fork_servers
    for path in folder.glob("*.json") if folder.is_dir() else ():
        path.unlink(missing_ok=True)

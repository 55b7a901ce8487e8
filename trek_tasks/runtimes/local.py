"""The local runtime: one ``python -m blcks.serve`` process per script on 127.0.0.1.

Each script runs in a virtualenv from the store, keyed by runtime + Python version +
requirements (+ SDK) hash and shared by scripts with equal requirements. ``uv`` (a
dependency: the ``uv`` package ships the binary) builds it, else one on PATH, else
``venv`` + pip; a build reports which script, which requirements and how long it took.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from blcks import exits
from trek_tasks.errors import StepFailed
from trek_tasks.events import emit
from trek_tasks.kinds.base import Command
from trek_tasks.project import Script
from trek_tasks.runtimes import forkserver, process
from trek_tasks.runtimes.base import (
    Handle,
    file_digests,
    python_tag,
    requirements_lines,
    script_config,
    sdk_hash,
)
from trek_tasks.state import store_dir
from trek_tasks.store import ENVS, ensure, health_check

READY_TIMEOUT = 20.0
ROLE = "script:"

# Asks an environment's interpreter where it installs packages.
PURELIB = "import sys, sysconfig; sys.stdout.write(sysconfig.get_path('purelib'))"


@dataclass(frozen=True)
class Launch:
    """How one script's server is started: spawned afresh or forked from a fork server."""

    command: Command
    port: int
    name: str
    role: str
    log_path: Path
    env: dict[str, str]
    cwd: Path
    reasons: dict[int, str]

    def spawn(self, project: str) -> process.Started:
        return process.spawn(
            self.command.args,
            port=self.port,
            name=self.name,
            project=project,
            role=self.role,
            log_path=self.log_path,
            timeout=READY_TIMEOUT,
            env=self.env,
            cwd=self.cwd,
            reasons=self.reasons,
        )

    def fork(self, server: forkserver.ForkServer) -> process.Started:
        return forkserver.fork(
            server,
            self.command,
            port=self.port,
            name=self.name,
            role=self.role,
            log_path=self.log_path,
            env=self.env,
            cwd=self.cwd,
            timeout=READY_TIMEOUT,
            reasons=self.reasons,
        )


class LocalRuntime:
    """Scripts as local processes in shared virtualenvs."""

    name = "local"

    def marvin_url_for_script(self, url: str) -> str:
        return url

    def marvin_hosts(self) -> tuple[str, ...]:
        return ()

    def env_key(self, script: Script) -> str:
        digest = hashlib.sha256()
        digest.update("\n".join(requirements_lines(script)).encode())
        digest.update(sdk_hash().encode())
        return f"{self.name}-{python_tag()}-{digest.hexdigest()[:16]}"

    def env_dir(self, script: Script) -> Path:
        return store_dir() / ENVS / self.env_key(script)

    def env_problem(self, script: Script) -> str | None:
        return health_check(self.env_dir(script))

    def install_env(self, script: Script) -> None:
        self._install(script)

    def _install(self, script: Script) -> Path:
        requirements = requirements_lines(script)
        about = {
            "runtime": self.name,
            "python": sys.version.split()[0],
            "requirements": requirements,
        }

        def build(tmp: Path) -> None:  # only when the store lacks it: a cold build
            from trek_tasks.progress import EnvBuilding, EnvBuilt

            emit(EnvBuilding(script.id, tuple(requirements)))
            clock = time.perf_counter()
            build_venv(tmp, requirements)
            emit(EnvBuilt(script.id, time.perf_counter() - clock))

        return ensure(ENVS, self.env_key(script), build, about)

    def start(
        self, script: Script, port: int, env: dict[str, str], log_path: Path, project: str = ""
    ) -> Handle:
        files = file_digests(script)
        env_dir = self._install(script)
        port = port or process.free_port()
        command = script.kind.serve_command(script.path, env_dir / "bin" / "python", port)
        launch = Launch(
            command=command,
            port=port,
            name=script.id,
            role=ROLE + script.id,
            log_path=log_path,
            env={**env, **command.env, "PYTHONDONTWRITEBYTECODE": "1"},
            cwd=script.path,
            reasons={
                exits.IMPORT_FAILED: "its handler failed to import",
                exits.CANNOT_LISTEN: f"port {port} is already in use",
            },
        )
        state: dict[str, object] = {"port": port, "log_path": str(log_path)}
        if script_config(script)["fork_server"] and project:
            started, state["fork_server"] = self._fork(script, env_dir, launch, project)
        else:
            started = launch.spawn(project)
        pid, token, health = started
        socket_inode = health.get("socket")
        if isinstance(socket_inode, int) and not isinstance(socket_inode, bool):
            # what ``healthy`` asks the kernel about, for this port only
            state["socket"] = {"port": port, "inode": socket_inode}
        return Handle(
            script_id=script.id,
            runtime=self.name,
            ref=str(pid),
            url=f"http://127.0.0.1:{port}/",
            state={"pid": pid, "token": token, **state},
            files=files,
            env_key=env_dir.name,
            project=project,
        )

    def _fork(
        self, script: Script, env_dir: Path, launch: Launch, project: str
    ) -> tuple[process.Started, int]:
        """Start the script as a child of its environment's fork server; with the fork
        server's pid (0: started in a fresh interpreter, as ``forkable`` or a failing fork
        server decides; the latter is said)."""
        from trek_tasks.progress import ForkFellBack

        python = env_dir / "bin" / "python"
        if forkserver.forkable(launch.command, python, launch.env, launch.role) is not None:
            return launch.spawn(project), 0
        why = ""
        for _ in range(2):  # a fork server that stopped is started anew, once
            try:
                server = forkserver.ensure(project, env_dir, requirements_lines(script))
            except StepFailed as err:
                why = f"its fork server did not start: {err.message}"
                break
            try:
                return launch.fork(server), server.pid
            except forkserver.ForkFailed as err:
                why = err.message
        emit(ForkFellBack(script.id, why))
        return launch.spawn(project), 0

    def healthy(self, handle: Handle) -> bool:
        pid, token = process.state_int(handle.state, "pid"), str(handle.state.get("token", ""))
        port = process.state_int(handle.state, "port")
        socket = handle.state.get("socket")
        socket = socket if isinstance(socket, dict) and socket.get("port") == port else {}
        return process.serving(pid, port, token, handle.project, process.state_int(socket, "inode"))

    def stop(self, handle: Handle, wait: bool = True) -> None:
        pid, token = process.state_int(handle.state, "pid"), str(handle.state.get("token", ""))
        process.stop(pid, token, handle.project, wait)
        if process.state_int(handle.state, "fork_server"):
            forkserver.retire(handle.project, handle.env_key, leaving=pid)

    def shutdown(self, project: str) -> None:
        forkserver.stop_all(project)

    def logs(self, handle: Handle, follow: bool, tail: int | None) -> Iterator[str]:
        yield from read_log(Path(str(handle.state.get("log_path", ""))), follow, tail)

    def leftovers(self, project: str) -> list[Handle]:
        return [
            Handle(
                script_id=found.role.removeprefix(ROLE),
                runtime=self.name,
                ref=str(found.pid),
                url="",
                state={"pid": found.pid, "token": found.token},
                project=found.project,
            )
            for found in process.find(project, ROLE)
        ]


def read_log(path: Path, follow: bool, tail: int | None) -> Iterator[str]:
    """Lines of a log file (the last ``tail``), then new ones as they come when ``follow``."""
    yield from process.tail_lines(path, tail)
    if not follow:
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        handle.seek(0, os.SEEK_END)
        while True:
            line = handle.readline()
            if line:
                yield line.rstrip("\n")
            else:
                time.sleep(0.2)


def uv_binary() -> str | None:
    """The uv of the ``uv`` package (a dependency of trek-tasks), else one on PATH; None
    when there is neither (then ``venv`` + pip build, about ten times slower)."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def build_venv(target: Path, requirements: list[str]) -> None:
    """A virtualenv at ``target`` with the requirements and the blcks SDK."""
    import blcks

    uv = uv_binary()
    python = target / "bin" / "python"
    try:
        if uv:
            # relocatable: the store builds in a temp folder and renames it into place, and the
            # entry points of packages (ansible-playbook ...) must not name the temp folder
            run([uv, "venv", "--quiet", "--relocatable", "--python", sys.executable, str(target)])
            if requirements:
                run([uv, "pip", "install", "--quiet", "--python", str(python), *requirements])
        else:
            run([sys.executable, "-m", "venv", str(target)])
            if requirements:
                run([str(python), "-m", "pip", "install", "--quiet", *requirements])
    except subprocess.CalledProcessError as err:
        output = (err.stderr or b"").decode(errors="replace").strip()
        raise StepFailed(f"installing {', '.join(requirements)} failed: {output}") from None
    site = subprocess.run(
        [str(python), "-c", PURELIB],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    shutil.copytree(
        Path(blcks.__file__).parent,
        Path(site) / "blcks",
        ignore=shutil.ignore_patterns("__pycache__"),
    )


def run(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True)

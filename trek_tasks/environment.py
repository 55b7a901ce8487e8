"""A project's running environment: one runtime process per script plus the local Marvin.

State lives in ``.trek/env/`` (paths from ``state.StateLayout``): per script a
``Handle`` and a log, and the local Marvin's state, log and generated secret. Every
check says *why* something is not up to date, so callers can print it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import secrets
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from trek_tasks import store
from trek_tasks.config import Config
from trek_tasks.errors import BadInput, ManyErrors, StepFailed
from trek_tasks.files import content_digest, write_atomic
from trek_tasks.progress import GcReport
from trek_tasks.project import Project, Script
from trek_tasks.runtimes import CONFIG_CHOICES, RUNTIMES, process
from trek_tasks.runtimes.base import (
    Gone,
    Handle,
    LiveUpdater,
    Runtime,
    changed_files,
    file_digests,
    sdk_hash,
)
from trek_tasks.state import store_dir

MARVIN_READY_TIMEOUT = 15.0
MARVIN_ROLE = "marvin"
PORT_TRIES = 10  # router_port and the ports after it, tried in turn when taken
PORT_IN_USE = 4  # the local Marvin's exit code when its port is taken (server.PortInUse)


def load_runtime(name: str) -> Runtime:
    """The runtime registered as ``name``."""
    if name not in RUNTIMES:
        choices = ", ".join(CONFIG_CHOICES)
        raise BadInput(f"unknown runtime '{name}'; choose one of {choices}", "config")
    module, _, cls = RUNTIMES[name].partition(":")
    runtime: Runtime = getattr(importlib.import_module(module), cls)()
    return runtime


def env_strings(envs: object) -> dict[str, str]:
    """Config ``envs`` as environment variables (non-strings as JSON)."""
    if not isinstance(envs, dict):
        return {}
    return {
        str(key): value if isinstance(value, str) else json.dumps(value)
        for key, value in envs.items()
    }


class MarvinFiles(NamedTuple):
    """What a local Marvin process reads and writes: its database, the inventory it is
    seeded from, its secret file and its log."""

    db: Path
    inventory: Path
    secret_file: Path
    log: Path


def spawn_marvin(
    runtime: Runtime,
    identity: str,
    files: MarvinFiles,
    port: int,
    role: str = MARVIN_ROLE,
    name: str = "local Marvin",
) -> tuple[int, str]:
    """Start a local Marvin process of the project ``identity`` on ``port``, listening
    where ``runtime``'s scripts can reach it; its pid and token (``process.spawn``)."""
    started = process.spawn(
        [
            sys.executable,
            "-m",
            "trek_tasks.marvin.server",
            "--db",
            str(files.db),
            "--inventory",
            str(files.inventory),
            "--port",
            str(port),
            "--secret-file",
            str(files.secret_file),
            *(arg for host in runtime.marvin_hosts() for arg in ("--listen", host)),
        ],
        port=port,
        name=name,
        project=identity,
        role=role,
        log_path=files.log,
        timeout=MARVIN_READY_TIMEOUT,
    )
    return started.pid, started.token


class Environment:
    """Start, check and stop what a project runs locally."""

    def __init__(self, project: Project, runtime: Runtime | None = None) -> None:
        self.project = project
        self.runtime = runtime or load_runtime(str(project.config["runtime"]))
        self._runtimes = {self.runtime.name: self.runtime}
        self.state = project.state
        self.dir = self.state.env_dir
        self.identity = self.state.identity
        self._env_keys: dict[str, str] | None = None  # what ``record_envs`` last recorded

    # scripts ---------------------------------------------------------------

    def runtime_of(self, handle: Handle) -> Runtime:
        """The runtime that started ``handle``: it checks, reads and stops it, also after
        the project (or ``--runtime``) chose another one."""
        if handle.runtime not in self._runtimes and handle.runtime in RUNTIMES:
            self._runtimes[handle.runtime] = load_runtime(handle.runtime)
        return self._runtimes.get(handle.runtime, self.runtime)

    def runtimes(self) -> list[Runtime]:
        """The project's runtime and those its saved handles name."""
        for script_id in self.started_ids():
            handle = self.handle(script_id)
            if handle is not None:
                self.runtime_of(handle)
        return list(self._runtimes.values())

    def handle_path(self, script_id: str) -> Path:
        return self.state.handle(script_id)

    def log_path(self, script_id: str) -> Path:
        return self.state.log(script_id)

    def handle(self, script_id: str) -> Handle | None:
        """The saved handle of ``script_id`` when it is this project's (one copied with the
        project names the original's process, which this project must neither use nor stop)."""
        handle = Handle.load(self.handle_path(script_id))
        return handle if handle is not None and handle.project == self.identity else None

    def foreign(self, project: object) -> str:
        """Why state saved for ``project`` is not this project's."""
        return f"its state is {project}'s (a copy)" if project else "its state names no project"

    def logs(self, script_id: str, follow: bool = False, tail: int | None = None) -> Iterator[str]:
        """What ``script_id`` logged: from its runtime while it has a handle, else its
        last log file (kept after a stop; never followed)."""
        handle = self.handle(script_id)
        if handle is not None:
            yield from self.runtime_of(handle).logs(handle, follow, tail)
        else:
            yield from process.tail_lines(self.log_path(script_id), tail)

    def script_env(self, script: Script) -> dict[str, str]:
        """The config ``envs`` for this script (its own config layer included)."""
        layers = Config.load(self.project.root, None if script.installed else script.path)
        return env_strings(layers["envs"])

    @staticmethod
    def envs_hash(envs: dict[str, str]) -> str:
        return hashlib.sha256(json.dumps(envs, sort_keys=True).encode()).hexdigest()[:16]

    def stale_reason(self, script: Script) -> str | None:
        """Why ``script``'s process must be (re)started, or None when it is up to date."""
        handle = Handle.load(self.handle_path(script.id))
        if handle is None:
            return "not running"
        if handle.project != self.identity:
            return self.foreign(handle.project)
        if handle.runtime != self.runtime.name:
            return f"runtime changed to {self.runtime.name}"
        if not self.runtime.healthy(handle):
            return "process lost"
        changed = changed_files(handle.files, file_digests(script))
        if changed:
            how = " (live update)" if self.live_updater(script, handle) else ""
            return f"{', '.join(changed)} changed{how}"
        if handle.sdk != sdk_hash():
            return "SDK changed"
        if handle.env_key != self.runtime.env_key(script):
            return "requirements changed"
        if handle.envs_hash != self.envs_hash(self.script_env(script)):
            return "config envs changed"
        return None

    def live_updater(self, script: Script, handle: Handle) -> LiveUpdater | None:
        """The runtime that can put ``script``'s edits into ``handle``'s server in place,
        or None: the project's runtime must live-update, have started ``handle``, and only
        files may have changed (not requirements, SDK or config envs)."""
        runtime = self.runtime
        if (
            isinstance(runtime, LiveUpdater)
            and handle.runtime == runtime.name
            and changed_files(handle.files, file_digests(script))
            and handle.env_key == runtime.env_key(script)
            and handle.sdk == sdk_hash()
            and handle.envs_hash == self.envs_hash(self.script_env(script))
        ):
            return runtime
        return None

    def live_update(self, updater: LiveUpdater, script: Script, handle: Handle) -> Handle | None:
        """Apply ``script``'s edits to ``handle``'s server in place; None (and said:
        ``LiveUpdateFellBack``) when what it names no longer runs."""
        from trek_tasks.events import emit
        from trek_tasks.progress import LiveUpdateFellBack

        try:
            updated = updater.update(handle, script)
        except Gone as err:
            emit(LiveUpdateFellBack(script.id, err.message))
            return None
        write_atomic(self.handle_path(script.id), updated.dump())
        return updated

    def up(self, script: Script) -> Handle:
        """(Re)start ``script``, by live update when only its files changed and the
        runtime can (``live_updater``).

        A running old process keeps serving until the new one is ready on another port,
        then it is asked to stop without waiting: a restart costs one start, not a stop
        and a start. A dead one leaves its port to the new process.
        """
        old = self.handle(script.id)
        updater = self.live_updater(script, old) if old is not None else None
        if old is not None and updater is not None:
            updated = self.live_update(updater, script, old)
            if updated is not None:
                return updated
        old_running = old is not None and self.runtime_of(old).healthy(old)
        self.record_envs(script)
        envs = self.script_env(script)
        port = process.free_port(0 if old is None or old_running else urlsplit(old.url).port or 0)
        self.log_path(script.id).unlink(missing_ok=True)
        handle = self.runtime.start(script, port, envs, self.log_path(script.id), self.identity)
        handle = replace(handle, envs_hash=self.envs_hash(envs), sdk=sdk_hash())
        write_atomic(self.handle_path(script.id), handle.dump())
        if old is not None:
            self.runtime_of(old).stop(old, wait=not old_running)
        # Copies a lost handle left are looked for once the new one serves: finding them
        # reads every process's environment, which costs more than a forked restart.
        self.stop_strays(
            script.id, keep=(handle, *((old,) if old is not None and old_running else ()))
        )
        return handle

    def down(self, script_id: str) -> bool:
        """Stop one script, and any copy of it a lost handle left; False when none ran."""
        handle = self.handle(script_id)
        self.handle_path(script_id).unlink(missing_ok=True)
        running = handle is not None and self.runtime_of(handle).healthy(handle)
        if handle is not None:
            self.runtime_of(handle).stop(handle)
        return self.stop_strays(script_id) or running

    def stop_strays(self, script_id: str, keep: tuple[Handle, ...] = ()) -> bool:
        """Stop the processes of ``script_id`` this project runs, found by identity, other
        than those ``keep`` names (a handle file lost, corrupt or overwritten leaves them);
        True if any ran."""
        kept = {handle.ref for handle in keep}
        strays = [
            found
            for found in self.runtime.leftovers(self.identity)
            if found.script_id == script_id and found.ref not in kept
        ]
        for stray in strays:
            self.runtime.stop(stray)
        return bool(strays)

    def started_ids(self) -> list[str]:
        """Scripts with a saved handle."""
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.json") if p.stem != "marvin")

    def logged_ids(self) -> list[str]:
        """Scripts with a saved handle or a log left by their last run."""
        logged = {p.stem for p in self.dir.glob("*.log")} if self.dir.is_dir() else set()
        return sorted({*self.started_ids(), *logged} - {MARVIN_ROLE})

    def running_ids(self) -> list[str]:
        """Scripts running for this project, by handle or found by identity (a state
        file lost or deleted with ``.trek/`` still leaves them to stop)."""
        found = (h.script_id for r in self.runtimes() for h in r.leftovers(self.identity))
        return sorted({*self.started_ids(), *found})

    def unused_ids(self) -> list[str]:
        """Scripts running for this project that the graph no longer uses."""
        used = {script.id for script in self.project.used_scripts()}
        return [script_id for script_id in self.running_ids() if script_id not in used]

    def install_env(self, script: Script) -> None:
        """Build ``script``'s environment unless it is usable, noting in the store that
        this project uses it."""
        self.record_envs(script)
        self.runtime.install_env(script)

    def record_envs(self, script: Script) -> None:
        """Tell the store which environment each script of the project needs now, before
        ``script``'s is built or started: every key the first time, then ``script``'s (each
        start computing them all made bringing up N scripts cost N² keys)."""
        if self._env_keys is None:
            self._env_keys = {s.id: self.runtime.env_key(s) for s in self.project.scripts.values()}
        elif script.id in self.project.scripts:
            self._env_keys[script.id] = self.runtime.env_key(script)
        store.record_project(self.project.root, self._env_keys)

    # local Marvin ----------------------------------------------------------

    @property
    def inventory(self) -> Path:
        return self.project.path("local_inventory_file")

    def secret(self) -> str:
        """``marvin_secret`` from config, else one generated per project (0600)."""
        configured = str(self.project.config["marvin_secret"])
        if configured:
            return configured
        path = self.state.marvin_secret
        if not path.is_file():
            write_atomic(path, secrets.token_urlsafe(32), private=True)
        return path.read_text().strip()

    def inventory_digest(self) -> str:
        """What the inventory says (a comment or layout edit leaves it unchanged)."""
        return content_digest(self.inventory)

    def saved_marvin_state(self) -> dict | None:
        """``marvin.json`` as saved, when it is a mapping (another project's included)."""
        try:
            data = json.loads(self.state.marvin_state.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def marvin_state(self) -> dict | None:
        """The local Marvin's saved state when it is this project's, else None."""
        data = self.saved_marvin_state()
        return data if data is not None and data.get("project") == self.identity else None

    def router_port(self) -> int:
        """The configured ``router_port`` (checked: a bad value is bad input)."""
        return int(self.project.config.checked("router_port"))

    @staticmethod
    def marvin_problem(state: dict) -> str | None:
        """Why the Marvin ``state`` names cannot be used (its pid is not a process of ours
        with its token, or ``/healthz`` on its port does not answer with both), or None."""
        pid, token = process.state_int(state, "pid"), str(state.get("token", ""))
        if not process.owned(pid, token, str(state.get("project", ""))):
            return "process lost"
        if not process.answers(process.state_int(state, "port"), pid, token):
            return "not answering"
        return None

    def marvin_stale_reason(self) -> str | None:
        state = self.saved_marvin_state()
        if state is None:
            return "not running"
        if state.get("project") != self.identity:
            return self.foreign(state.get("project"))
        problem = self.marvin_problem(state)
        if problem is not None:
            return problem
        # The running Marvin's port was checked when it started: a value equal to it needs
        # no schema check (whose import costs more than the rest of a warm run's checks).
        if state.get("router_port") != self.project.config["router_port"]:
            return "router_port changed"
        if state.get("inventory") != self.inventory_digest():
            return f"{self.inventory.name} changed"
        if self.served_secret() != self.secret():
            return "marvin_secret changed"
        if state.get("listen", []) != list(self.runtime.marvin_hosts()):
            return f"the {self.runtime.name} runtime needs it on {self.listen_shown()}"
        return None

    def listen_shown(self) -> str:
        """The addresses the local Marvin listens on for the project's runtime."""
        return ", ".join(("127.0.0.1", *self.runtime.marvin_hosts()))

    def served_secret(self) -> str | None:
        """The secret the running local Marvin read when it started (its secret file)."""
        try:
            return self.state.marvin_secret_run.read_text().strip()
        except OSError:
            return None

    @property
    def marvin_url(self) -> str:
        """The local Marvin's URL, once it has proven to be ours (``marvin_problem``)."""
        state = self.marvin_state()
        problem = "not running" if state is None else self.marvin_problem(state)
        if state is None or problem is not None:
            raise StepFailed(
                f"no local Marvin of this project answers ({problem}); start it with `trek initenv`"
            )
        return f"http://127.0.0.1:{state['port']}"

    def marvin_running(self) -> bool:
        """Whether a local Marvin of this project runs (named by its state or not)."""
        return bool(process.find(self.identity, MARVIN_ROLE))

    def marvin_up(self) -> str:
        """(Re)start the local Marvin on ``router_port``; returns its URL.

        When another process holds that port (or takes it first, the server then exits
        with ``PORT_IN_USE``), the next ports are tried and the move is reported with
        who holds it (``MarvinMoved``)."""
        from trek_tasks.events import emit
        from trek_tasks.progress import MarvinMoved

        self.marvin_down()
        for stray in process.find(self.identity, MARVIN_ROLE):  # its state file was lost
            process.stop(stray.pid, stray.token, stray.project)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.state.marvin_secret_run, self.secret(), private=True)
        wanted = self.router_port()
        ports = range(wanted, min(wanted + PORT_TRIES, 65536)) if wanted else [0] * PORT_TRIES
        for candidate in ports:
            port = candidate or process.free_port()
            if candidate and not process.can_listen(port):
                continue
            try:
                pid, token = self._spawn_marvin(port)
            except process.Exited as err:
                if err.code == PORT_IN_USE:
                    continue
                if err.code == 2:
                    lines = self.state.marvin_log.read_text().strip().splitlines()
                    raise ManyErrors([BadInput(line) for line in lines]) from None
                raise
            break
        else:
            raise StepFailed(
                f"router_port {wanted} and the {PORT_TRIES - 1} ports after it are in use; "
                "set a free one with `trek config router_port N` (0 picks any free port)"
                if wanted
                else f"no free port for the local Marvin in {PORT_TRIES} tries"
            )
        state = {
            "pid": pid,
            "port": port,
            "token": token,
            "router_port": wanted,
            "inventory": self.inventory_digest(),
            "project": self.identity,
            "listen": list(self.runtime.marvin_hosts()),
        }
        write_atomic(self.state.marvin_state, json.dumps(state) + "\n")
        if wanted and port != wanted:
            holder = process.holder(wanted)
            emit(MarvinMoved(wanted, port, *((holder.project, holder.role) if holder else ())))
        return self.marvin_url

    def _spawn_marvin(self, port: int) -> tuple[int, str]:
        self.state.marvin_log.unlink(missing_ok=True)
        return spawn_marvin(
            self.runtime,
            self.identity,
            MarvinFiles(
                self.state.marvin_db,
                self.inventory,
                self.state.marvin_secret_run,
                self.state.marvin_log,
            ),
            port,
        )

    def marvin_down(self) -> bool:
        state = self.marvin_state()
        self.state.marvin_state.unlink(missing_ok=True)
        if state is None:
            return False
        pid, token = process.state_int(state, "pid"), str(state.get("token", ""))
        return process.stop(pid, token, self.identity)

    def token(self) -> str:
        """A token for this project's Marvin: the configured JWT for a remote one, else one
        signed for the local one (``marvin.target`` holds the rule)."""
        from trek_tasks.marvin.target import local_token, remote

        configured = remote(self.project.config)
        return configured.token if configured else local_token(self)

    # everything ------------------------------------------------------------

    def leftovers(self) -> list[str]:
        """What of ours runs for this project, named by a state file or not (script ids,
        "local Marvin")."""
        scripts = [h.script_id for r in self.runtimes() for h in r.leftovers(self.identity)]
        return scripts + ["local Marvin" for _ in process.find(self.identity, MARVIN_ROLE)]

    def shutdown_all(self) -> list[str]:
        """Stop every script, the local Marvin and any stray process of ours."""
        runtimes = self.runtimes()  # before down() removes the handles naming them
        stopped = [sid for sid in self.started_ids() if self.down(sid)]
        if self.marvin_down():
            stopped.append("local Marvin")
        for runtime in runtimes:
            for handle in runtime.leftovers(self.identity):
                runtime.stop(handle)
            runtime.shutdown(self.identity)
        for found in process.find(self.identity, MARVIN_ROLE):
            process.stop(found.pid, found.token, found.project)
        return stopped


def envs_in_use() -> set[str]:
    """Keys of the store environments whose interpreter a running process runs."""
    base = store_dir() / store.ENVS
    keys = set()
    for pid in process.pids():
        args = process.cmdline(pid)
        if args and Path(args[0]).is_relative_to(base) and Path(args[0]) != base:
            keys.add(Path(args[0]).relative_to(base).parts[0])
    return keys


def collect_garbage(dry_run: bool = False) -> GcReport:
    """``trek gc``: remove the environments no project on this machine uses."""
    return store.collect(envs_in_use(), dry_run)

"""A project's running environment: one runtime process per script plus the local Marvin.

State lives in ``.trek/env/``: ``<script>.json`` (a ``Handle``), ``<script>.log``,
``marvin.json``, ``marvin.log`` and the generated ``marvin.secret`` (0600). Every check
says *why* something is not up to date, so callers can print it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import secrets
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from trek_tasks.config import Config
from trek_tasks.errors import BadInput, ManyErrors, StepFailed
from trek_tasks.files import write_atomic
from trek_tasks.project import Project, Script
from trek_tasks.runtimes import RUNTIMES
from trek_tasks.runtimes.base import Handle, Runtime, changed_files, file_digests
from trek_tasks.runtimes.local import cmdline, get_json, pid_alive, terminate, track, wait_ready

MARVIN_READY_TIMEOUT = 15.0


def load_runtime(name: str) -> Runtime:
    """The runtime registered as ``name``."""
    if name not in RUNTIMES:
        raise BadInput(f"unknown runtime '{name}'; choose one of {', '.join(RUNTIMES)}", "config")
    module, _, cls = RUNTIMES[name].partition(":")
    runtime: Runtime = getattr(importlib.import_module(module), cls)()
    return runtime


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


def env_strings(envs: object) -> dict[str, str]:
    """Config ``envs`` as environment variables (non-strings as JSON)."""
    if not isinstance(envs, dict):
        return {}
    return {
        str(key): value if isinstance(value, str) else json.dumps(value)
        for key, value in envs.items()
    }


class Environment:
    """Start, check and stop what a project runs locally."""

    def __init__(self, project: Project, runtime: Runtime | None = None) -> None:
        self.project = project
        self.runtime = runtime or load_runtime(str(project.config["runtime"]))
        self.dir = project.state_dir / "env"

    # scripts ---------------------------------------------------------------

    def handle_path(self, script_id: str) -> Path:
        return self.dir / f"{script_id}.json"

    def log_path(self, script_id: str) -> Path:
        return self.dir / f"{script_id}.log"

    def handle(self, script_id: str) -> Handle | None:
        return Handle.load(self.handle_path(script_id))

    def script_env(self, script: Script) -> dict[str, str]:
        """The config ``envs`` for this script (its own config layer included)."""
        layers = Config.load(self.project.root, None if script.installed else script.path)
        return env_strings(layers["envs"])

    @staticmethod
    def envs_hash(envs: dict[str, str]) -> str:
        return hashlib.sha256(json.dumps(envs, sort_keys=True).encode()).hexdigest()[:16]

    def stale_reason(self, script: Script) -> str | None:
        """Why ``script``'s process must be (re)started, or None when it is up to date."""
        handle = self.handle(script.id)
        if handle is None:
            return "not running"
        if handle.runtime != self.runtime.name:
            return f"runtime changed to {self.runtime.name}"
        if not self.runtime.healthy(handle):
            return "process lost"
        changed = changed_files(handle.files, file_digests(script))
        if changed:
            return f"{', '.join(changed)} changed"
        if handle.env_key != self.runtime.env_key(script):
            return "requirements changed"
        if handle.envs_hash != self.envs_hash(self.script_env(script)):
            return "config envs changed"
        return None

    def up(self, script: Script) -> Handle:
        """(Re)start ``script``.

        A running old process keeps serving until the new one is ready on another port,
        then it is asked to stop without waiting: a restart costs one start, not a stop
        and a start. A dead one leaves its port to the new process.
        """
        old = self.handle(script.id)
        old_running = old is not None and self.runtime.healthy(old)
        envs = self.script_env(script)
        port = free_port(0 if old is None or old_running else old.port)
        self.log_path(script.id).unlink(missing_ok=True)
        handle = self.runtime.start(script, port, envs, self.log_path(script.id))
        handle = replace(handle, envs_hash=self.envs_hash(envs))
        write_atomic(self.handle_path(script.id), handle.dump())
        if old is not None:
            self.runtime.stop(old, wait=not old_running)
        return handle

    def down(self, script_id: str) -> bool:
        """Stop one script; False when it was not running."""
        handle = self.handle(script_id)
        self.handle_path(script_id).unlink(missing_ok=True)
        if handle is None:
            return False
        running = self.runtime.healthy(handle)
        self.runtime.stop(handle)
        return running

    def started_ids(self) -> list[str]:
        """Scripts with a saved handle."""
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.json") if p.stem != "marvin")

    # local Marvin ----------------------------------------------------------

    @property
    def inventory(self) -> Path:
        return self.project.path("local_inventory_file")

    def secret(self) -> str:
        """``marvin_secret`` from config, else one generated per project (0600)."""
        configured = str(self.project.config["marvin_secret"])
        if configured:
            return configured
        path = self.dir / "marvin.secret"
        if not path.is_file():
            write_atomic(path, secrets.token_urlsafe(32), private=True)
        return path.read_text().strip()

    def inventory_digest(self) -> str:
        data = self.inventory.read_bytes() if self.inventory.is_file() else b""
        return hashlib.sha256(data).hexdigest()[:16]

    def marvin_state(self) -> dict | None:
        try:
            data = json.loads((self.dir / "marvin.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def marvin_stale_reason(self) -> str | None:
        state = self.marvin_state()
        if state is None:
            return "not running"
        pid, port = int(state.get("pid", 0)), int(state.get("port", 0))
        if not pid_alive(pid) or "trek_tasks.marvin.server" not in cmdline(pid):
            return "process lost"
        if get_json(port, "/healthz") is None:
            return "not answering"
        if state.get("inventory") != self.inventory_digest():
            return f"{self.inventory.name} changed"
        return None

    @property
    def marvin_url(self) -> str:
        state = self.marvin_state() or {}
        return f"http://127.0.0.1:{state.get('port', 0)}"

    def marvin_up(self) -> str:
        """(Re)start the local Marvin; returns its URL."""
        self.marvin_down()
        self.dir.mkdir(parents=True, exist_ok=True)
        secret_file = self.dir / "marvin.secret.run"
        write_atomic(secret_file, self.secret(), private=True)
        wanted = int(self.project.config["router_port"])
        port = free_port(wanted) if wanted == 0 else wanted
        log_path = self.dir / "marvin.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "trek_tasks.marvin.server",
                    "--db",
                    str(self.project.state_dir / "marvin.sqlite"),
                    "--inventory",
                    str(self.inventory),
                    "--port",
                    str(port),
                    "--secret-file",
                    str(secret_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        track(proc)
        try:
            wait_ready(proc, port, "local Marvin", log_path, MARVIN_READY_TIMEOUT)
        except StepFailed as err:
            if proc.returncode == 2:
                lines = log_path.read_text().strip().splitlines()
                raise ManyErrors([BadInput(line) for line in lines]) from None
            if proc.returncode == 4:
                raise StepFailed(
                    f"router_port {port} is already in use; set another with "
                    "`trek config router_port N` (0 picks a free port)"
                ) from None
            raise err
        state = {"pid": proc.pid, "port": port, "inventory": self.inventory_digest()}
        write_atomic(self.dir / "marvin.json", json.dumps(state) + "\n")
        return self.marvin_url

    def marvin_down(self) -> bool:
        state = self.marvin_state()
        (self.dir / "marvin.json").unlink(missing_ok=True)
        if state is None:
            return False
        pid = int(state.get("pid", 0))
        if pid and pid_alive(pid) and "trek_tasks.marvin.server" in cmdline(pid):
            terminate(pid)
            return True
        return False

    def token(self) -> str:
        """A token for this run: the configured JWT for a remote Marvin, else one we sign."""
        if self.project.config["marvin_url"]:
            return str(self.project.config["marvin_JWT"])
        from trek_tasks.marvin.inventory import load_inventory
        from trek_tasks.marvin.tokens import issue_token

        users = load_inventory(self.inventory).users
        return issue_token(self.secret(), users[0].username if users else "trek")

    # everything ------------------------------------------------------------

    def our_pids(self) -> list[int]:
        """Every process of ours for this project, known to a state file or not."""
        root = str(self.project.root)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            args = cmdline(int(entry.name))
            if "blcks.serve" in args and any(a.startswith(root) for a in args):
                found.append(int(entry.name))
            elif "trek_tasks.marvin.server" in args and any(a.startswith(root) for a in args):
                found.append(int(entry.name))
        return found

    def shutdown_all(self) -> list[str]:
        """Stop every script, the local Marvin and any stray process of ours."""
        stopped = [sid for sid in self.started_ids() if self.down(sid)]
        if self.marvin_down():
            stopped.append("local Marvin")
        for pid in self.our_pids():
            terminate(pid)
        return stopped

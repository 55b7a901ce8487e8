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
from urllib.parse import urlsplit

from trek_tasks.config import Config
from trek_tasks.errors import BadInput, ManyErrors, StepFailed
from trek_tasks.files import write_atomic
from trek_tasks.project import Project, Script
from trek_tasks.runtimes import CONFIG_CHOICES, RUNTIMES, process
from trek_tasks.runtimes.base import Handle, Runtime, changed_files, file_digests

MARVIN_READY_TIMEOUT = 15.0
MARVIN_ROLE = "marvin"


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


class Environment:
    """Start, check and stop what a project runs locally."""

    def __init__(self, project: Project, runtime: Runtime | None = None) -> None:
        self.project = project
        self.runtime = runtime or load_runtime(str(project.config["runtime"]))
        self.state = project.state
        self.dir = self.state.env_dir
        self.identity = self.state.identity

    # scripts ---------------------------------------------------------------

    def handle_path(self, script_id: str) -> Path:
        return self.state.handle(script_id)

    def log_path(self, script_id: str) -> Path:
        return self.state.log(script_id)

    def handle(self, script_id: str) -> Handle | None:
        return Handle.load(self.handle_path(script_id))

    def logs(self, script_id: str, follow: bool = False, tail: int | None = None) -> Iterator[str]:
        """What ``script_id`` logged (nothing when it has no handle)."""
        handle = self.handle(script_id)
        if handle is not None:
            yield from self.runtime.logs(handle, follow, tail)

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
        port = process.free_port(0 if old is None or old_running else urlsplit(old.url).port or 0)
        self.log_path(script.id).unlink(missing_ok=True)
        handle = self.runtime.start(script, port, envs, self.log_path(script.id), self.identity)
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
        path = self.state.marvin_secret
        if not path.is_file():
            write_atomic(path, secrets.token_urlsafe(32), private=True)
        return path.read_text().strip()

    def inventory_digest(self) -> str:
        data = self.inventory.read_bytes() if self.inventory.is_file() else b""
        return hashlib.sha256(data).hexdigest()[:16]

    def marvin_state(self) -> dict | None:
        try:
            data = json.loads(self.state.marvin_state.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def marvin_stale_reason(self) -> str | None:
        state = self.marvin_state()
        if state is None:
            return "not running"
        pid, token = int(state.get("pid", 0)), str(state.get("token", ""))
        if not process.owned(pid, token):
            return "process lost"
        if not process.answers(int(state.get("port", 0)), pid, token):
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
        secret_file = self.state.marvin_secret_run
        write_atomic(secret_file, self.secret(), private=True)
        wanted = int(self.project.config["router_port"])
        port = process.free_port(wanted) if wanted == 0 else wanted
        log_path = self.state.marvin_log
        log_path.unlink(missing_ok=True)
        try:
            pid, token = process.spawn(
                [
                    sys.executable,
                    "-m",
                    "trek_tasks.marvin.server",
                    "--db",
                    str(self.state.marvin_db),
                    "--inventory",
                    str(self.inventory),
                    "--port",
                    str(port),
                    "--secret-file",
                    str(secret_file),
                ],
                port=port,
                name="local Marvin",
                project=self.identity,
                role=MARVIN_ROLE,
                log_path=log_path,
                timeout=MARVIN_READY_TIMEOUT,
            )
        except process.Exited as err:
            if err.code == 2:
                lines = log_path.read_text().strip().splitlines()
                raise ManyErrors([BadInput(line) for line in lines]) from None
            if err.code == 4:
                raise StepFailed(
                    f"router_port {port} is already in use; set another with "
                    "`trek config router_port N` (0 picks a free port)"
                ) from None
            raise
        state = {"pid": pid, "port": port, "token": token, "inventory": self.inventory_digest()}
        write_atomic(self.state.marvin_state, json.dumps(state) + "\n")
        return self.marvin_url

    def marvin_down(self) -> bool:
        state = self.marvin_state()
        self.state.marvin_state.unlink(missing_ok=True)
        if state is None:
            return False
        return process.stop(int(state.get("pid", 0)), str(state.get("token", "")))

    def token(self) -> str:
        """A token for this project's Marvin: the configured JWT for a remote one, else one
        signed for the local one (``marvin.target`` holds the rule)."""
        from trek_tasks.marvin.target import resolve

        return resolve(self.project.config, self).token

    # everything ------------------------------------------------------------

    def leftovers(self) -> list[str]:
        """What of ours runs for this project, named by a state file or not (script ids,
        "local Marvin")."""
        scripts = [handle.script_id for handle in self.runtime.leftovers(self.identity)]
        return scripts + ["local Marvin" for _ in process.find(self.identity, MARVIN_ROLE)]

    def shutdown_all(self) -> list[str]:
        """Stop every script, the local Marvin and any stray process of ours."""
        stopped = [sid for sid in self.started_ids() if self.down(sid)]
        if self.marvin_down():
            stopped.append("local Marvin")
        for handle in self.runtime.leftovers(self.identity):
            self.runtime.stop(handle)
        for found in process.find(self.identity, MARVIN_ROLE):
            process.stop(found.pid, found.token)
        return stopped

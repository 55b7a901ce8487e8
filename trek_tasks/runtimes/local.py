"""The local runtime: one ``python -m blcks.serve`` process per script on 127.0.0.1.

Each script runs in a virtualenv from the store, keyed by runtime + Python version +
requirements (+ SDK) hash and shared by scripts with equal requirements. ``uv`` builds
it when present (0.2 s warm), else ``venv`` + pip.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from trek_tasks.errors import StepFailed
from trek_tasks.project import Script
from trek_tasks.runtimes.base import (
    Handle,
    file_digests,
    python_tag,
    requirements_lines,
    sdk_hash,
)
from trek_tasks.store import ensure

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
IMPORT_FAILED = 3
PORT_IN_USE = 4

# Servers started by this interpreter, kept so they are reaped (not left as zombies or
# reported as leaked) when this interpreter stops them; others are found by pid.
_children: dict[int, subprocess.Popen[bytes]] = {}


def track(proc: subprocess.Popen[bytes]) -> None:
    _children[proc.pid] = proc


def reap() -> None:
    """Collect the exit status of children that have ended (no zombies in long sessions)."""
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            del _children[pid]


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie."""
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


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


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


def tail_lines(path: Path, count: int) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return lines[-count:]


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


def wait_ready(
    proc: subprocess.Popen[bytes], port: int, name: str, log_path: Path, timeout: float
) -> None:
    """Poll ``/healthz`` until the server answers as ``name``; explain a death or a hang."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            _children.pop(proc.pid, None)
            tail = "\n".join(tail_lines(log_path, 15))
            reason = {
                IMPORT_FAILED: "its handler failed to import",
                PORT_IN_USE: f"port {port} is already in use",
            }.get(code, f"it exited with code {code}")
            raise StepFailed(f"{name} did not start: {reason}\n{tail}", name)
        health = get_json(port, "/healthz", timeout=0.5)
        if health is not None and health.get("pid", proc.pid) == proc.pid:
            return
        time.sleep(0.005)  # a refused connection costs microseconds; poll often
    terminate(proc.pid)
    raise StepFailed(f"{name} did not answer within {timeout:.0f} s; see {log_path}", name)


class LocalRuntime:
    """Scripts as local processes in shared virtualenvs."""

    name = "local"

    def env_key(self, script: Script) -> str:
        digest = hashlib.sha256()
        digest.update("\n".join(requirements_lines(script)).encode())
        digest.update(sdk_hash().encode())
        return f"{self.name}-{python_tag()}-{digest.hexdigest()[:16]}"

    def install_env(self, script: Script) -> Path:
        requirements = requirements_lines(script)
        about = {
            "runtime": self.name,
            "python": sys.version.split()[0],
            "requirements": requirements,
        }
        return ensure(
            "envs", self.env_key(script), lambda tmp: build_venv(tmp, requirements), about
        )

    def start(self, script: Script, port: int, env: dict[str, str], log_path: Path) -> Handle:
        files = file_digests(script)
        env_dir = self.install_env(script)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [
                    str(env_dir / "bin" / "python"),
                    "-m",
                    "blcks.serve",
                    "--script-dir",
                    str(script.path),
                    "--port",
                    str(port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
                cwd=script.path,
                start_new_session=True,
            )
        track(proc)
        wait_ready(proc, port, script.id, log_path, READY_TIMEOUT)
        return Handle(
            script_id=script.id,
            runtime=self.name,
            pid=proc.pid,
            port=port,
            files=files,
            env_key=env_dir.name,
            log_path=str(log_path),
        )

    def healthy(self, handle: Handle) -> bool:
        if not pid_alive(handle.pid):
            return False
        args = cmdline(handle.pid)
        if "blcks.serve" not in args or str(handle.port) not in args:
            return False
        health = get_json(handle.port, "/healthz")
        return health is not None and health.get("pid") == handle.pid

    def stop(self, handle: Handle, wait: bool = True) -> None:
        reap()
        if not (pid_alive(handle.pid) and "blcks.serve" in cmdline(handle.pid)):
            return
        if wait:
            terminate(handle.pid)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(handle.pid, signal.SIGTERM)

    def logs(self, handle: Handle, follow: bool, tail: int | None) -> Iterator[str]:
        yield from read_log(Path(handle.log_path), follow, tail)


def read_log(path: Path, follow: bool, tail: int | None) -> Iterator[str]:
    """Lines of a log file (the last ``tail``), then new ones as they come when ``follow``."""
    lines = tail_lines(path, tail) if tail is not None else tail_lines(path, 10**9)
    yield from lines
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


def build_venv(target: Path, requirements: list[str]) -> None:
    """A virtualenv at ``target`` with the requirements and the blcks SDK."""
    import blcks

    uv = shutil.which("uv")
    python = target / "bin" / "python"
    try:
        if uv:
            run([uv, "venv", "--quiet", "--python", sys.executable, str(target)])
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
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
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

"""Shared fixtures: an isolated home, the example project in a temp dir, a real redis-server,
and the check that tests leave no process of theirs running."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, settings

from trek_tasks.project import copy_sources
from trek_tasks.runtimes import process

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example" / "host.detect.redis"
REFERENCE = REPO / "tests" / "data" / "host.detect.redis"
HANDLER = '''\
"""detectredis, reduced to what packing and task tests need."""

from blcks import blcks

FAAS_METHOD_NAME = "detectredis"


@blcks
def main(event, context):
    """Entry called by the runtime; blcks dispatches to the script named by event['action']."""


@blcks.script(FAAS_METHOD_NAME)
def process(tag_name):
    return {"fail_hosts_count": 0, "fail_hosts": []}
'''
DODO = "from trek_tasks.tasks import namespace\nglobals().update(namespace(__file__))\n"
HANDLER_FILES = ("__init__.py", "handler.py", "requirements.txt")


def build_reference(dest: Path) -> Path:
    """The reference project at ``dest``, writable, with a handler and a dodo.py."""
    shutil.copytree(REFERENCE, dest)
    for path in (dest, *dest.rglob("*")):
        path.chmod(path.stat().st_mode | 0o200)
    handler = dest / "src" / "blcks" / "detectredis" / "handler"
    handler.mkdir()
    (handler / "__init__.py").write_text("")
    (handler / "handler.py").write_text(HANDLER)
    (handler / "requirements.txt").write_text("redis>=5\n")
    (dest / "dodo.py").write_text(DODO)
    return dest


IN_CI = os.environ.get("CI", "") not in ("", "0", "false")

# Profiles for property-based tests: HYPOTHESIS_PROFILE=ci runs thousands of examples per
# case; dev, the default, a quick sample.
settings.register_profile(
    "ci",
    max_examples=2000,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Every process a test starts inherits this session's mark, so the session can find, by
# exact identity, what its tests left running. Set on import: before any test starts one.
# TREK_TEST_FORK_SERVER=0 runs the suite with scripts in fresh interpreters (the global
# config of every test sets fork_server false), as people who need that run them.
FORK_SERVER = os.environ.get("TREK_TEST_FORK_SERVER", "1") != "0"
SESSION_VAR = "TREK_TEST_SESSION"
SESSION = secrets.token_hex(8)
os.environ[SESSION_VAR] = SESSION
FIXTURE_PIDS: set[int] = set()  # processes session fixtures own and stop themselves


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """A real static HTTP server on 127.0.0.1 serving ``folder``; yields its URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class DripHandler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 200 and a 1,000-byte body sent one byte at a time, a pause
    of ``server.interval`` seconds before each: it never goes quiet long enough for a
    read timeout."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        try:
            for _ in range(1000):
                if getattr(self.server, "stopping", False):
                    return
                time.sleep(getattr(self.server, "interval", 2.0))
                self.wfile.write(b"x")
                self.wfile.flush()
        except OSError:
            pass  # the client gave up: what the tests want

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def drip(interval: float = 2.0) -> Iterator[str]:
    """A real HTTP server dripping a byte every ``interval`` s; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DripHandler)
    server.daemon_threads = True
    server.interval = interval  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.stopping = True  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
        thread.join()


def set_config(project: Path, **values: object) -> None:
    """Merge ``values`` into the project's ``.trek/config.json``."""
    path = project / ".trek" / "config.json"
    config = json.loads(path.read_text())
    config.update(values)
    path.write_text(json.dumps(config))


def set_redis_ports(project: Path, ports: dict[str, int]) -> None:
    """Point the inventory's hosts (by id) at the given ports."""
    path = project / "inputs" / "inventory.yml"
    inventory = yaml.safe_load(path.read_text())
    for host in inventory["hosts"]:
        if host["id"] in ports:
            host["port"] = ports[host["id"]]
    path.write_text(yaml.safe_dump(inventory))


def run_module(
    module: str, *args: str, cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` in ``cwd`` with this checkout importable, as a user's shell
    runs ``trek``/``doit``; its output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def parent_of(pid: int) -> int:
    """The parent pid of ``pid`` (from /proc/<pid>/stat)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def is_read_cache(path: str | Path) -> bool:
    """Whether ``path`` is a cache of what trek read, in a ``.trek`` folder: doit's dep
    file, the parsed workflow. A command refusing bad input may write those, nothing
    else (the workflow it parsed was fine; the bad input was another file)."""
    path = Path(path)
    name = path.name
    return path.parent.name == ".trek" and (name.startswith("doit.db") or name == "workflow.json")


def trek_process(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``trek args`` in a process of its own, as a user runs it."""
    return run_module("trek_tasks", *args, cwd=cwd, timeout=timeout)


def last_error(done: subprocess.CompletedProcess[str]) -> str:
    """The ``trek: error:`` line a command printed."""
    return next(line for line in done.stderr.splitlines() if line.startswith("trek: error: "))


def outputs_of(done: subprocess.CompletedProcess[str]) -> Any:
    """The outputs ``run<kind>`` printed (the JSON object after its progress lines)."""
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout[done.stdout.index("\n{") :])


def wheel(folder: Path, name: str, source: str, console: str = "") -> Path:
    """A pure-Python wheel of one module ``name`` (no build step, no network); ``console``
    names a console script calling ``name:main``."""
    dist = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": source,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{dist}/top_level.txt": f"{name}\n",
    }
    if console:
        files[f"{dist}/entry_points.txt"] = f"[console_scripts]\n{console} = {name}:main\n"
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    target = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_tool(name: str) -> str:
    """The tool's path; a skip with the reason when it is missing (a failure in CI)."""
    found = shutil.which(name)
    if found is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI but not installed")
        pytest.skip(f"{name} is not installed")
    return found


def left_running() -> list[int]:
    """Live processes of this session other than pytest and the fixtures' own."""
    return [
        pid
        for pid in process.pids()
        if pid != os.getpid()
        and pid not in FIXTURE_PIDS
        and process.environ(pid).get(SESSION_VAR) == SESSION
        and process.pid_alive(pid)
    ]


def kill(pid: int) -> None:
    """SIGTERM ``pid``, SIGKILL it if it is still there after 5 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and process.pid_alive(pid):
            time.sleep(0.02)
        if not process.pid_alive(pid):
            return


@pytest.fixture(scope="session", autouse=True)
def no_process_left() -> Iterator[None]:
    """Fail the suite when its tests leave a process they started running: list each
    (pid, command line, project) and stop it. Set up first, so torn down last."""
    yield
    left = [(pid, process.cmdline(pid), process.environ(pid)) for pid in left_running()]
    if not left:
        return
    lines = [
        f"  pid {pid}: {' '.join(args)} (TREK_PROJECT={env.get(process.PROJECT_VAR, '-')})"
        for pid, args, env in left
    ]
    for pid, _, _ in left:
        kill(pid)
    pytest.fail("tests left processes running (now stopped):\n" + "\n".join(lines), False)


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_delivered() -> Iterator[None]:
    """Ctrl-C reaches this process and the commands it starts, as in a terminal: a suite
    started as a background job (``cmd &`` in a script) inherits SIGINT ignored, and an
    ignored signal stays ignored in every child, so the Ctrl-C tests would see nothing."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session", autouse=True)
def trek_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This session's environment store: shared by its tests, so each environment is
    built once per session, and apart from other sessions, the user's and the checkout
    (set for the whole session, so module fixtures use it too)."""
    home = tmp_path_factory.mktemp("trek-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TREK_HOME", str(home))
        yield home


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, trek_home: Path
) -> Path:
    """Keep every test out of the real home directory and global config."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TREK_GLOBAL_CONFIG", str(home / ".trek" / "config.json"))
    monkeypatch.setenv("TREK_HOME", str(trek_home))
    if not FORK_SERVER:
        config = home / ".trek" / "config.json"
        config.parent.mkdir()
        config.write_text('{"fork_server": false}\n')
    return home


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the example project, without any state a previous run left."""
    return copy_sources(EXAMPLE, tmp_path / EXAMPLE.name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[int]:
    """A real redis-server on a free port; yields the port."""
    binary = require_tool("redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    FIXTURE_PIDS.add(proc.pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield port
    proc.terminate()
    proc.wait(timeout=10)


# Docker: the daemon at DOCKER_HOST (else Docker's default socket), a registry and a base
# image. `.ci/docker.sh` provides all three in CI and sets TREK_REQUIRE_DOCKER=1, so there a
# missing one fails instead of skipping. The registry is TREK_TEST_REGISTRY (host:port) with
# TREK_TEST_REGISTRY_USER/_PASSWORD; the base image TREK_BASE_IMAGE.
REQUIRE_DOCKER = os.environ.get("TREK_REQUIRE_DOCKER", "") not in ("", "0")
BASE_IMAGE = os.environ.get("TREK_BASE_IMAGE", "trek-base/python:3.11")


def docker_missing(reason: str) -> None:
    """Skip with ``reason``; fail instead where Docker is required (CI)."""
    if REQUIRE_DOCKER:
        pytest.fail(f"TREK_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class Registry:
    """A registry the tests push to: ``address`` is host:port."""

    address: str
    user: str
    password: str


@pytest.fixture
def example_on_redis(project: Path, redis_server: int) -> Iterator[Path]:
    """The example with its reachable host on the test's redis-server; shut down after,
    with nothing of it left running."""
    from trek_tasks.cli import main
    from trek_tasks.environment import Environment
    from trek_tasks.project import Project

    set_config(project, router_port=0)
    set_redis_ports(project, {"S-redis-local": redis_server})
    yield project
    main(["shutdownenv", "-a", "-p", str(project)])
    assert Environment(Project.load(project)).leftovers() == []


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of the real Docker daemon."""
    try:
        import docker
    except ImportError:
        docker_missing("the docker package is not installed")
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if where.startswith("unix://"):  # asked first: the SDK leaks the socket of a failed try
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(where.removeprefix("unix://"))
            except OSError as err:
                docker_missing(f"no Docker daemon at {where} ({err.strerror})")
    try:
        client = docker.from_env(timeout=120)  # asks the daemon its API version
    except docker.errors.DockerException as err:
        docker_missing(f"no Docker daemon at {where} ({type(err).__name__})")
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry() -> Registry:
    address = os.environ.get("TREK_TEST_REGISTRY", "")
    if not address:
        docker_missing("no test registry (set TREK_TEST_REGISTRY=host:port)")
    user = os.environ.get("TREK_TEST_REGISTRY_USER", "")
    password = os.environ.get("TREK_TEST_REGISTRY_PASSWORD", "")
    if not (user and password):  # the push tests check refused logins too
        docker_missing(
            "the test registry must ask for a login: set TREK_TEST_REGISTRY_USER/_PASSWORD"
        )
    return Registry(address, user, password)


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    """The base image of script images, present in the daemon (nothing is pulled)."""
    import docker

    try:
        docker_client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        docker_missing(f"base image {BASE_IMAGE} is not in the daemon (see .ci/docker.sh)")
    return BASE_IMAGE


@pytest.fixture
def docker_project(project: Path, base_image: str, registry: Registry) -> Path:
    """The example project set to build on ``base_image`` for ``registry``."""
    set_config(project, blcks_base_image=base_image, docker_registry=registry.address)
    set_config(project, router_port=0)
    return project

"""Shared fixtures: an isolated home, the example project in a temp dir, a real redis-server."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from trek_tasks.project import copy_sources

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


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """A real static HTTP server on 127.0.0.1 serving ``folder``; yields its URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


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


@pytest.fixture(scope="session")
def trek_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This session's environment store: shared by its tests, so each environment is
    built once per session, and apart from other sessions and the checkout."""
    return tmp_path_factory.mktemp("trek-home")


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, trek_home: Path
) -> Path:
    """Keep every test out of the real home directory and global config."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TREK_GLOBAL_CONFIG", str(home / ".trek" / "config.json"))
    monkeypatch.setenv("TREK_HOME", str(trek_home))
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

"""Fixtures for the detectredis tests: a real redis-server and a real local Marvin.

redis-server is started on a free port; without it the tests are skipped, unless the
environment variable CI is set, where a missing redis-server fails them.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT_DIR = Path(__file__).resolve().parents[1]
if str(SCRIPT_DIR) not in sys.path:
    sys.path.insert(0, str(SCRIPT_DIR))

INVENTORY = """\
hosts:
  - {{id: S-up, name: redis-up, ip: 127.0.0.1, port: {port}, tags: [redis, cache]}}
  - {{id: S-down, name: redis-down, ip: 127.0.0.1, port: 1, tags: [redis]}}
  - {{id: S-web, name: web, ip: 127.0.0.1, port: 1, tags: [web]}}
  - {{id: S-noport, name: no-port, ip: 127.0.0.1, tags: [noport]}}
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_port():
    """The port of a real redis-server started for these tests."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI", "") not in ("", "0", "false"):
            pytest.fail("redis-server is required in CI but not installed")
        pytest.skip("redis-server is not installed")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start on port {port}")
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def marvin(tmp_path, redis_port):
    """A local Marvin whose hosts point at the test redis-server: (url, token)."""
    from trek_tasks.marvin.inventory import Inventory
    from trek_tasks.marvin.server import local_marvin

    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY.format(port=redis_port), encoding="utf-8")
    with local_marvin(Inventory.load(inventory), tmp_path) as client:
        yield client

"""A real `trek webserver` for the portal tests: started as a subprocess, stopped by pid."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from conftest import REPO

URL_LINE = re.compile(r"^Portal on (http://\S+)/ serving \d+ projects? \(Ctrl-C stops\)$")
TOKEN = re.compile(r'<meta name="trek-token" content="([^"]+)">')


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[str]

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def token(self, key: str) -> str:
        found = TOKEN.search(self.get(f"/p/{key}").text)
        assert found, "the project page carries no token"
        return found.group(1)

    def post(self, path: str, token: str, **kwargs: Any) -> requests.Response:
        headers = {"X-Trek-Token": token} if token else {}
        headers.update(kwargs.pop("headers", {}))
        return requests.post(self.url + path, headers=headers, timeout=30, **kwargs)

    def action(self, key: str, timeout: float = 120) -> dict[str, Any]:
        """The page's last action once it finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            action = self.get(f"/api/p/{key}").json()["action"]
            if action and action["state"] == "finished":
                return dict(action)
            time.sleep(0.2)
        raise AssertionError(f"the action on {key} did not finish within {timeout} s")

    def live(self, key: str, timeout: float = 120) -> Iterator[dict[str, Any]]:
        """The messages of the project's live stream, until ``timeout``."""
        with requests.get(f"{self.url}/api/p/{key}/live", stream=True, timeout=timeout) as answer:
            assert answer.headers["Content-Type"].startswith("text/event-stream")
            deadline = time.monotonic() + timeout
            for line in answer.iter_lines(decode_unicode=True):
                if line.startswith("data: "):
                    yield json.loads(line.removeprefix("data: "))
                if time.monotonic() > deadline:
                    return


def portal_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(home),
        "TREK_GLOBAL_CONFIG": str(home / ".trek" / "config.json"),
        "PYTHONPATH": str(REPO),
    }


@contextmanager
def webserver(*args: str, cwd: Path, home: Path) -> Iterator[Served]:
    """`trek webserver --port 0 ARGS` in ``cwd``; yields it once it said where it serves."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "trek_tasks", "webserver", "--port", "0", *args],
        cwd=cwd,
        env=portal_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().rstrip("\n")
        found = URL_LINE.match(first)
        if found is None:
            proc.wait(10)
            raise AssertionError(f"webserver said {first!r}; stderr: {proc.stderr.read()}")
        served = Served(found.group(1), proc)
        try:
            yield served
        finally:  # what the page started ends before the test cleans up
            for site in served.get("/api/projects").json():
                if served.get(f"/api/p/{site['key']}").json()["action"]:
                    served.action(site["key"])
    finally:
        proc.terminate()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

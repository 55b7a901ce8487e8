"""Make `handler` importable, and serve a local Marvin for the handler to talk to."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from trek_tasks.marvin.inventory import Asset, Channel, Host, Inventory
from trek_tasks.marvin.server import MarvinServer
from trek_tasks.marvin.tokens import issue_token

SCRIPT_DIR = Path(__file__).resolve().parents[1]
if str(SCRIPT_DIR) not in sys.path:
    sys.path.insert(0, str(SCRIPT_DIR))

SECRET = "script-tests"
INVENTORY = Inventory(
    hosts=(
        Host("S-web1", "web-1", "127.0.0.1", tags=("web",)),
        Host("S-db1", "db-1", "127.0.0.2", port=5432, tags=("db",)),
    ),
    domains=(Asset("D-site", "example.test"),),
    channels=(Channel("C-general", "general"),),
)


class Marvin(NamedTuple):
    url: str
    token: str

    def get(self, path: str) -> Any:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["data"]


@pytest.fixture
def marvin(tmp_path: Path) -> Iterator[Marvin]:
    """A local Marvin seeded with two hosts, a domain and the channel C-general."""
    server = MarvinServer(tmp_path / "marvin.db", INVENTORY, SECRET)
    server.start()
    try:
        yield Marvin(server.url, issue_token(SECRET, "trek"))
    finally:
        server.stop()

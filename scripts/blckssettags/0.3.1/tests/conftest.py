"""Make `handler` importable, and serve a local Marvin for the handler to talk to."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from trek_tasks.marvin.client import MarvinClient as Marvin
from trek_tasks.marvin.inventory import Asset, Channel, Host, Inventory
from trek_tasks.marvin.server import local_marvin

SCRIPT_DIR = Path(__file__).resolve().parents[1]
if str(SCRIPT_DIR) not in sys.path:
    sys.path.insert(0, str(SCRIPT_DIR))

INVENTORY = Inventory(
    hosts=(
        Host("S-web1", "web-1", "127.0.0.1", tags=("web",)),
        Host("S-db1", "db-1", "127.0.0.2", port=5432, tags=("db",)),
    ),
    domains=(Asset("D-site", "example.test"),),
    channels=(Channel("C-general", "general"),),
)


@pytest.fixture
def marvin(tmp_path: Path) -> Iterator[Marvin]:
    """A local Marvin seeded with two hosts, a domain and the channel C-general."""
    with local_marvin(INVENTORY, tmp_path) as client:
        yield client

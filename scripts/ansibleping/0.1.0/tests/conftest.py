"""A local Marvin holding one host, for the playbook to resolve resourceIds through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trek_tasks.marvin.client import MarvinClient as Marvin
from trek_tasks.marvin.inventory import Host, Inventory
from trek_tasks.marvin.server import local_marvin

# A host no SSH server answers on (port 1): resolving it works, reaching it does not.
INVENTORY = Inventory(hosts=(Host("S-far", "far-away", "127.0.0.1", port=1),))


@pytest.fixture
def marvin(tmp_path: Path) -> Iterator[Marvin]:
    with local_marvin(INVENTORY, tmp_path) as client:
        yield client

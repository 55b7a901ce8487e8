"""The local Marvin: an embedded stand-in for the Marvin platform, and its pieces.

``MarvinServer`` and ``PortInUse`` are loaded on first use so that
``python -m trek_tasks.marvin.server`` does not import its own module twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trek_tasks.marvin.inventory import Inventory, inventory_path, load_inventory
from trek_tasks.marvin.store import Store
from trek_tasks.marvin.tokens import TokenError, issue_token, verify_token

if TYPE_CHECKING:
    from trek_tasks.marvin.server import MarvinServer, PortInUse

__all__ = [
    "Inventory",
    "MarvinServer",
    "PortInUse",
    "Store",
    "TokenError",
    "inventory_path",
    "issue_token",
    "load_inventory",
    "verify_token",
]


def __getattr__(name: str) -> Any:
    if name in ("MarvinServer", "PortInUse"):
        from trek_tasks.marvin import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

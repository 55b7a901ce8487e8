"""What one portal server serves: its projects, its token, the hosts it answers for, and
the actions its pages started."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from trek_tasks.http import scrub
from trek_tasks.portal.actions import Actions
from trek_tasks.portal.model import Site, credentials

TOKEN_HEADER = "X-Trek-Token"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass
class Portal:
    """What the application serves and guards."""

    sites: list[Site]
    hosts: frozenset[str]  # the Host headers accepted; empty: any (--allow-remote)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    actions: Actions = field(default_factory=Actions)

    def site(self, key: str) -> Site | None:
        return next((s for s in self.sites if s.key == key), None)

    def masked(self, text: str) -> str:
        return scrub(text, credentials(self.sites))


def served_hosts(host: str, port: int) -> frozenset[str]:
    """The Host headers a browser sends for a server bound to ``host``:``port``."""
    names = {host, *LOOPBACK} if host in LOOPBACK else {host}
    return frozenset(f"{name}:{port}" for name in names)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def portal_of(app: Any) -> Portal:
    found: Portal = app.extensions["trek_portal"]
    return found

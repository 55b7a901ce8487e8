"""Which Marvin a project (or a lone script folder) talks to, resolved once.

The configured ``marvin_url`` with its ``marvin_JWT`` when set (a remote Marvin), else
the project's local Marvin: its URL from the environment state and a token signed with
the local secret for the inventory's first user. This module is the only reader of
those two config keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from trek_tasks.errors import StepFailed
from trek_tasks.marvin.client import MarvinClient

FALLBACK_USER = "trek"  # the token's user when the inventory names none
PROBE_TIMEOUT = (3.0, 5.0)  # seconds to connect, to answer: a remote Marvin checked before a run


class Settings(Protocol):
    """Config as read here (``Config`` has it)."""

    @property
    def sources(self) -> Mapping[str, Path | None]: ...  # the file each value came from

    def checked(self, key: str, /) -> Any: ...  # a value, bad input when it is wrong


class LocalMarvin(Protocol):
    """What resolving needs from a project's environment (``Environment`` has it)."""

    @property
    def marvin_url(self) -> str: ...  # the running local Marvin's URL (from its state)

    @property
    def inventory(self) -> Path: ...  # the inventory it serves

    def secret(self) -> str: ...  # the secret it signs tokens with


class ScriptNetwork(Protocol):
    """The part of a ``Runtime`` that says how its scripts see the host."""

    def marvin_url_for_script(self, url: str) -> str: ...


@dataclass(frozen=True)
class MarvinTarget:
    """A Marvin URL, the token to use there and whether it is the project's local one.

    An empty ``url`` means no Marvin at all (a lone script outside a project); scripts
    then fall back to their ``MARVIN_URL``. ``source`` is the config file naming a
    remote one."""

    url: str
    token: str
    local: bool
    source: Path | None = None

    @property
    def client(self) -> MarvinClient:
        return MarvinClient(self.url, self.token)

    def url_for_script(self, runtime: ScriptNetwork) -> str:
        """The URL a script served by ``runtime`` must call (a container cannot use the
        host's 127.0.0.1)."""
        return runtime.marvin_url_for_script(self.url) if self.url else ""


NO_MARVIN = MarvinTarget("", "", local=False)


def remote(config: Settings) -> MarvinTarget | None:
    """The configured remote Marvin, or None when the local one is used."""
    url = str(config.checked("marvin_url") or "")
    if not url:
        return None
    token = str(config.checked("marvin_JWT") or "")
    return MarvinTarget(url, token, local=False, source=config.sources.get("marvin_url"))


def configured_url(config: Settings) -> str:
    """The configured ``marvin_url`` ("" when the local Marvin is used): what ``trek
    login`` offers by default."""
    configured = remote(config)
    return configured.url if configured is not None else ""


def check_token(marvin: MarvinTarget) -> None:
    """Raise StepFailed (one line: when, the config file, the fix) when a remote target's
    token is a JWT whose expiry has passed, before any call is made with it."""
    import time

    from trek_tasks.files import display
    from trek_tasks.marvin.tokens import expiry

    if marvin.local or not marvin.token:
        return
    expires = expiry(marvin.token)
    if expires is not None and expires <= time.time():
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires))
        raise StepFailed(
            f"the marvin_JWT expired at {when}; run `trek login` for a new one",
            display(marvin.source) if marvin.source else None,
        )


def is_remote(config: Settings) -> bool:
    """True when a remote Marvin is configured (no local Marvin is started then)."""
    return remote(config) is not None


def local_token(local: LocalMarvin) -> str:
    """The one token rule for a local Marvin: its secret signs the inventory's first user."""
    from trek_tasks.marvin.inventory import load_inventory
    from trek_tasks.marvin.tokens import issue_token

    users = load_inventory(local.inventory).users
    return issue_token(local.secret(), users[0].username if users else FALLBACK_USER)


def resolve(config: Settings, local_env: LocalMarvin | None) -> MarvinTarget:
    """The remote Marvin ``config`` names, else ``local_env``'s local Marvin (read its URL
    after starting it), else, with neither, ``NO_MARVIN``."""
    configured = remote(config)
    if configured is not None:
        return configured
    if local_env is None:
        return NO_MARVIN
    return MarvinTarget(local_env.marvin_url, local_token(local_env), local=True)


def check_answers(marvin: MarvinTarget) -> None:
    """Raise StepFailed (one line: the URL without credentials, the config file, the fix)
    when a remote Marvin does not answer, any answer but a gateway error will do, or when
    its token has expired (``check_token``)."""
    from trek_tasks import http
    from trek_tasks.configure import reset_hint
    from trek_tasks.files import display

    if marvin.local or not marvin.url:
        return
    check_token(marvin)
    try:
        http.request("GET", marvin.url.rstrip("/") + "/healthz", timeout=PROBE_TIMEOUT)
    except http.HttpError as err:
        if err.status and err.status not in http.RETRY_STATUSES:
            return
        raise StepFailed(
            f"the Marvin at marvin_url {http.shown_url(marvin.url)} does not answer "
            f"({err.summary}); correct marvin_url, or "
            f"{reset_hint('marvin_url', marvin.source)} uses the local one",
            display(marvin.source) if marvin.source else None,
        ) from None

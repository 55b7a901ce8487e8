"""Logging in to a Marvin: a token for a username and password, kept in a config file.

The token is what ``marvin.target`` later reads (``marvin_JWT``, with ``marvin_url``); the
config file holding it is written 0600 (``config.write_file``) and ``trek config -l``
masks it.
"""

from __future__ import annotations

from pathlib import Path

from trek_tasks import http
from trek_tasks.config import read_file, write_file
from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.marvin.client import TIMEOUT

LOGIN_PATH = "/api/v1/auth/login"


def login(url: str, username: str, password: str) -> str:
    """The token a Marvin at ``url`` gives for ``username`` and ``password``. Wrong ones
    are BadInput; no answer or any other failure is StepFailed, each one line."""
    where = f"login to {http.shown_url(url)}"
    try:
        answer = http.request(
            "POST",
            url.rstrip("/") + LOGIN_PATH,
            payload={"username": username, "password": password},
            timeout=TIMEOUT,
        )
    except http.HttpError as err:
        if err.status == 401:
            raise BadInput("wrong username or password", where) from None
        if not err.status:
            raise StepFailed(
                f"{err.summary}; is a Marvin running there? check the URL "
                "(--url, TREK_MARVIN_URL or config marvin_url)",
                where,
            ) from None
        raise StepFailed(err.summary, where) from None
    try:
        token = answer.json()["token"]
    except (ValueError, KeyError, TypeError):
        token = None
    if not isinstance(token, str) or not token:
        raise StepFailed('the answer holds no token (expected {"token": "..."})', where)
    return token


def save_login(path: Path, url: str, token: str) -> None:
    """Keep ``url`` and ``token`` as ``marvin_url`` and ``marvin_JWT`` in the config file
    ``path`` (its other keys stay), written 0600."""
    data = read_file(path) if path.is_file() else {}
    data.update({"marvin_url": url, "marvin_JWT": token})
    write_file(path, data)

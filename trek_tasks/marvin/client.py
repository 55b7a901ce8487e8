"""Calling a Marvin (the local one or a remote one): JSON over ``trek_tasks.http`` with a token."""

from __future__ import annotations

from typing import Any, NamedTuple

from trek_tasks import http
from trek_tasks.errors import StepFailed

TIMEOUT = (5.0, 10.0)


class MarvinClient(NamedTuple):
    """A Marvin URL and the token to use there (unpacks as ``url, token``).

    Each call returns the answer's ``data``; failures are ``http.HttpError`` (a
    ``StepFailed``) naming the method, URL and status, never the token."""

    url: str
    token: str

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body)

    def put(self, path: str, body: Any = None) -> Any:
        return self.call("PUT", path, body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """``method <url><path>`` with ``body`` as JSON; the ``data`` of the answer."""
        url = self.url.rstrip("/") + path
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = http.request(method, url, headers=headers, payload=body, timeout=TIMEOUT)
        try:
            return response.json()["data"]
        except (ValueError, KeyError, TypeError):
            raise StepFailed(
                f"{method} {http.shown_url(url)}: the answer is not Marvin JSON (no 'data')"
            ) from None

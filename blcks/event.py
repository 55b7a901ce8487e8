"""Reading the event a workflow delivers to a script (SPEC 7)."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from blcks.errors import InputError

_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-auth-token"}


class Event(NamedTuple):
    raw: dict[str, Any]
    action: str
    task_id: str
    token: str
    marvin_url: str
    headers: dict[str, Any]
    inputs: dict[str, Any]

    @classmethod
    def load(cls, event: object) -> Event:
        """Parse an event given as a dict or JSON text; InputError says what is wrong."""
        raw = _as_object(event, "event")
        headers = _optional_object(raw, "headers")
        context = _optional_object(raw, "context")
        body = raw.get("body")
        inputs = {} if body is None or body == "" else _as_object(body, "body")
        return cls(
            raw=raw,
            action=_optional_str(raw, "action"),
            task_id=str(raw.get("taskId") or ""),
            token=_token(raw.get("token"), headers),
            marvin_url=str(context.get("marvin_url") or ""),
            headers=headers,
            inputs=inputs,
        )

    def masked_headers(self) -> dict[str, Any]:
        """The headers with credentials replaced, safe to log."""
        return {name: _mask(name, value) for name, value in self.headers.items()}


def _as_object(value: object, what: str) -> dict[str, Any]:
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as err:
            raise InputError(f"{what} is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _optional_object(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"event {key} must be an object, got {type(value).__name__}")
    return value


def _optional_str(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"event {key} must be a string, got {type(value).__name__}")
    return value


def _token(token: object, headers: dict[str, Any]) -> str:
    # The original platform sometimes put a dict of token details here; only a string is usable.
    if isinstance(token, str) and token:
        return token
    for name, value in headers.items():
        if name.lower() == "authorization" and isinstance(value, str):
            scheme, _, credentials = value.partition(" ")
            return credentials.strip() if scheme.lower() == "bearer" else value.strip()
    return ""


def _mask(name: str, value: Any) -> Any:
    if name.lower() not in _SECRET_HEADERS:
        return value
    if isinstance(value, str) and value.lower().startswith("bearer "):
        return "Bearer ****"
    return "****"

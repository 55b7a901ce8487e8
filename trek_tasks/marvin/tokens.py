"""HS256 JSON Web Tokens with the standard library (interoperable with PyJWT).

The local Marvin signs login tokens with ``marvin_secret``; scripts and the CLI send
them back as ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from typing import Any

from trek_tasks.errors import TrekError

DEFAULT_TTL = 12 * 60 * 60
_HEADER = {"alg": "HS256", "typ": "JWT"}
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class TokenError(TrekError):
    """A token that is malformed, wrongly signed or expired (the message never holds it)."""


class TokenExpired(TokenError):
    """A well-signed token past its ``exp``: its holder must log in again."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("token is not base64url") from None


def _json_part(data: dict[str, Any]) -> str:
    return _b64encode(json.dumps(data, separators=(",", ":")).encode("utf-8"))


def _decode_part(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(text))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TokenError(f"token {what} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenError(f"token {what} is not a JSON object")
    return value


def _sign(secret: str, signing_input: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()


def issue_token(secret: str, subject: str, ttl_seconds: int = DEFAULT_TTL) -> str:
    """A token for ``subject`` valid for ``ttl_seconds`` from now (claims sub, iat, exp)."""
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + ttl_seconds}
    signing_input = f"{_json_part(_HEADER)}.{_json_part(claims)}"
    return f"{signing_input}.{_b64encode(_sign(secret, signing_input))}"


def verify_token(secret: str, token: str) -> dict[str, Any]:
    """The claims of ``token`` if its HS256 signature matches and it has not expired."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("token must have three dot-separated parts")
    # The stdlib decoder skips stray characters; a token must not have any.
    if not all(_B64URL.fullmatch(part) for part in parts):
        raise TokenError("token is not base64url")
    header_part, claims_part, signature_part = parts
    header = _decode_part(header_part, "header")
    if header.get("alg") != "HS256":
        raise TokenError("token algorithm must be HS256")
    expected = _sign(secret, f"{header_part}.{claims_part}")
    if not hmac.compare_digest(expected, _b64decode(signature_part)):
        raise TokenError("token signature does not match")
    claims = _decode_part(claims_part, "claims")
    expires = claims.get("exp")
    if isinstance(expires, bool) or not isinstance(expires, (int, float)):
        raise TokenError("token has no expiry time")
    if expires <= time.time():
        raise TokenExpired("token has expired")
    return claims


def expiry(token: str) -> float | None:
    """When ``token`` expires (its ``exp`` claim, read without checking the signature: the
    client's look at its own token), or None when it is not a JWT with one."""
    parts = token.split(".")
    if len(parts) != 3 or not _B64URL.fullmatch(parts[1]):
        return None
    try:
        claims = _decode_part(parts[1], "claims")
    except TokenError:
        return None
    expires = claims.get("exp")
    if isinstance(expires, bool) or not isinstance(expires, (int, float)):
        return None
    return float(expires)

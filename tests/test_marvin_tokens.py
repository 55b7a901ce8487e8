"""HS256 tokens of the local Marvin: round trip, PyJWT interop, tampering, expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from trek_tasks.marvin.tokens import TokenError, issue_token, verify_token

SECRET = "a-test-secret-of-thirty-two-bytes"


def b64(data: object) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(header: dict[str, object], claims: dict[str, object], secret: str = SECRET) -> str:
    signing_input = f"{b64(header)}.{b64(claims)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def decode_part(part: str) -> dict[str, object]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_round_trip_gives_subject_and_twelve_hours() -> None:
    token = issue_token(SECRET, "alice")
    claims = verify_token(SECRET, token)
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 12 * 60 * 60


def test_token_is_plain_jwt_without_padding() -> None:
    token = issue_token(SECRET, "alice", ttl_seconds=60)
    header, claims, signature = token.split(".")
    assert "=" not in token
    assert decode_part(header) == {"alg": "HS256", "typ": "JWT"}
    assert decode_part(claims)["sub"] == "alice"
    assert len(base64.urlsafe_b64decode(signature + "=")) == 32


def test_pyjwt_reads_our_tokens_and_we_read_its() -> None:
    jwt = pytest.importorskip("jwt")
    ours = issue_token(SECRET, "alice")
    assert jwt.decode(ours, SECRET, algorithms=["HS256"])["sub"] == "alice"
    theirs = jwt.encode({"sub": "bob", "exp": 4102444800}, SECRET, algorithm="HS256")
    assert verify_token(SECRET, theirs) == {"sub": "bob", "exp": 4102444800}


def test_wrong_secret_is_refused() -> None:
    token = issue_token(SECRET, "alice")
    with pytest.raises(TokenError) as info:
        verify_token("another-secret", token)
    assert str(info.value) == "token signature does not match"


def test_changed_claims_are_refused() -> None:
    header, claims, signature = issue_token(SECRET, "alice").split(".")
    forged = dict(decode_part(claims), sub="admin")
    with pytest.raises(TokenError) as info:
        verify_token(SECRET, f"{header}.{b64(forged)}.{signature}")
    assert str(info.value) == "token signature does not match"


def test_stray_characters_in_the_signature_are_refused() -> None:
    token = issue_token(SECRET, "alice")
    with pytest.raises(TokenError) as info:
        verify_token(SECRET, token + "!")
    assert str(info.value) == "token is not base64url"


def test_expired_token_is_refused() -> None:
    token = issue_token(SECRET, "alice", ttl_seconds=-1)
    with pytest.raises(TokenError) as info:
        verify_token(SECRET, token)
    assert str(info.value) == "token has expired"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("not-a-token", "token must have three dot-separated parts"),
        ("a.b.c.d", "token must have three dot-separated parts"),
        ("a.b.c", "token is not base64url"),
        (f"{b64({'alg': 'HS256'})[:-1]}x.e30.", "token header is not JSON"),
        (f"{b64(['HS256'])}.e30.", "token header is not a JSON object"),
        (signed({"alg": "none"}, {"sub": "a", "exp": 4102444800}), "token algorithm must be HS256"),
        (signed({"alg": "HS256"}, {"sub": "a"}), "token has no expiry time"),
        (signed({"alg": "HS256"}, {"sub": "a", "exp": "soon"}), "token has no expiry time"),
    ],
)
def test_malformed_tokens_are_refused(token: str, message: str) -> None:
    with pytest.raises(TokenError) as info:
        verify_token(SECRET, token)
    assert str(info.value) == message


def test_error_never_holds_the_token() -> None:
    token = issue_token(SECRET, "alice")
    with pytest.raises(TokenError) as info:
        verify_token("wrong", token)
    assert all(part not in str(info.value) for part in token.split("."))

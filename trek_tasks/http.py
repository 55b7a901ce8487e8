"""The one HTTP layer: timeouts, retries of idempotent calls, one error style, no credentials.

A failure reads ``GET http://host/path: HTTP 404: <msg>`` or ``GET http://host/path: cannot
connect: <reason>``. Messages never hold a token, a password or an Authorization header:
URLs lose their user info and token-like query values, and the credentials a call sent
are blanked out of whatever the server or the network stack said. Idempotent calls (GET,
HEAD, PUT, DELETE, OPTIONS) are retried with backoff when the connection fails or the
answer is 502, 503 or 504; a POST is sent once (the rule is ``blcks.retry``'s, which the
SDK's services follow too). requests is imported inside the functions
that call it, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from time import monotonic, sleep
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from blcks.retry import ATTEMPTS, BACKOFF, IDEMPOTENT, RETRY_STATUSES, pause
from trek_tasks.errors import StepFailed

if TYPE_CHECKING:
    import requests

Timeout = float | tuple[float, float]  # seconds, or (connect, read)
T = TypeVar("T")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

TIMEOUT: tuple[float, float] = (5.0, 30.0)
MASK = "..."
# A streamed download (``stream``) must finish within DEADLINE seconds of its start and
# bring at least MIN_RATE bytes/s on average over each RATE_WINDOW seconds of its body.
DEADLINE = 600.0
MIN_RATE = 1024
RATE_WINDOW = 30.0
_TOKEN_LIKE = re.compile(
    r"token|jwt|secret|passw|pwd|key|sig|auth|credential|session|cookie", re.IGNORECASE
)
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()]+)")
_MIN_SECRET = 6  # shorter values are not blanked (they would mangle the message)
_DETAIL_CHARS = 200


class HttpError(StepFailed):
    """A call that failed: ``status`` and ``phrase`` of the answer with ``detail``, what the
    server said; or status 0 and ``why`` no answer came (``connected``: the connection was
    made, the answer did not come)."""

    def __init__(
        self,
        method: str,
        url: str,
        status: int = 0,
        phrase: str = "",
        detail: str = "",
        why: str = "",
        connected: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.phrase = phrase
        self.detail = detail
        self.why = why
        self.connected = connected
        self.headers: Mapping[str, str] = headers or {}  # of the answer (a 401's challenge)
        super().__init__(f"{method} {url}: {self.summary}")

    @property
    def summary(self) -> str:
        """The message without the method and URL."""
        if self.status:
            said = self.detail or self.phrase
            return f"HTTP {self.status}: {said}" if said else f"HTTP {self.status}"
        return self.why if self.connected else f"cannot connect: {self.why}"


@dataclass(frozen=True)
class Response:
    """A successful (2xx) answer, read whole."""

    status: int
    phrase: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def shown_url(url: str, hide_query: bool = False) -> str:
    """``url`` fit for messages: no user or password, no fragment, ``...`` for the value of
    each token-like query parameter (with ``hide_query`` the whole query reads ``...``).
    Other schemes (``file://``, plain paths) pass unchanged."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    if hide_query:
        query = MASK if parts.query else ""
    else:
        query = "&".join(_shown_param(param) for param in parts.query.split("&"))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _shown_param(param: str) -> str:
    name, equals, value = param.partition("=")
    return f"{name}={MASK}" if equals and _TOKEN_LIKE.search(unquote(name)) else param


def secrets_of(url: str, headers: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The credentials a call carries: user info, token-like query values and headers."""
    parts = urlsplit(url)
    found = [parts.password or "", parts.username or "", basic_auth(url) or ""]
    found += [value for name, value in parse_qsl(parts.query) if _TOKEN_LIKE.search(name)]
    for name, value in (headers or {}).items():
        if _TOKEN_LIKE.search(name):
            found += [value, *value.split()[1:]]  # "Bearer <token>": the token alone too
    return tuple(sorted({s for s in found if len(s) >= _MIN_SECRET}, key=len, reverse=True))


def basic_auth(url: str) -> str | None:
    """The Basic credentials the user info of ``url`` is sent as (None without user info)."""
    import base64

    parts = urlsplit(url)
    if parts.username is None:
        return None
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return base64.b64encode(pair).decode()


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with each of ``secrets`` replaced by ``...`` (too short ones are left)."""
    for secret in secrets:
        if len(secret) >= _MIN_SECRET:
            text = text.replace(secret, MASK)
    return text


def reason(err: BaseException) -> str:
    """A short why for a network failure (``Connection refused``): no reprs, no URLs."""
    found = _ERRNO.search(str(err))
    if found:
        return found.group(1).strip()
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err).strip() or type(err).__name__


def _rate(per_second: float) -> str:
    return f"{per_second / 1024:g} KiB/s" if per_second >= 1024 else f"{per_second:g} bytes/s"


def detail_of(body: bytes) -> str:
    """What an error answer says: its JSON ``msg``/``message``/``error``, else its first line."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("msg", "message", "error", "detail"):
            if isinstance(data.get(key), str) and data[key]:
                return str(data[key])[:_DETAIL_CHARS]
        listed = data.get("errors")  # a registry's (OCI distribution API) error list
        if isinstance(listed, list) and listed and isinstance(listed[0], dict):
            if isinstance(listed[0].get("message"), str) and listed[0]["message"]:
                return str(listed[0]["message"])[:_DETAIL_CHARS]
    lines = body.decode(errors="replace").strip().splitlines()
    return lines[0][:_DETAIL_CHARS] if lines else ""


@dataclass(frozen=True)
class _Call:
    """What a failure message may say about a call, and what it must not."""

    method: str
    url: str  # as shown
    secrets: tuple[str, ...]
    connect: float
    read: float

    @classmethod
    def create(
        cls, method: str, url: str, headers: Mapping[str, str] | None, timeout: Timeout
    ) -> _Call:
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        return cls(method.upper(), shown_url(url), secrets_of(url, headers), connect, read)

    def lost(self, err: OSError, connected: bool) -> HttpError:
        """The HttpError for an http.client call that failed (``connected``: after the
        connection was made), worded as ``no_answer`` words requests' failures."""
        if isinstance(err, TimeoutError):
            if connected:
                return self._error(f"no answer within {self.read:g} s", connected=True)
            return self._error(f"timed out after {self.connect:g} s")
        return self._error(reason(err), connected)

    def no_answer(self, err: Exception) -> HttpError:
        """The HttpError for a requests (or, reading a stream, urllib3) exception."""
        import requests
        import urllib3

        text = str(err)
        if isinstance(err, requests.ConnectTimeout):
            return self._error(f"timed out after {self.connect:g} s")
        if isinstance(err, requests.Timeout) or "timed out" in text.lower():
            return self._error(f"no answer within {self.read:g} s", connected=True)
        if isinstance(err, (requests.ConnectionError, urllib3.exceptions.ProtocolError)):
            found = _ERRNO.search(text)
            return self._error(found.group(1).strip() if found else "connection failed")
        if isinstance(err, ValueError):  # MissingSchema, InvalidURL, ...
            return self._error("not a usable URL")
        return self._error(type(err).__name__)

    def answered(
        self, status: int, phrase: str, body: bytes, headers: Mapping[str, str]
    ) -> HttpError:
        return HttpError(
            self.method,
            self.url,
            status,
            scrub(phrase, self.secrets),
            scrub(detail_of(body), self.secrets),
            headers=headers,
        )

    def gave_up(self, why: str) -> HttpError:
        """The HttpError for a download stopped on our side (too slow, too long)."""
        return self._error(why, connected=True)

    def _error(self, why: str, connected: bool = False) -> HttpError:
        return HttpError(self.method, self.url, why=scrub(why, self.secrets), connected=connected)


@dataclass(frozen=True)
class Stream:
    """A 2xx answer whose body is read in chunks (``with stream(...) as answer``)."""

    status: int
    phrase: str
    headers: Mapping[str, str]
    raw: requests.Response = field(repr=False)
    call: _Call = field(repr=False)
    started: float = field(repr=False)  # time.monotonic() when the call began

    def chunks(self, size: int) -> Iterator[bytes]:
        """The body in pieces of at most ``size`` bytes, each as soon as it arrives.

        HttpError when the whole call takes longer than ``DEADLINE`` or a ``RATE_WINDOW``
        brings less than ``MIN_RATE`` on average (a server dripping bytes would otherwise
        hold the download forever: each byte resets the read timeout)."""
        import requests
        import urllib3

        window_start = monotonic()
        window_bytes = 0
        try:
            while chunk := self.raw.raw.read1(size, decode_content=True):
                now = monotonic()
                if now - self.started > DEADLINE:
                    raise self.call.gave_up(
                        f"not finished within {DEADLINE:g} s (the download deadline)"
                    )
                window_bytes += len(chunk)
                if now - window_start >= RATE_WINDOW:
                    if window_bytes < MIN_RATE * (now - window_start):
                        raise self.call.gave_up(
                            f"slower than {_rate(MIN_RATE)} over {RATE_WINDOW:g} s "
                            "(the minimum download rate)"
                        )
                    window_start, window_bytes = now, 0
                yield chunk
        except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
            raise self.call.no_answer(err) from None


class _Again(Exception):
    """An attempt that may be tried again (its ``error`` is raised after the last one)."""

    def __init__(self, error: HttpError) -> None:
        super().__init__(error.message)
        self.error = error


def _retrying(call: _Call, once: Callable[[], T]) -> T:
    """``once()``'s answer; an attempt raising ``_Again`` (no connection, or 502/503/504) is
    tried again with backoff when the method is idempotent (``blcks.retry``'s rule)."""
    attempts = ATTEMPTS if call.method in IDEMPOTENT else 1
    for attempt in range(1, attempts + 1):
        try:
            return once()
        except _Again as again:
            if attempt == attempts:
                raise again.error from None
            sleep(pause(attempt, BACKOFF))
    raise AssertionError("unreachable: the last attempt returns or raises")


def _refused(
    call: _Call, status: int, phrase: str, body: bytes, headers: Mapping[str, str]
) -> Exception:
    """The error for a non-2xx answer, as ``_Again`` when another attempt may succeed."""
    error = call.answered(status, phrase, body, headers)
    return _Again(error) if status in RETRY_STATUSES else error


def _send(
    call: _Call,
    url: str,
    headers: Mapping[str, str] | None,
    body: bytes | None,
    timeout: Timeout,
    stream: bool,
) -> requests.Response:
    """The first 2xx answer through requests (proxies, TLS, redirects); else HttpError."""
    import requests

    def once() -> requests.Response:
        try:
            response = requests.request(
                call.method,
                url,
                headers=dict(headers or {}),
                data=body,
                timeout=timeout,
                stream=stream,
            )
        except requests.ConnectionError as err:
            error = call.no_answer(err)
            # a read that timed out is not tried again
            raise (error if error.connected else _Again(error)) from None
        except requests.RequestException as err:
            raise call.no_answer(err) from None
        if 200 <= response.status_code < 300:
            return response
        with response:
            try:
                content = response.content
            except requests.RequestException:
                content = b""
        raise _refused(call, response.status_code, response.reason or "", content, response.headers)

    return _retrying(call, once)


def _send_loopback(
    call: _Call, url: str, headers: Mapping[str, str], body: bytes | None
) -> Response:
    """The first 2xx answer of a server on this machine, through http.client: no proxy or
    TLS applies, and a command talking only to its local Marvin never imports requests
    (which costs more than the rest of a warm ``trek run``'s checks)."""
    import http.client

    parts = urlsplit(url)
    sent = dict(headers)
    credentials = basic_auth(url)
    if credentials is not None:  # user info becomes Basic auth, as requests sends it
        sent["Authorization"] = f"Basic {credentials}"
    target = urlunsplit(("", "", parts.path or "/", parts.query, ""))

    def once() -> Response:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=call.connect)
        try:
            try:
                conn.connect()
            except OSError as err:
                raise _Again(call.lost(err, connected=False)) from None
            assert conn.sock is not None
            conn.sock.settimeout(call.read)
            try:
                conn.request(call.method, target, body=body, headers=sent)
                answer = conn.getresponse()
                content = answer.read()
            except TimeoutError as err:  # a read that timed out is not tried again
                raise call.lost(err, connected=True) from None
            except OSError as err:  # reset or closed: as requests, tried again
                raise _Again(call.lost(err, connected=False)) from None
            except http.client.HTTPException as err:
                raise call.lost(OSError(type(err).__name__), connected=True) from None
        finally:
            conn.close()
        # http.client's headers are read without case, as requests' are
        answered = cast(Mapping[str, str], answer.headers)
        if 200 <= answer.status < 300:
            return Response(answer.status, answer.reason or "", answered, content)
        raise _refused(call, answer.status, answer.reason or "", content, answered)

    return _retrying(call, once)


def is_loopback(url: str) -> bool:
    """An ``http://`` URL of this machine's usual loopback names (others go through requests)."""
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in LOOPBACK


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    payload: Any = None,
    body: bytes | None = None,
    timeout: Timeout = TIMEOUT,
) -> Response:
    """Call ``url`` and read the whole answer (``payload`` is sent as JSON). Raises HttpError
    unless the answer is 2xx."""
    headers = dict(headers or {})
    if payload is not None:
        body = json.dumps(payload).encode()
        headers.setdefault("Content-Type", "application/json")
    call = _Call.create(method, url, headers, timeout)
    if is_loopback(url):
        return _send_loopback(call, url, headers, body)
    response = _send(call, url, headers, body, timeout, stream=False)
    return Response(response.status_code, response.reason or "", response.headers, response.content)


@contextmanager
def stream(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: Timeout = TIMEOUT,
) -> Iterator[Stream]:
    """Call ``url`` and yield the answer before its body is read (downloads with a size
    limit or a progress bar). Raises HttpError unless the answer is 2xx."""
    started = monotonic()
    call = _Call.create(method, url, headers, timeout)
    response = _send(call, url, headers, None, timeout, stream=True)
    with response:
        yield Stream(
            response.status_code, response.reason or "", response.headers, response, call, started
        )

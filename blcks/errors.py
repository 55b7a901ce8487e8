"""Errors a handler raises or meets; each maps to an HTTP answer `{code, msg}`."""

from __future__ import annotations


class ScriptError(Exception):
    """A script failed in a way it chose to report: `code` becomes the HTTP status if 4xx/5xx."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class InputError(ScriptError):
    """The event or its inputs do not fit the script (HTTP 400)."""

    def __init__(self, msg: str) -> None:
        super().__init__(400, msg)


class ServiceError(Exception):
    """A Marvin API call failed; `status` is the HTTP status, 0 when no answer came."""

    def __init__(self, status: int, code: int, msg: str, url: str = "", method: str = "") -> None:
        self.status = status
        self.code = code
        self.msg = msg
        self.url = url
        self.method = method
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.method} {self.url}".strip()
        if not where:
            return self.msg
        if not self.status:
            return f"{where}: {self.msg}"
        return f"{where} -> HTTP {self.status}: {self.msg} (code {self.code})"

"""Clients of the Marvin API, as `blcks.createService(ServiceName.X)` returns them.

Each call goes to the Marvin of the current call (event `context.marvin_url`, else
MARVIN_URL) with the caller's token (event token or Authorization header, else
MARVIN_TOKEN). Failures raise ServiceError naming the URL and status, never the token.
Calls follow ``blcks.retry`` (the rule trek's own HTTP layer follows): a GET is tried again,
with backoff, when the connection fails or the answer is 502, 503 or 504; a POST is sent once.
"""

from __future__ import annotations

import json
import os
from enum import Enum
from typing import Any
from urllib.parse import quote

from blcks import retry
from blcks.context import current
from blcks.errors import ServiceError

DEFAULT_TIMEOUT = retry.READ_TIMEOUT


class ServiceName(str, Enum):
    HostsManager = "HostsManager"
    TagManager = "TagManager"
    ChannelManager = "ChannelManager"
    RBACManager = "RBACManager"


class Service:
    """Base of the service clients: HTTP + JSON against one Marvin, plus `call` by name."""

    def __init__(
        self,
        marvin_url: str | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.marvin_url = marvin_url
        self.token = token
        self.timeout = timeout

    def call(self, method_name: str, **params: Any) -> Any:
        """Call the method named `method_name` with `params` (what callservice does)."""
        import inspect

        name = type(self).__name__
        methods = self.methods()
        if method_name not in methods:
            choices = ", ".join(methods) or "none"
            raise ServiceError(0, 404, f"{name} has no method {method_name!r} (methods: {choices})")
        method = getattr(self, method_name)
        try:
            inspect.signature(method).bind(**params)
        except TypeError as err:
            raise ServiceError(0, 400, f"{name}.{method_name}: {err}") from None
        return method(**params)

    @classmethod
    def methods(cls) -> list[str]:
        """The API methods this service offers, in definition order."""
        return [
            name
            for klass in reversed(cls.__mro__)
            if issubclass(klass, Service) and klass is not Service
            for name, value in vars(klass).items()
            if callable(value) and not name.startswith("_")
        ]

    def _get(self, path: str) -> dict[str, Any]:
        return self._request("GET", path)

    def _post(self, path: str, body: object) -> dict[str, Any]:
        return self._request("POST", path, json.dumps(body).encode("utf-8"))

    def _request(self, method: str, path: str, data: bytes | None = None) -> dict[str, Any]:
        import http.client
        import time
        import urllib.error
        import urllib.request

        url = self._base_url() + path
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        token = self.token or current().token or os.environ.get("MARVIN_TOKEN", "")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        attempts = retry.attempts(method)
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    status, raw = response.status, response.read()
                break
            except urllib.error.HTTPError as err:
                with err:
                    error = _http_error(err.code, err.read(), url, method)
                if last or err.code not in retry.RETRY_STATUSES:
                    raise error from None
            except urllib.error.URLError as err:
                # no connection: tried again; an answer that did not come in time: not
                if last or isinstance(err.reason, TimeoutError):
                    raise _no_answer(err.reason, url, method, self.timeout) from None
            except (OSError, http.client.HTTPException) as err:
                if last or isinstance(err, TimeoutError):
                    raise _no_answer(err, url, method, self.timeout) from None
            time.sleep(retry.pause(attempt))
        try:
            answer = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise ServiceError(status, 502, "the answer is not JSON", url, method) from None
        if not isinstance(answer, dict):
            kind = type(answer).__name__
            raise ServiceError(status, 502, f"expected a JSON object, got {kind}", url, method)
        return answer

    def _base_url(self) -> str:
        url = self.marvin_url or current().marvin_url or os.environ.get("MARVIN_URL", "")
        if not url:
            raise ServiceError(
                0, 503, "no Marvin URL: the event context has no marvin_url and MARVIN_URL is unset"
            )
        return url.rstrip("/")


class HostsManager(Service):
    def getHosts(self, search: str = "") -> dict[str, Any]:
        """Hosts matching `search` ("tag:redis"): {"data": [{"id","name","ip","port","tags"}]}."""
        return self._get(f"/api/v1/hosts?search={quote(search, safe='')}")

    def getHost(self, id: str) -> dict[str, Any]:
        return self._get(f"/api/v1/hosts/{quote(str(id), safe='')}")


class TagManager(Service):
    def updateTags(self, tags: list[dict[str, Any]]) -> dict[str, Any]:
        """Add (tagged=True) or remove tags: [{"name","tagged","assets":[{"id","type"}]}]."""
        return self._post("/api/v1/tags/update", tags)

    def getTags(self) -> dict[str, Any]:
        return self._get("/api/v1/tags")


class ChannelManager(Service):
    def sendMessage(self, channel_ids: list[str], message: str) -> dict[str, Any]:
        body = {"channel_ids": channel_ids, "message": message}
        return self._post("/api/v1/channels/messages", body)

    def getChannels(self) -> dict[str, Any]:
        return self._get("/api/v1/channels")


class RBACManager(Service):
    def get_users_me(self) -> dict[str, Any]:
        return self._get("/api/v1/users/me")


SERVICES: dict[ServiceName, type[Service]] = {
    ServiceName.HostsManager: HostsManager,
    ServiceName.TagManager: TagManager,
    ServiceName.ChannelManager: ChannelManager,
    ServiceName.RBACManager: RBACManager,
}


def create_service(
    name: ServiceName | str,
    marvin_url: str | None = None,
    token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Service:
    """The client for service `name` (a ServiceName or its string value)."""
    try:
        key = ServiceName(name)
    except ValueError:
        choices = ", ".join(s.value for s in ServiceName)
        raise ServiceError(0, 404, f"no service named {name!r} (services: {choices})") from None
    return SERVICES[key](marvin_url=marvin_url, token=token, timeout=timeout)


def _http_error(status: int, raw: bytes, url: str, method: str) -> ServiceError:
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and "msg" in answer:
        code = answer.get("code")
        code = code if isinstance(code, int) else status
        return ServiceError(status, code, str(answer["msg"]), url, method)
    text = raw.decode("utf-8", errors="replace").strip()[:200]
    return ServiceError(status, status, text or "no details", url, method)


def _no_answer(reason: object, url: str, method: str, timeout: float) -> ServiceError:
    if isinstance(reason, TimeoutError):
        return ServiceError(0, 504, f"no answer within {timeout:g} s", url, method)
    return ServiceError(0, 502, f"cannot reach Marvin: {reason}", url, method)

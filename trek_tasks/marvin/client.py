"""Reading from a Marvin (the local one or a remote one): JSON over HTTP with a token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, NamedTuple

from trek_tasks.errors import StepFailed

TIMEOUT = 10.0


class MarvinClient(NamedTuple):
    """A Marvin URL and the token to use there (unpacks as ``url, token``)."""

    url: str
    token: str

    def get(self, path: str) -> Any:
        """The ``data`` of ``GET <url><path>``; failures name the URL and status, not the token."""
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return json.loads(response.read())["data"]
        except urllib.error.HTTPError as err:
            err.close()
            raise StepFailed(f"GET {self.url}{path} answered HTTP {err.code}") from None
        except (OSError, ValueError, KeyError) as err:
            raise StepFailed(f"GET {self.url}{path} failed: {err}") from None

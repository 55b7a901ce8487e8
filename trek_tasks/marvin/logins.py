"""Failed logins to the local Marvin, per username and per client address.

The first ``FREE_FAILURES`` failures of a username (or from an address) cost nothing;
after that each attempt must wait ``FIRST_DELAY`` seconds, doubled with each further
failure up to ``MAX_DELAY``, and is answered 429 meanwhile without the password being
looked at. A success clears both counts; failures are forgotten ``FORGET_AFTER`` seconds
after the last one. Standard library only, like the server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 5
FIRST_DELAY = 1.0
MAX_DELAY = 300.0
FORGET_AFTER = 900.0
MAX_TRACKED = 10_000  # names and addresses remembered at once (a spray stays bounded)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0  # when the last failure was counted
    until: float = 0.0  # no attempt is heard before this time


class LoginGuard:
    """Counts failed logins; thread-safe. ``clock`` is ``time.monotonic`` (tests pass
    their own)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[tuple[str, str], _Failures] = {}
        self._lock = threading.Lock()

    def admit(self, username: str, client: str) -> float:
        """0 when the attempt may go ahead (it counts as failed until ``succeeded``, so
        attempts sent at once cannot slip past), else the seconds to wait."""
        keys = (("user", username), ("client", client))
        with self._lock:
            now = self._clock()
            waits = [f.until - now for key in keys if (f := self._failures.get(key))]
            wait = max(waits, default=0.0)
            if wait > 0:
                return wait
            self._prune(now)
            for key in keys:
                failures = self._failures.setdefault(key, _Failures())
                if now - failures.last > FORGET_AFTER:
                    failures.count = 0
                failures.count += 1
                failures.last = now
                beyond = failures.count - FREE_FAILURES
                if beyond >= 0:
                    failures.until = now + min(FIRST_DELAY * 2 ** min(beyond, 30), MAX_DELAY)
            return 0.0

    def succeeded(self, username: str, client: str) -> None:
        with self._lock:
            self._failures.pop(("user", username), None)
            self._failures.pop(("client", client), None)

    def _prune(self, now: float) -> None:
        if len(self._failures) < MAX_TRACKED:
            return
        for key, failures in list(self._failures.items()):
            if now - failures.last > FORGET_AFTER and failures.until <= now:
                del self._failures[key]
        if len(self._failures) >= MAX_TRACKED:  # still full: forget the oldest half
            oldest = sorted(self._failures, key=lambda key: self._failures[key].last)
            for key in oldest[: len(oldest) // 2]:
                del self._failures[key]

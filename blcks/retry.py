"""When a Marvin call is tried again: the one rule the SDK's services and trek's HTTP layer
(``trek_tasks.http``) share. Standard library only, like the rest of the SDK.

Idempotent calls are tried up to ``ATTEMPTS`` times when the connection fails (not when
an answer was slow to come) or the answer is 502, 503 or 504, waiting ``BACKOFF`` seconds
before the second attempt, doubled before each further one. A POST is sent once.
"""

from __future__ import annotations

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({502, 503, 504})
ATTEMPTS = 3
BACKOFF = 0.1  # seconds before the second attempt, doubled before each further one
CONNECT_TIMEOUT = 5.0  # seconds to connect to a Marvin
READ_TIMEOUT = 10.0  # seconds for a Marvin to answer an API call


def attempts(method: str) -> int:
    """How many times a call with ``method`` may be sent."""
    return ATTEMPTS if method.upper() in IDEMPOTENT else 1


def pause(attempt: int, backoff: float = BACKOFF) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first)."""
    return backoff * 2 ** (attempt - 1)

"""The per-call context (who called, for which task, which Marvin) that services and logs read.

A contextvar keeps concurrent calls in a threaded server apart. A thread started inside
`process` begins with an empty context: run its work through `contextvars.copy_context().run`
to keep the caller's token.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple


class CallContext(NamedTuple):
    script: str = ""
    task_id: str = ""
    token: str = ""
    marvin_url: str = ""


EMPTY = CallContext()
_CURRENT: contextvars.ContextVar[CallContext] = contextvars.ContextVar("blcks_call", default=EMPTY)


def current() -> CallContext:
    """The context of the call running in this thread (empty fields outside a call)."""
    return _CURRENT.get()


@contextmanager
def bound(ctx: CallContext) -> Iterator[CallContext]:
    """Make `ctx` the current call context for the duration of the block."""
    reset = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(reset)

"""Where the library's events go: one list of subscribers, and :func:`emit`.

The library never prints. A step that reports while it works (packing, starting a
script, installing, testing; the event types are in :mod:`trek_tasks.progress`) calls
:func:`emit`; the engine hands its own events (:mod:`trek_tasks.engine`) to the
subscribers it is given, ``emit`` among them when a local run forwards them. The
terminal reporter is attached by the ``trek`` commands and by the doit namespace; a test
or, later, the portal attaches its own. With none attached an event is dropped.

This module defines no event type, so attaching costs nothing at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Subscriber = Callable[[Any], None]
_subscribers: list[Subscriber] = []


def emit(event: object) -> None:
    """Hand ``event`` to every attached subscriber, in the order they were attached."""
    for subscriber in tuple(_subscribers):
        subscriber(event)


def attach(subscriber: Subscriber) -> None:
    """Send every event from now on to ``subscriber`` too (once, however often attached)."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def detach(subscriber: Subscriber) -> None:
    if subscriber in _subscribers:
        _subscribers.remove(subscriber)


@contextmanager
def attached(subscriber: Subscriber) -> Iterator[None]:
    """``subscriber`` receives the events emitted inside the ``with`` block."""
    attach(subscriber)
    try:
        yield
    finally:
        detach(subscriber)

"""Helpers for a handler's unit tests: build an event as the workflow would and call main."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def make_event(
    inputs: dict[str, Any],
    action: str = "",
    token: str = "",
    marvin_url: str | None = None,
    task_id: str = "local-test",
) -> dict[str, Any]:
    """The event (SPEC 7) a workflow sends to run a script with `inputs`."""
    return {
        "action": action,
        "taskId": task_id,
        "token": token,
        "headers": {"Authorization": f"Bearer {token}"} if token else {},
        "body": json.dumps(inputs),
        "context": {"marvin_url": marvin_url} if marvin_url else {},
    }


def call(
    main: Callable[..., Any], inputs: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Run `main` on an event made from `inputs` (kwargs go to make_event); return its outputs."""
    outputs = main(make_event(inputs or {}, **kwargs), None)
    if not isinstance(outputs, dict):
        kind = type(outputs).__name__
        raise TypeError(
            f"main returned {kind}, expected the outputs dict: decorate main with @blcks"
        )
    return outputs

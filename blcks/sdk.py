"""The `blcks` object: the handler decorator, the script registry, logger and services."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from blcks.context import CallContext, bound
from blcks.errors import InputError, ScriptError, ServiceError
from blcks.event import Event
from blcks.logger import BlcksLogger
from blcks.services import DEFAULT_TIMEOUT, Service, ServiceName, create_service

Outputs = dict[str, Any]
Main = Callable[[Any, Any], Any]
Process = TypeVar("Process", bound=Callable[..., Any])


class Blcks:
    """Decorate `main(event, context)` with `@blcks` and `process` with `@blcks.script(NAME)`.

    The wrapped main reads the event, sets the call context (token, task id, Marvin URL),
    calls the original main as a hook (a result other than None is the answer), else runs
    the script the event's action names as `process(**inputs)` and returns its outputs.
    """

    ScriptError = ScriptError
    InputError = InputError
    ServiceError = ServiceError
    ServiceName = ServiceName

    def __init__(self, logger: BlcksLogger) -> None:
        self.logger = logger
        # module -> script name -> process: a handler dispatches to the scripts of its own
        # module, so several handlers can live in one process (tests, a local runner).
        self._scripts: dict[str, dict[str, Callable[..., Any]]] = {}

    def __call__(self, main: Main) -> Callable[..., Outputs]:
        @functools.wraps(main)
        def handle(event: object, context: object = None) -> Outputs:
            return self._handle(main, event, context)

        return handle

    def script(self, name: str) -> Callable[[Process], Process]:
        """Register `process` as the script `name` (the event action that selects it)."""

        def register(process: Process) -> Process:
            self._scripts.setdefault(process.__module__, {})[name] = process
            return process

        return register

    def createService(
        self,
        name: str,
        marvin_url: str | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Service:
        """A Marvin API client for a ServiceName; URL and token default to the current call's."""
        return create_service(name, marvin_url=marvin_url, token=token, timeout=timeout)

    def _handle(self, main: Main, event: object, context: object) -> Outputs:
        call = Event.load(event)
        scripts = self._pool(main.__module__)
        name = call.action or (next(iter(scripts)) if len(scripts) == 1 else "")
        ctx = CallContext(
            script=name, task_id=call.task_id, token=call.token, marvin_url=call.marvin_url
        )
        with bound(ctx):
            request = {"action": call.action, "taskId": call.task_id}
            self.logger.debug("request", extra={**request, "headers": call.masked_headers()})
            inputs = json.dumps(call.inputs, ensure_ascii=False, default=str)
            self.logger.info("run %s", name or main.__module__, extra={"inputParamsStr": inputs})
            result = main(call.raw, context)
            if result is None:
                result = _invoke(name, _select(scripts, call.action), call.inputs)
            if not isinstance(result, dict):
                raise ScriptError(
                    500, f"{name}: returned {type(result).__name__}, expected a dict of outputs"
                )
            return result

    def _pool(self, module: str) -> dict[str, Callable[..., Any]]:
        own = self._scripts.get(module)
        if own:
            return own
        merged: dict[str, Callable[..., Any]] = {}
        for scripts in self._scripts.values():
            merged.update(scripts)
        return merged


def _select(scripts: dict[str, Callable[..., Any]], action: str) -> Callable[..., Any]:
    names = ", ".join(sorted(scripts))
    if action:
        if action in scripts:
            return scripts[action]
        raise ScriptError(
            404, f"no script named {action!r} here (this handler serves: {names or 'none'})"
        )
    if len(scripts) == 1:
        return next(iter(scripts.values()))
    if not scripts:
        raise ScriptError(
            500, "no script registered: decorate process with @blcks.script(FAAS_METHOD_NAME)"
        )
    raise InputError(f"the event names no action and this handler serves several: {names}")


def _invoke(name: str, process: Callable[..., Any], inputs: dict[str, Any]) -> Any:
    import inspect

    params = inspect.signature(process).parameters.values()
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = [p.name for p in params if p.kind in keyword]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    unknown = [] if takes_any else [key for key in inputs if key not in accepted]
    missing = [
        p.name
        for p in params
        if p.kind in keyword and p.default is inspect.Parameter.empty and p.name not in inputs
    ]
    problems = []
    if unknown:
        problems.append(f"unknown input(s) {_names_with_hints(unknown, accepted)}")
    if missing:
        problems.append(f"missing required input(s) {', '.join(missing)}")
    if problems:
        takes = ", ".join(accepted) or "no inputs"
        raise InputError(f"{name}: {'; '.join(problems)} (process takes: {takes})")
    return process(**inputs)


def _names_with_hints(unknown: list[str], accepted: list[str]) -> str:
    import difflib

    out = []
    for key in unknown:
        close = difflib.get_close_matches(key, accepted, n=1)
        out.append(f"{key} (did you mean {close[0]}?)" if close else key)
    return ", ".join(out)

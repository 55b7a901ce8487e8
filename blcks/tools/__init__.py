"""Runners for scripts that are not Python handlers (shell, ansible, terraform).

Every kind is served the same way: ``python -m blcks.serve --kind <name>`` answers each
call by handing the event to the kind's runner, which runs the tool and returns the
outputs dict. A runner raises ``ScriptError``/``InputError`` with a one-line message
(naming ``file:line`` when the tool reports one); ``serve`` turns it into the answer.

The timeout of a call is the engine's ``action_timeout``, sent in the event as
``context.timeout`` (seconds): a tool still running past it is stopped with its whole
process group (``run_group``, the one place for that rule). Standard library only, like
the rest of the SDK: this package is copied into every script environment.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from blcks.errors import ScriptError
from blcks.event import Event

RUNNERS: dict[str, str] = {
    "shell": "blcks.tools.shell:ShellRunner",
    "ansible": "blcks.tools.ansible:AnsibleRunner",
    "terraform": "blcks.tools.terraform:TerraformRunner",
}

# The output names the script's para declares (a JSON list), set by its kind's serve command
# (the served process reads no YAML): a runner that takes outputs from the tool's own
# words uses it to tell "no outputs" from "outputs missing".
OUTPUTS_VAR = "TREK_DECLARED_OUTPUTS"
DEFAULT_TIMEOUT = 30.0  # seconds, when an event carries no context.timeout (trek's default)
MARGIN = 1.0  # a run is stopped this long before the caller's timeout, so its answer arrives
TERM_GRACE = 2.0  # seconds between SIGTERM and SIGKILL to a group past its timeout


class Runner(Protocol):
    name: str  # the kind it runs (a key of RUNNERS)

    # run the script in ``folder`` for one call; its outputs dict. Raises ScriptError /
    # InputError with one line naming the file:line when the tool reports one.
    def run(
        self, folder: str, script_id: str, event: dict[str, Any], timeout: float
    ) -> dict[str, Any]: ...


class Finished(NamedTuple):
    rc: int
    stdout: str
    stderr: str


def load_runner(kind: str) -> Runner:
    """The runner of ``kind`` (imported only when asked for)."""
    if kind not in RUNNERS:
        raise ValueError(f"unknown script kind '{kind}'; known: blcks, {', '.join(RUNNERS)}")
    module, _, cls = RUNNERS[kind].partition(":")
    runner: Runner = getattr(importlib.import_module(module), cls)()
    return runner


def event_timeout(event: Mapping[str, Any]) -> float:
    """The call's ``action_timeout`` (``context.timeout``), else ``DEFAULT_TIMEOUT``."""
    context = event.get("context")
    value = context.get("timeout") if isinstance(context, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DEFAULT_TIMEOUT


def event_inputs(event: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs of a call (its ``body``), read by the SDK's one event rule (``Event``)."""
    return Event.load(dict(event)).inputs


def declared_outputs() -> list[str]:
    """The output names of the served script's para (``OUTPUTS_VAR``), else []."""
    try:
        names = json.loads(os.environ.get(OUTPUTS_VAR, "[]"))
    except ValueError:
        return []
    return [str(name) for name in names] if isinstance(names, list) else []


def run_group(
    args: Sequence[str],
    cwd: str,
    env: Mapping[str, str],
    timeout: float,
    what: str,
    stdin: str = "",
) -> Finished:
    """Run ``args`` in its own process group and wait at most ``timeout`` seconds (less
    ``MARGIN``). Past it the whole group gets SIGTERM, then SIGKILL after ``TERM_GRACE``,
    and ScriptError says ``what`` ran past action_timeout. What the command left running
    in its group when it ended is killed too. A program not found is one ScriptError."""
    limit = max(timeout - MARGIN, timeout / 2)
    try:
        proc = subprocess.Popen(
            list(args),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ScriptError(500, f"{what}: '{args[0]}' was not found on PATH") from None
    except PermissionError:
        raise ScriptError(500, f"{what}: '{args[0]}' is not executable") from None
    try:
        stdout, stderr = proc.communicate(stdin, timeout=limit)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.communicate(timeout=TERM_GRACE)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise ScriptError(
            504,
            f"{what} ran past action_timeout ({timeout:g} s): its process group was stopped",
        ) from None
    _signal_group(proc.pid, signal.SIGKILL)  # what it started and left behind
    return Finished(proc.returncode, stdout, stderr)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group has ended

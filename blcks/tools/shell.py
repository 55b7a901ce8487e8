"""Shell scripts: ``<id>.sh`` run as a program (its ``#!`` line picks the shell).

Inputs reach it twice: ``$TREK_INPUTS`` is the path of a JSON file holding them all, and
each input whose name is a shell variable name is also an environment variable of its
name upper-cased (a string as it is, any other value as JSON text); one that would
replace a variable the server's environment has (``PATH``, ``HOME``...) or a ``TREK_``
one is only in the file. ``TREK_TASK_ID``, ``TREK_MARVIN_URL`` and ``TREK_TOKEN`` carry
the call's task id, Marvin URL and token. Outputs: the JSON object it writes on stdout,
else ``{rc, stdout, stderr}``; a para declaring outputs needs the JSON object. A
non-zero exit fails the call with the last line of stderr.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any

from blcks.errors import ScriptError
from blcks.event import Event
from blcks.tools import declared_outputs, run_group

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SHOWN = 120  # characters of a bad stdout quoted in the error


def script_file(folder: str, script_id: str) -> str:
    return os.path.join(folder, f"{script_id}.sh")


def script_flaws(path: str) -> list[tuple[int, str]]:
    """What keeps the shell script at ``path`` from running, as (line, message); line 0
    for the file as a whole. The rule ``validate`` and the runner share."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        return [(0, f"cannot read it: {err.strerror or err}")]
    flaws = []
    if not os.access(path, os.X_OK):
        name = os.path.basename(path)
        flaws.append((0, f"not executable; run `chmod +x {name}`"))
    if not data.startswith(b"#!"):
        flaws.append((1, "no '#!' line naming its shell; start it with #!/bin/sh"))
    crlf = data.find(b"\r\n")
    if crlf >= 0:
        line = data.count(b"\n", 0, crlf) + 1
        flaws.append(
            (
                line,
                "CRLF (Windows) line ends: the shell would read '\\r' as part of each "
                "command; convert them with `sed -i 's/\\r$//'`",
            )
        )
    return flaws


def input_environment(inputs: dict[str, Any], base: dict[str, str]) -> dict[str, str]:
    """The inputs as environment variables (see the module's doc)."""
    env = {}
    for name, value in inputs.items():
        var = str(name).upper()
        if not ENV_NAME.fullmatch(var) or var in base or var.startswith("TREK_"):
            continue
        env[var] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return env


class ShellRunner:
    name = "shell"

    def run(
        self, folder: str, script_id: str, event: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        path = script_file(folder, script_id)
        name = os.path.basename(path)
        flaws = script_flaws(path)
        if flaws:
            line, message = flaws[0]
            raise ScriptError(500, f"{name}{f':{line}' if line else ''}: {message}")
        call = Event.load(event)
        inputs = call.inputs
        base = dict(os.environ)
        with tempfile.NamedTemporaryFile(
            "w", prefix=f"{script_id}.", suffix=".json", encoding="utf-8", delete=False
        ) as handle:
            json.dump(inputs, handle, ensure_ascii=False)
        try:
            env = {
                **base,
                **input_environment(inputs, base),
                "TREK_INPUTS": handle.name,
                "TREK_TASK_ID": call.task_id,
                "TREK_MARVIN_URL": call.marvin_url,
                "TREK_TOKEN": call.token,
            }
            done = run_group([path], folder, env, timeout, name)
        finally:
            os.unlink(handle.name)
        if done.rc != 0:
            said = done.stderr.strip().splitlines()
            tail = f": {said[-1]}" if said else ""
            raise ScriptError(500, f"{name} exited with status {done.rc}{tail}")
        return outputs_of(name, done.rc, done.stdout, done.stderr)


def outputs_of(name: str, rc: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The JSON object on stdout, else rc/stdout/stderr; an error when the para declares
    outputs and stdout holds no JSON object."""
    try:
        data = json.loads(stdout)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data
    declared = declared_outputs()
    if declared:
        text = stdout.strip().replace("\n", "\\n")
        shown = text if len(text) <= SHOWN else text[:SHOWN] + "..."
        raise ScriptError(
            500,
            f"{name}: its para declares outputs ({', '.join(declared)}) but it wrote "
            f"{'no JSON object' if text else 'nothing'} on stdout"
            f"{f': {shown!r}' if text else ''}",
        )
    return {"rc": rc, "stdout": stdout, "stderr": stderr}

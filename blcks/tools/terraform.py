"""Terraform scripts: ``<id>.tf``, ``variables.tf``, ``versions.tf`` run by ``terraform``.

Each call works in a fresh temporary copy of the script folder (so calls never share a
``.terraform`` or a state): ``terraform init`` then ``apply`` or ``destroy`` (input
``terraform_command``, default apply) with ``-auto-approve -input=false -no-color``
and ``TF_IN_AUTOMATION=1``. The other inputs are the variables, in a ``-var-file`` JSON
file; the input ``tfstate`` (an object, the previous run's) is the starting state.
Outputs: ``stdout`` (of the apply/destroy), ``tfstate`` (the state after the run, an
object) and ``outputs`` (the root module's output values, read from that state).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from blcks.errors import InputError, ScriptError
from blcks.tools import event_inputs, run_group
from blcks.tools.places import shown

COMMANDS = ("apply", "destroy")
CONTROL_INPUTS = ("terraform_command", "tfstate")  # inputs that steer the run, not variables
STATE = "terraform.tfstate"
# Not copied into the working copy: trek's files, packed zips, a local run's leftovers.
SKIPPED = (".trek", "bin", "inputs", "tests", ".terraform", "*.tfstate", "*.tfstate.*")
INSTALL = "install it from https://developer.hashicorp.com/terraform/install"
_LOCATION = re.compile(r"^\s+on (?P<file>\S+) line (?P<line>\d+)", re.M)


class TerraformRunner:
    name = "terraform"

    def run(
        self, folder: str, script_id: str, event: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        where = Path(folder).resolve()
        what = f"terraform script '{script_id}'"
        inputs = event_inputs(event)
        command = inputs.get("terraform_command") or "apply"
        if command not in COMMANDS:
            raise InputError(f"{what}: terraform_command must be apply or destroy, not {command!r}")
        program = shutil.which("terraform")
        if program is None:
            raise ScriptError(500, f"{what}: 'terraform' was not found on PATH; {INSTALL}")
        with tempfile.TemporaryDirectory(prefix="trek-terraform-") as work:
            config = Path(work, "config")
            shutil.copytree(where, config, ignore=shutil.ignore_patterns(*SKIPPED))
            write_state(config / STATE, inputs.get("tfstate"), what)
            variables = Path(work, "inputs.tfvars.json")
            variables.write_text(json.dumps(tf_variables(inputs)), encoding="utf-8")
            os.chmod(variables, 0o600)  # inputs may be credentials
            env = dict(os.environ, TF_IN_AUTOMATION="1", TF_INPUT="0")
            init = [program, "init", "-input=false", "-no-color"]
            run = [program, command, "-auto-approve", "-input=false", "-no-color"]
            run += ["-compact-warnings", f"-var-file={variables}"]
            # One process group for both steps, so action_timeout bounds the whole call;
            # init's progress lines are not the output.
            steps = f"{shlex.join(init)} >/dev/null && exec {shlex.join(run)}"
            done = run_group(["/bin/sh", "-c", steps], str(config), env, timeout, what)
            if done.rc != 0:
                raise ScriptError(500, f"{what}: {failure(done.stderr, where)}")
            state = read_state(config / STATE)
        return {"stdout": done.stdout, "tfstate": state, "outputs": state_outputs(state)}


def tf_variables(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs that are terraform variables (all but terraform_command and tfstate)."""
    return {name: value for name, value in inputs.items() if name not in CONTROL_INPUTS}


def write_state(path: Path, state: object, what: str) -> None:
    """The previous run's state (input ``tfstate``): an object, or its JSON text; none
    (null, {} or "") starts from nothing."""
    if isinstance(state, str) and state.strip():
        try:
            state = json.loads(state)
        except ValueError as err:
            raise InputError(f"{what}: tfstate is not JSON: {err}") from None
    if not state:
        return
    if not isinstance(state, dict):
        raise InputError(f"{what}: tfstate must be an object (a terraform.tfstate)")
    path.write_text(json.dumps(state), encoding="utf-8")


def read_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    state = json.loads(path.read_text(encoding="utf-8"))
    return state if isinstance(state, dict) else {}


def state_outputs(state: Mapping[str, Any]) -> dict[str, Any]:
    """``{name: value}`` of the root module's outputs in a state."""
    outputs = state.get("outputs")
    if not isinstance(outputs, dict):
        return {}
    return {name: spec.get("value") for name, spec in outputs.items() if isinstance(spec, dict)}


class Located(NamedTuple):
    """An error terraform places in a file of the script folder."""

    file: str  # as terraform names it (relative to the folder)
    line: int
    summary: str


def located_error(stderr: str) -> Located | None:
    """The first error in terraform's ``stderr`` that names a file and line."""
    for block in re.split(r"^Error: ", stderr, flags=re.M)[1:]:
        found = _LOCATION.search(block)
        if found:
            return Located(found.group("file"), int(found.group("line")), _summary(block))
    return None


def failure(stderr: str, folder: Path) -> str:
    """One line for a failed terraform step: ``<file>:<line>: <summary>`` of the first
    error terraform places in a file (the file as the project shows it), else its first
    error, else its last line."""
    found = located_error(stderr)
    if found:
        return f"{shown(folder / found.file, folder)}:{found.line}: {found.summary}"
    blocks = re.split(r"^Error: ", stderr, flags=re.M)[1:]
    if blocks:
        return _summary(blocks[0])
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "terraform failed without a message"


def _summary(block: str) -> str:
    return " ".join(block.split("\n\n", 1)[0].split())

"""Tests of hostcommand.sh: run with `pytest` in the script folder, as trek runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blcks.tools.shell import ShellRunner

FOLDER = Path(__file__).resolve().parents[1]


def run(command: str) -> dict[str, Any]:
    event = {"body": json.dumps({"command": command}), "context": {"timeout": 30}}
    return ShellRunner().run(str(FOLDER), "hostcommand", event, 30.0)


def test_output_and_status_of_a_command() -> None:
    assert run("echo up; echo warm >&2") == {"rc": 0, "stdout": "up", "stderr": "warm"}


def test_a_failing_command_is_a_result() -> None:
    assert run("echo no such thing >&2; exit 3") == {
        "rc": 3,
        "stdout": "",
        "stderr": "no such thing",
    }


def test_quotes_backslashes_tabs_and_lines_survive() -> None:
    text = 'say "hi"\\there\tand\nmore'
    outputs = run(f"printf '%s\\n' '{text}'")
    assert outputs["stdout"] == text


def test_the_inputs_file_holds_the_command() -> None:
    outputs = run('cat "$TREK_INPUTS"')
    assert json.loads(outputs["stdout"]) == {"command": 'cat "$TREK_INPUTS"'}

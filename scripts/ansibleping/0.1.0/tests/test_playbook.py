"""Tests of ansibleping.yml: run with `pytest` in the script folder, as trek runs it
(ansible-playbook from the script's environment, which has ansible-core)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import Marvin

from blcks.tools.ansible import AnsibleRunner

FOLDER = Path(__file__).resolve().parents[1]


def run(inputs: dict[str, Any], marvin: Marvin | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"taskId": "T-1", "body": json.dumps(inputs), "context": {}}
    if marvin is not None:
        event.update(token=marvin.token, context={"marvin_url": marvin.url})
    return AnsibleRunner().run(str(FOLDER), "ansibleping", event, 120.0)


def test_pings_localhost() -> None:
    outputs = run({"localhost": True})
    assert outputs["rc"] == 0, outputs["stdout"] + outputs["stderr"]
    assert "127.0.0.1                  : ok=1 " in outputs["stdout"]
    assert json.loads(outputs["vars"]) == {}


def test_runs_the_command_after_the_ping() -> None:
    outputs = run({"localhost": True, "command": "echo pong-$((20 + 22))"})
    assert outputs["rc"] == 0, outputs["stdout"] + outputs["stderr"]
    assert json.loads(outputs["vars"]) == {"command_rc": 0, "command_stdout": "pong-42"}


def test_a_failing_command_is_a_result_with_rc_2() -> None:
    outputs = run({"localhost": True, "command": "exit 5"})
    assert outputs["rc"] == 2
    assert "failed=1" in outputs["stdout"]


def test_resource_ids_are_resolved_through_marvin(marvin: Marvin) -> None:
    outputs = run({"resourceIds": ["S-far"]}, marvin)
    assert outputs["rc"] == 4  # resolved to far-away (127.0.0.1), which no SSH answers
    assert "far-away                   : ok=0    changed=0    unreachable=1" in outputs["stdout"]

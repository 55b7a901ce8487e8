"""Tests of checkdisk.yml: run with `pytest` in the script folder, as trek runs it
(ansible-playbook on 127.0.0.1 with a local connection)."""

import json
from pathlib import Path

from blcks.tools.ansible import AnsibleRunner

FOLDER = Path(__file__).resolve().parents[1]


def run(**inputs):
    event = {"taskId": "test", "body": json.dumps({"localhost": True, **inputs})}
    return AnsibleRunner().run(str(FOLDER), "checkdisk", event, 120.0)


def test_within_the_limit_passes():
    outputs = run(mount="/", used_percent=40, max_used_percent=90)
    assert outputs["rc"] == 0, outputs["stdout"] + outputs["stderr"]
    assert "/ is 40% full, within the limit of 90%" in outputs["stdout"]
    verdict = {"disk_used": 40, "disk_limit": 90, "disk_verdict": "ok"}
    assert json.loads(outputs["vars"]) == verdict


def test_over_the_limit_fails_the_host_and_keeps_the_verdict():
    outputs = run(mount="/", used_percent=97, max_used_percent=90)
    assert outputs["rc"] == 2
    assert "/ is 97% full, over the limit of 90%" in outputs["stdout"]
    assert json.loads(outputs["vars"])["disk_verdict"] == "over"


def test_a_missing_mount_point_fails():
    outputs = run(mount="/no/such/mount", used_percent=1, max_used_percent=90)
    assert outputs["rc"] == 2
    assert "failed=1" in outputs["stdout"]

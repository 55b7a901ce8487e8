"""Tests of diskrecord.tf: run with `pytest` in the script folder, as trek runs it
(terraform init + apply/destroy in a temporary copy)."""

import json
from pathlib import Path

from blcks.tools.terraform import TerraformRunner

FOLDER = Path(__file__).resolve().parents[1]


def run(**inputs):
    event = {"body": json.dumps(inputs), "context": {"timeout": 120}}
    return TerraformRunner().run(str(FOLDER), "diskrecord", event, 120.0)


def test_apply_records_the_reading_and_destroy_removes_it():
    applied = run(mount="/", used_percent=40)
    assert applied["outputs"]["reading"] == {"mount": "/", "used_percent": 40}
    assert applied["outputs"]["reading_id"]
    assert "Resources: 1 added, 0 changed, 0 destroyed." in applied["stdout"]
    state = applied["tfstate"]
    again = run(mount="/", used_percent=41, tfstate=state)
    assert "Resources: 0 added, 1 changed, 0 destroyed." in again["stdout"]
    assert again["outputs"]["reading_id"] == applied["outputs"]["reading_id"]
    gone = run(mount="/", used_percent=41, terraform_command="destroy", tfstate=again["tfstate"])
    assert "Resources: 1 destroyed." in gone["stdout"]
    assert gone["tfstate"]["resources"] == []

"""Tests of diskusage.sh: run with `pytest` in the script folder, as trek runs it."""

import json
import shutil
from pathlib import Path

from blcks.tools.shell import ShellRunner

FOLDER = Path(__file__).resolve().parents[1]


def run(inputs):
    event = {"body": json.dumps(inputs), "context": {"timeout": 30}}
    return ShellRunner().run(str(FOLDER), "diskusage", event, 30.0)


def test_measures_the_mount_point_as_df_does():
    outputs = run({"mount": str(FOLDER)})
    usage = shutil.disk_usage(FOLDER)
    assert sorted(outputs) == ["available_kb", "mount", "used_percent"]
    assert 0 <= outputs["used_percent"] <= 100
    assert abs(outputs["available_kb"] - usage.free // 1024) < 256 * 1024  # others write too
    assert FOLDER.is_relative_to(outputs["mount"])

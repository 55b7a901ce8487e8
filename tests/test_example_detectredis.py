"""The example project: its detectredis tests pass, and its local inputs fit together."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from conftest import EXAMPLE, REPO, require_tool

from trek_tasks.marvin.inventory import Inventory
from trek_tasks.project import Project

SCRIPT = EXAMPLE / "src" / "blcks" / "detectredis"


def test_the_detectredis_tests_pass_against_real_redis_and_marvin() -> None:
    require_tool("redis-server")
    pytest.importorskip("redis", reason="the redis package (pip install redis) is not installed")
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", str(SCRIPT)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, summary


def test_the_example_inputs_point_at_its_inventory() -> None:
    project = Project.load(EXAMPLE)
    inventory = Inventory.load(EXAMPLE / "inputs" / "inventory.yml")
    bindings = {
        (e.key, b["property"]): b["value"] for e in project.workflow.edges for b in e.binding
    }
    tag = bindings[("0-2", "tag_name")]
    checked = [host for host in inventory.hosts if tag in host.tags]
    assert len(checked) == 2
    assert {(h.ip, h.port) for h in checked} == {("127.0.0.1", 6379), ("127.0.0.1", 1)}
    data = yaml.safe_load((EXAMPLE / "inputs" / "data.yml").read_text(encoding="utf-8"))
    assert data["4-5"]["bot_infos.0"]["value"] in {c.id for c in inventory.channels}

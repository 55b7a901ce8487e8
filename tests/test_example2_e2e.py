"""The second example (example/host.check.disk) end to end on embedded defaults: a shell,
an ansible (localhost: true), a terraform (terraform_data) and a blcks node, with a
branch on the playbook's result; real processes, real tools, the real CLI and doit."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, copy_sources, require_tool, run_module, set_config

from trek_tasks.environment import Environment
from trek_tasks.project import Project

EXAMPLE2 = REPO / "example" / "host.check.disk"
PLAYBOOK = Path("src/ansible/checkdisk/checkdisk.yml")
GRAPH = Path("src/graph.yml")


def trek(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = run_module("trek_tasks", *args, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def doit(*args: str, cwd: Path) -> list[str]:
    """The tasks ``doit`` ran (``.  name``; up-to-date ones print ``-- name``)."""
    done = run_module("doit", *args, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return sorted(line[3:] for line in done.stdout.splitlines() if line.startswith(".  "))


def nodes(project: Path) -> dict[str, Any]:
    record = json.loads((project / ".trek" / "runs" / "last.json").read_text())
    return {node["id"]: node for node in record["nodes"]}


@pytest.fixture
def example(tmp_path: Path) -> Iterator[Path]:
    require_tool("terraform")
    project = copy_sources(EXAMPLE2, tmp_path / EXAMPLE2.name)
    set_config(project, router_port=0)
    yield project
    run_module("trek_tasks", "shutdownenv", "-a", "-p", str(project), cwd=project)
    assert Environment(Project.load(project)).leftovers() == []


def test_validates_and_packs_one_zip_per_script(example: Path) -> None:
    trek("install", cwd=example)
    assert trek("validate", cwd=example).stdout == "Valid. [host.check.disk]\n"
    trek("pack", "-a", cwd=example)
    assert sorted(p.name for p in (example / "bin").iterdir()) == [
        "ansible.checkdisk-0.1.0.zip",
        "host.check.disk-0.1.0.zip",
        "shell.diskusage-0.1.0.zip",
        "terraform.diskrecord-0.1.0.zip",
    ]


def test_within_the_limit_the_reading_is_recorded_and_reported(example: Path) -> None:
    out = trek("run", "--once", cwd=example).stdout
    assert "[FINISH] id: 3, type: action, scriptId: checkdisk, scriptType: ansible\n" in out
    assert "[FINISH] id: 5, type: action, scriptId: diskrecord, scriptType: terraform\n" in out
    run = nodes(example)
    assert [run[i]["status"] for i in ("2", "3", "4", "5", "6", "1")] == ["done"] * 6
    assert run["7"]["status"] == "skipped"
    used = run["2"]["outputs"]["used_percent"]
    assert run["2"]["outputs"]["mount"] == "/"
    assert run["3"]["outputs"]["rc"] == 0
    verdict = {"disk_used": used, "disk_limit": 95, "disk_verdict": "ok"}
    assert json.loads(run["3"]["outputs"]["vars"]) == verdict
    recorded = run["5"]["outputs"]["outputs"]
    assert recorded["reading"] == {"mount": "/", "used_percent": used}
    sent = f"  [ops] Disk / at {used}%, within the limit (reading {recorded['reading_id']})\n"
    assert "Messages sent:\n" + sent in out
    assert "Closing environment...\n" in out  # --once leaves nothing running


def test_over_the_limit_the_failed_check_takes_the_alert_branch(example: Path) -> None:
    graph = example / GRAPH
    graph.write_text(graph.read_text().replace("value: 95", "value: -1"))
    out = trek("run", "--once", cwd=example).stdout
    run = nodes(example)
    assert run["3"]["outputs"]["rc"] == 2
    assert [run[i]["status"] for i in ("5", "6", "7")] == ["skipped", "skipped", "done"]
    assert "edge 4-5: nodes.3.rc (2) == 0 is false" in out
    used = run["2"]["outputs"]["used_percent"]
    assert re.search(
        rf"\n  \[ops\] Disk alert\n/ is {used}% full, over the limit: "
        rf'\{{"disk_limit": -1, "disk_used": {used}, "disk_verdict": "over"\}}\n',
        out,
    )


def test_editing_only_the_playbook_reruns_only_its_chain(example: Path) -> None:
    doit("run", cwd=example)
    assert doit("run", cwd=example) == []
    assert doit("test", cwd=example) == ["test:checkdisk", "test:diskrecord", "test:diskusage"]
    playbook = example / PLAYBOOK
    playbook.write_text(playbook.read_text().replace("The usage is within", "Usage within"))
    assert doit("run", cwd=example) == ["execute", "up:checkdisk"]
    assert doit("test", cwd=example) == ["test:checkdisk"]
    assert nodes(example)["3"]["status"] == "done"
    assert "TASK [Usage within the limit]" in nodes(example)["3"]["outputs"]["stdout"]


def test_a_playbook_fault_found_at_run_time_names_the_node(example: Path) -> None:
    playbook = example / PLAYBOOK
    playbook.write_text(playbook.read_text().replace("builtin.stat:", "builtin.statt:"))
    trek("install", cwd=example)
    trek("validate", cwd=example)  # the YAML is fine: ansible finds this when it runs
    done = run_module("trek_tasks", "run", "--once", cwd=example)
    assert done.returncode == 1
    error = next(line for line in done.stderr.splitlines() if line.startswith("trek: error: "))
    assert error == (
        "trek: error: Workflow [host.check.disk] failed at node 3 (checkdisk): failed with "
        "HTTP 500: ansible script 'checkdisk': src/ansible/checkdisk/checkdisk.yml:8:7: "
        "couldn't resolve module/action 'ansible.builtin.statt'. This often indicates a "
        "misspelling, missing collection, or incorrect module path."
    )
    assert nodes(example)["5"]["status"] == "not run"

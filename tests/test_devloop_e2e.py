"""The incremental dev loop through the real ``doit`` command: exactly the needed work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from trek_tasks.cli import main
from trek_tasks.environment import Environment
from trek_tasks.project import Project

HANDLER = Path("src/blcks/detectredis/handler/handler.py")


def doit(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "doit", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def executed(output: str) -> list[str]:
    """Tasks doit ran (``.  name``); up-to-date ones print ``-- name``."""
    return sorted(line[3:] for line in output.splitlines() if line.startswith(".  "))


@pytest.fixture
def running(project: Path, redis_server: int) -> Iterator[Path]:
    """The example with its environment up and one run done."""
    config = project / ".trek" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "router_port": 0}))
    inventory = project / "inputs" / "inventory.yml"
    data = yaml.safe_load(inventory.read_text())
    data["hosts"][0]["port"] = redis_server
    inventory.write_text(yaml.safe_dump(data))
    doit(project, "run")
    yield project
    main(["shutdownenv", "-a", "-p", str(project)])


def test_everything_up_to_date_runs_nothing(running: Path) -> None:
    assert executed(doit(running, "run").stdout) == []


def test_editing_a_handler_restarts_it_and_reruns(running: Path) -> None:
    handler = running / HANDLER
    handler.write_text(handler.read_text() + "\n# edited\n")
    out = doit(running, "run").stdout
    assert executed(out) == ["execute", "up:detectredis"]
    assert "restart detectredis: handler/handler.py changed" in out
    assert executed(doit(running, "run").stdout) == []


def test_a_killed_script_is_restarted_alone(running: Path) -> None:
    handle = Environment(Project.load(running)).handle("detectredis")
    assert handle is not None
    os.killpg(handle.state["pid"], signal.SIGKILL)
    out = doit(running, "run").stdout
    assert executed(out) == ["up:detectredis"]
    assert "restart detectredis: process lost" in out


def test_changing_one_scripts_envs_restarts_only_it(running: Path) -> None:
    config = running / "src/blcks/detectredis/.trek/config.json"
    config.write_text(json.dumps({"envs": {"REDIS_HINT": "1"}}))
    out = doit(running, "run").stdout
    assert executed(out) == ["execute", "up:detectredis"]
    assert "restart detectredis: config envs changed" in out


def test_editing_the_graph_reruns_without_restarts(running: Path) -> None:
    graph = running / "src" / "graph.yml"
    graph.write_text(graph.read_text().replace("title: Redis monitor", "title: Redis watch"))
    assert executed(doit(running, "run").stdout) == ["execute", "validate"]


def test_comment_and_layout_edits_rerun_and_restart_nothing(running: Path) -> None:
    for name in ("src/graph.yml", "inputs/data.yml", "inputs/event.yml", "inputs/inventory.yml"):
        path = running / name
        path.write_text("# a comment\n\n" + path.read_text() + "\n# and one more\n\n")
    assert executed(doit(running, "run").stdout) == ["validate"]  # it reads the bytes
    inventory = running / "inputs" / "inventory.yml"
    inventory.write_text(inventory.read_text().replace("name: web", "name: web-2"))
    out = doit(running, "run").stdout
    assert executed(out) == ["execute", "up:marvin", "validate"]  # validate reads the bytes
    assert "restart local Marvin: inventory.yml changed" in out


def test_reuse_marks_reused_nodes_and_runs_from_the_change(
    running: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    # The fixture's run tagged S-redis-down, so what detectredis reads has changed since
    # it ran: it runs again (and so does what follows it); then nothing changes any more.
    assert main(["run", "--reuse", "-p", str(running)]) == 0
    out = capsys.readouterr().out
    assert "[FINISH] id: 2, type: action, scriptId: detectredis, scriptType: blcks" in out
    assert main(["run", "--reuse", "-p", str(running)]) == 0
    out = capsys.readouterr().out
    assert "[REUSE] id: 2, type: action, scriptId: detectredis, scriptType: blcks" in out
    assert "[REUSE] id: 3, type: action, scriptId: blckssettags, scriptType: blcks" in out
    assert "[REUSE] id: 5, type: action, scriptId: notification, scriptType: blcks" in out
    graph = running / "src" / "graph.yml"
    graph.write_text(graph.read_text().replace("The following host", "These hosts"))
    assert main(["run", "--reuse", "-p", str(running)]) == 0
    out = capsys.readouterr().out
    assert "[REUSE] id: 2, type: action, scriptId: detectredis, scriptType: blcks" in out
    assert "[REUSE] id: 3, type: action, scriptId: blckssettags, scriptType: blcks" in out
    assert "[FINISH] id: 5, type: action, scriptId: notification, scriptType: blcks" in out
    assert "  [ops] These hosts redis connection fail: " in out

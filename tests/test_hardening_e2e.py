"""What a new user tried and found wrong (issue 9), end to end through the real CLIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EXAMPLE, REPO, free_port, run_module, set_config, set_redis_ports

from trek_tasks.cli import main
from trek_tasks.project import copy_sources

HANDLER = Path("src/blcks/detectredis/handler/handler.py")


def nodes_of_last_run(project: Path) -> dict[str, Any]:
    record = json.loads((project / ".trek" / "runs" / "last.json").read_text())
    return {node["id"]: node for node in record["nodes"]}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_module("trek_tasks", *args, cwd=cwd)


def doit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_module("doit", *args, cwd=cwd)


def executed(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Tasks doit's default reporter says it executed (``.  name``)."""
    return [line[3:].strip() for line in result.stdout.splitlines() if line.startswith(".  ")]


@pytest.fixture
def example(example_on_redis: Path) -> Path:
    return example_on_redis


def test_two_copies_with_the_same_router_port_run_side_by_side(
    tmp_path: Path, redis_server: int
) -> None:
    port = free_port()
    copies = []
    for name in ("one", "two"):
        copy = copy_sources(EXAMPLE, tmp_path / name / EXAMPLE.name)
        set_config(copy, router_port=port)
        set_redis_ports(copy, {"S-redis-local": redis_server})
        copies.append(copy)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "trek_tasks", "run", "--once"],
            cwd=copy,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for copy in copies
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out + err
        assert "401" not in out + err
    for copy in copies:
        assert nodes_of_last_run(copy)["2"]["outputs"]["fail_hosts_count"] == 1
    said = "\n".join(out for out, _ in outputs)
    assert f"router_port {port}" in said  # the one that moved says where it went


def test_a_new_host_in_the_inventory_is_not_reused(example: Path) -> None:
    assert main(["run", "-p", str(example)]) == 0
    inventory = example / "inputs" / "inventory.yml"
    data = yaml.safe_load(inventory.read_text())
    data["hosts"].append(
        {"id": "S-redis-new", "name": "redis-new", "ip": "127.0.0.1", "port": 2, "tags": ["redis"]}
    )
    inventory.write_text(yaml.safe_dump(data))
    assert main(["run", "--reuse", "-p", str(example)]) == 0
    nodes = nodes_of_last_run(example)
    assert nodes["2"]["status"] == "done"
    assert nodes["2"]["outputs"]["fail_hosts_count"] == 2


def test_comment_edits_swap_files_and_deleted_images(example: Path) -> None:
    first = doit("run", cwd=example)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "execute" in executed(first)
    graph = example / "src" / "graph.yml"
    graph.write_text("# a comment only\n" + graph.read_text())
    (example / HANDLER).parent.joinpath(".handler.py.swp").write_text("editor state")
    again = doit("run", cwd=example)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "execute" not in executed(again)
    assert not [name for name in executed(again) if name.startswith("up:")]
    drawn = doit("graph", cwd=example)
    assert drawn.returncode == 0, drawn.stdout + drawn.stderr
    png = example / ".trek" / "graph.png"
    if png.is_file():  # graphviz installed
        png.unlink()
        redrawn = doit("graph", cwd=example)
        assert "graph" in executed(redrawn)
        assert png.is_file()


def test_an_own_script_without_a_handler_fails_validation(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / HANDLER).unlink()
    assert main(["validate", "-p", str(project)]) == 2
    err = capsys.readouterr().err
    assert "detectredis" in err and "handler/handler.py" in err


def test_gc_frees_environments_of_deleted_projects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    monkeypatch.setenv("TREK_HOME", str(store))
    gone = copy_sources(EXAMPLE, tmp_path / "gone" / EXAMPLE.name)
    kept = copy_sources(EXAMPLE, tmp_path / "kept" / EXAMPLE.name)
    (gone / "src" / "blcks" / "detectredis" / "handler" / "requirements.txt").write_text(
        "redis>=5\npackaging\n"
    )
    for copy in (gone, kept):
        assert main(["install", "-p", str(copy)]) == 0
        assert main(["initenv", "-p", str(copy)]) == 0
        assert main(["shutdownenv", "-a", "-p", str(copy)]) == 0
    envs_before = {p.name for p in (store / "envs").iterdir() if not p.name.startswith(".")}
    import shutil

    shutil.rmtree(gone.parent)
    capsys.readouterr()
    assert main(["gc"]) == 0
    out = capsys.readouterr().out
    envs_after = {p.name for p in (store / "envs").iterdir() if not p.name.startswith(".")}
    assert len(envs_after) == len(envs_before) - 1
    assert "freed" in out.lower() and "MB" in out


def test_ci_stops_only_what_it_started() -> None:
    text = (REPO / ".ci" / "run").read_text()
    assert "pkill" not in text and "killall" not in text

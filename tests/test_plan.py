"""`trek plan` and `trek why` against the real example: what they say would run is what
`trek run` and `doit` then run (their own output says which tasks executed), and after
that nothing is left to plan."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml
from conftest import run_module, trek_process

HANDLER = Path("src/blcks/detectredis/handler/handler.py")
WORKFLOW_ZIP = "bin/host.detect.redis-0.1.0.zip"


def trek(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = trek_process(*args, "-p", str(project), cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def planned(project: Path, *tasks: str) -> list[str]:
    """`trek plan`'s lines (stdout holds nothing else)."""
    return trek(project, "plan", *tasks).stdout.splitlines()


def executed(output: str) -> list[str]:
    """The tasks a run executed, as doit's reporter (and trek's with -v) lists them."""
    return [line[3:] for line in output.splitlines() if line.startswith(".  ")]


def doit(project: Path, *tasks: str) -> list[str]:
    """Plain `doit` in the project (its dodo.py), as a user runs it: the tasks executed,
    sorted (doit may take independent tasks in either order)."""
    done = run_module("doit", *tasks, cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    return sorted(executed(done.stdout))


def names(plan: list[str]) -> list[str]:
    """The tasks of `trek plan`'s lines, sorted."""
    return sorted(line.split(": ")[0] for line in plan)


def edit_handler(project: Path) -> None:
    path = project / HANDLER
    path.write_text(path.read_text() + "\n# edited\n")


def test_after_a_handler_edit_plan_lists_what_run_then_runs(example_on_redis: Path) -> None:
    project = example_on_redis
    trek(project, "run")
    assert planned(project) == []
    edit_handler(project)
    assert planned(project) == [
        "up:detectredis: handler/handler.py changed",
        "execute: src/blcks/detectredis/handler/handler.py changed",
    ]
    assert executed(trek(project, "-v", "run").stdout) == ["up:detectredis", "execute"]
    assert planned(project) == []


def set_binding(project: Path) -> None:
    path = project / "src" / "graph.yml"
    path.write_text(path.read_text().replace("'redis:unreachable'", "'redis:lost'"))


def set_data(project: Path) -> None:
    path = project / "inputs" / "data.yml"
    path.write_text(path.read_text().replace("value: C-ops", "value: C-nope"))


def set_inventory(project: Path) -> None:
    path = project / "inputs" / "inventory.yml"
    inventory = yaml.safe_load(path.read_text())
    inventory["hosts"][0]["name"] += "-renamed"
    path.write_text(yaml.safe_dump(inventory))


def stop_detectredis(project: Path) -> None:
    trek(project, "shutdownenv", "detectredis")


EDITS: list[tuple[Callable[[Path], None], list[str]]] = [
    (
        edit_handler,
        [
            "up:detectredis: handler/handler.py changed",
            "execute: src/blcks/detectredis/handler/handler.py changed",
        ],
    ),
    (
        set_binding,
        [
            "validate: src/graph.yml changed",
            "execute: src/graph.yml changed (edge 2-3 binding)",
        ],
    ),
    (
        set_data,
        ["validate: inputs/data.yml changed", "execute: inputs/data.yml changed (edge 4-5)"],
    ),
    (
        set_inventory,
        [
            "validate: inputs/inventory.yml changed",
            "up:marvin: inventory.yml changed",
            "execute: inputs/inventory.yml changed",
        ],
    ),
    (stop_detectredis, ["up:detectredis: not running"]),
]


def test_plan_then_doit_agree_for_each_kind_of_edit(example_on_redis: Path) -> None:
    project = example_on_redis
    doit(project)
    assert planned(project) == []
    for edit, lines in EDITS:
        edit(project)
        plan = planned(project)
        assert plan == lines, edit.__name__
        assert doit(project) == names(plan), edit.__name__
        assert planned(project) == [], edit.__name__


def test_plan_of_named_tasks_names_missing_and_changed_files(project: Path) -> None:
    first = planned(project, "pack")
    assert [line.split(": ")[0] for line in first] == [
        "install",
        "validate",
        "pack:workflow",
        "pack:detectredis",
    ]
    assert first[1:] == [
        "validate: never run",
        "pack:workflow: never run",
        "pack:detectredis: never run",
    ]
    assert doit(project, "pack") == names(first)
    assert planned(project, "pack") == []
    (project / WORKFLOW_ZIP).unlink()
    edit_handler(project)
    assert planned(project, "pack") == [
        f"pack:workflow: {WORKFLOW_ZIP} missing",
        "pack:detectredis: src/blcks/detectredis/handler/handler.py changed",
    ]
    assert doit(project, "pack") == ["pack:detectredis", "pack:workflow"]
    assert planned(project, "pack") == []


def test_a_deploy_runs_because_the_pack_it_uploads_runs(example_on_redis: Path) -> None:
    project = example_on_redis
    doit(project, "deploy", "overwrite=1")
    assert planned(project, "deploy") == []
    edit_handler(project)
    plan = planned(project, "deploy")
    assert plan == [
        "pack:detectredis: src/blcks/detectredis/handler/handler.py changed",
        "deploy:detectredis: pack:detectredis runs",
    ]
    assert doit(project, "deploy", "overwrite=1") == names(plan)
    assert planned(project, "deploy") == []


def test_plan_json_and_why(project: Path) -> None:
    data = json.loads(trek(project, "plan", "--json", "validate").stdout)
    assert data == {
        "tasks": [
            {"task": "install", "reason": data["tasks"][0]["reason"]},
            {"task": "validate", "reason": "never run"},
        ],
        "nodes": [],
    }
    assert data["tasks"][0]["reason"].endswith(
        "; the tasks after it are planned from the scripts installed now"
    )
    doit(project, "validate")
    assert trek(project, "why", "validate").stdout == "validate: up to date\n"
    (project / "src" / "graph.yml").write_text(
        (project / "src" / "graph.yml").read_text() + "# a comment\n"
    )
    assert trek(project, "why", "pack:workflow").stdout.splitlines() == [
        "pack:workflow: never run",
        "  after validate: src/graph.yml changed",
    ]
    node = trek(project, "why", "0").stdout
    assert node == "node 0 (trigger): runs no script; `trek run` always passes it\n"


def test_a_task_saved_by_doits_config_changed_says_so(project: Path) -> None:
    """A dep file of an older trek, whose settings check kept only a digest."""
    doit(project, "validate")
    db = sqlite3.connect(project / ".trek" / "doit.db")
    with db:
        (text,) = db.execute("select task_data from doit where task_id='validate'").fetchone()
        data = json.loads(text)
        data["_values_:"] = {"_config_changed": "0123456789abcdef"}
        db.execute("update doit set task_data=? where task_id='validate'", (json.dumps(data),))
    db.close()
    assert planned(project, "validate") == ["validate: settings saved by an older trek"]
    assert doit(project, "validate") == ["validate"]
    assert planned(project, "validate") == []


def test_plan_and_why_write_nothing(project: Path) -> None:
    """Not even doit's dep file: a check that would change it (doit forgets a task whose
    checker changed) is rolled back."""

    def files() -> dict[str, bytes]:
        found = {}
        for path in sorted(project.rglob("*")):
            rel = path.relative_to(project).as_posix()
            if path.is_file() and not rel.endswith(".trek/workflow.json"):
                found[rel] = path.read_bytes()
        return found

    doit(project, "pack")
    edit_handler(project)
    before = files()
    for args in (("plan",), ("plan", "--reuse"), ("plan", "pack"), ("why", "2"), ("why", "up")):
        trek(project, *args)
    assert files() == before


def test_why_of_an_unknown_name_lists_the_tasks_and_nodes(project: Path) -> None:
    done = trek_process("why", "nope", "-p", str(project), cwd=project)
    assert done.returncode == 2
    line = done.stderr.splitlines()[-1]
    assert line.startswith("trek: error: no task or node 'nope'; tasks: build, ")
    assert ", execute, " in line and ", up:detectredis, " in line
    assert line.endswith("; nodes: 0, 1, 2, 3, 4, 5")
    done = trek_process("plan", "nope", "-p", str(project), cwd=project)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith("trek: error: no task nope; the tasks are ")


def test_plan_reuse_says_which_nodes_run_reuse_then_does(example_on_redis: Path) -> None:
    project = example_on_redis
    trek(project, "run")
    trek(project, "run", "--reuse")  # the state blckssettags leaves is there now
    edit_handler(project)
    nodes = json.loads(trek(project, "plan", "--reuse", "--json").stdout)["nodes"]
    assert nodes[0] == {
        "node": "2",
        "script": "detectredis",
        "action": "run",
        "reason": "its code changed (files, envs, environment or SDK)",
    }
    assert trek(project, "why", "2").stdout == (
        "node 2 (detectredis): runs: its code changed (files, envs, environment or SDK)"
        " (under --reuse; without it every node runs)\n"
    )
    trek(project, "run", "--reuse")
    record = json.loads((project / ".trek" / "runs" / "last.json").read_text())
    status = {node["id"]: node["status"] for node in record["nodes"]}
    said = {"run": "done", "reuse": "reused"}
    assert {n["node"]: said[n["action"]] for n in nodes} == {n: status[n] for n in ("2", "3", "5")}

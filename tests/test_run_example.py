"""The example workflow end to end: real redis-server, real script processes, real local Marvin."""

from __future__ import annotations

import fcntl
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from trek_tasks.cli import main
from trek_tasks.environment import Environment
from trek_tasks.errors import StepFailed
from trek_tasks.marvin.client import MarvinClient
from trek_tasks.project import Project

HANDLER = Path("src/blcks/detectredis/handler/handler.py")


def set_config(project: Path, **values: Any) -> None:
    path = project / ".trek" / "config.json"
    config = json.loads(path.read_text())
    config.update(values)
    path.write_text(json.dumps(config))


def set_redis_ports(project: Path, ports: dict[str, int]) -> None:
    path = project / "inputs" / "inventory.yml"
    inventory = yaml.safe_load(path.read_text())
    for host in inventory["hosts"]:
        if host["id"] in ports:
            host["port"] = ports[host["id"]]
    path.write_text(yaml.safe_dump(inventory))


def error_line(err: str) -> str:
    """The first error line (validation warnings may come before it)."""
    return next(line for line in err.splitlines() if line.startswith("trek: error: "))


def marvin_get(project: Path, path: str) -> Any:
    env = Environment(Project.load(project))
    return MarvinClient(env.marvin_url, env.token()).get(path)


def last_run(project: Path) -> dict[str, Any]:
    record = json.loads((project / ".trek" / "runs" / "last.json").read_text())
    return {node["id"]: node for node in record["nodes"]}


@pytest.fixture
def example(project: Path, redis_server: int) -> Iterator[Path]:
    """The example with its reachable host on the test's redis-server; shut down after."""
    set_config(project, router_port=0)
    set_redis_ports(project, {"S-redis-local": redis_server})
    yield project
    main(["shutdownenv", "-a", "-p", str(project)])
    assert Environment(Project.load(project)).leftovers() == []


def test_one_host_down_is_tagged_and_reported(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-p", str(example)]) == 0
    out = capsys.readouterr().out
    assert out.index("Workflow [host.detect.redis] start...") < out.index(
        "Done. [host.detect.redis]"
    )
    nodes = last_run(example)
    assert nodes["2"]["outputs"] == {
        "fail_hosts_count": 1,
        "fail_hosts": [{"id": "S-redis-down", "ip": "127.0.0.1", "name": "redis-down"}],
    }
    assert [nodes[i]["status"] for i in ("3", "4", "5", "1")] == ["done"] * 4
    tagged = marvin_get(example, "/api/v1/hosts?search=tag:redis:unreachable")
    assert [host["id"] for host in tagged] == ["S-redis-down"]
    messages = marvin_get(example, "/api/v1/messages")
    assert len(messages) == 1
    assert messages[0]["channel_id"] == "C-ops"
    assert "S-redis-down" in messages[0]["message"]
    assert "Messages sent:\n  [ops] The following host redis connection fail: " in out


def test_all_hosts_up_takes_the_terminator_branch(
    example: Path, redis_server: int, capsys: pytest.CaptureFixture[str]
) -> None:
    set_redis_ports(example, {"S-redis-down": redis_server})
    assert main(["run", "-p", str(example)]) == 0
    nodes = last_run(example)
    assert nodes["2"]["outputs"] == {"fail_hosts_count": 0, "fail_hosts": []}
    assert nodes["5"]["status"] == "skipped"
    assert nodes["1"]["status"] == "done"
    assert marvin_get(example, "/api/v1/messages") == []
    assert "Messages sent:" not in capsys.readouterr().out


def test_shutdownenv_all_leaves_no_process_even_without_state(example: Path) -> None:
    assert main(["initenv", "-p", str(example)]) == 0
    env = Environment(Project.load(example))
    assert len(env.leftovers()) == 4  # three scripts and the local Marvin
    for state in (example / ".trek" / "env").glob("*.json"):
        state.unlink()
    assert main(["shutdownenv", "-a", "-p", str(example)]) == 0
    assert env.leftovers() == []


def test_a_handler_that_does_not_import_is_reported(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (example / HANDLER).write_text("def process(:\n")
    assert main(["run", "-p", str(example)]) == 1
    err = capsys.readouterr().err
    assert error_line(err) == (
        "trek: error: detectredis: detectredis did not start: its handler failed to import"
    )
    assert "SyntaxError" in err


def test_a_crashing_script_stops_the_run_with_its_log(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = example / HANDLER
    handler.write_text(
        handler.read_text().replace(
            "    hosts_manager = ",
            "    raise RuntimeError('redis client exploded')\n    hosts_manager = ",
        )
    )
    assert main(["run", "-p", str(example)]) == 1
    err = capsys.readouterr().err
    assert error_line(err) == (
        "trek: error: Workflow [host.detect.redis] failed at node 2 (detectredis): "
        "failed with HTTP 500: RuntimeError: redis client exploded"
    )
    assert "--- last lines of detectredis's log ---\n" in err
    assert "Traceback" in err
    assert last_run(example)["3"]["status"] == "not run"


def test_a_hanging_script_times_out(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_config(example, action_timeout=1)
    handler = example / HANDLER
    handler.write_text(
        handler.read_text().replace(
            "    hosts_manager = ", "    import time\n    time.sleep(30)\n    hosts_manager = "
        )
    )
    assert main(["run", "-p", str(example)]) == 1
    assert error_line(capsys.readouterr().err) == (
        "trek: error: Workflow [host.detect.redis] failed at node 2 (detectredis): "
        "timed out after 1 s (action_timeout)"
    )


def test_router_port_in_use(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        set_config(example, router_port=port)
        assert main(["run", "-p", str(example)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"trek: error: router_port {port} is already in use; set another "
        "with `trek config router_port N` (0 picks a free port)"
    )


def test_a_stale_pid_file_is_not_trusted(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = example / ".trek" / "env" / "detectredis.json"
    state.parent.mkdir(parents=True)
    # The pid of this very test process: alive, but not a script server of ours.
    import os

    state.write_text(
        json.dumps(
            {
                "script_id": "detectredis",
                "runtime": "local",
                "ref": str(os.getpid()),
                "url": "http://127.0.0.1:1/",
                "state": {
                    "pid": os.getpid(),
                    "port": 1,
                    "token": "x",
                    "log_path": str(state.with_suffix(".log")),
                },
                "files": {},
                "env_key": "x",
            }
        )
    )
    assert main(["run", "-p", str(example)]) == 0
    assert "restart detectredis: process lost" in capsys.readouterr().out


def test_one_run_at_a_time(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = example / ".trek" / "run.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242")
        held.flush()
        assert main(["run", "-p", str(example)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "trek: error: another `trek run` is in progress on this project (pid 4242); "
        "wait for it or stop it"
    )


def test_data_yml_naming_a_missing_edge_is_bad_input(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = example / "inputs" / "data.yml"
    data.write_text(data.read_text().replace("4-5:", "4-9:"))
    assert main(["run", "-p", str(example)]) == 2
    err = capsys.readouterr().err
    assert "inputs/data.yml" in err and "4-9" in err


def test_restarting_one_script_leaves_the_others(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["initenv", "-p", str(example)]) == 0
    env = Environment(Project.load(example))
    before = {sid: env.handle(sid) for sid in env.started_ids()}
    handler = example / HANDLER
    handler.write_text(handler.read_text() + "\n# edited\n")
    capsys.readouterr()
    assert main(["run", "-p", str(example)]) == 0
    out = capsys.readouterr().out
    assert "restart detectredis: handler/handler.py changed" in out
    after = {sid: env.handle(sid) for sid in env.started_ids()}
    assert after["detectredis"].ref != before["detectredis"].ref
    assert after["notification"].ref == before["notification"].ref
    assert after["blckssettags"].ref == before["blckssettags"].ref


def test_runblcks_calls_one_script_against_the_local_marvin(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runblcks", "-p", str(example / "src/blcks/detectredis")]) == 0
    out = capsys.readouterr().out
    outputs = json.loads(out[out.index("{") :])
    assert outputs["fail_hosts_count"] == 1
    assert outputs["fail_hosts"][0]["id"] == "S-redis-down"


def test_logs_show_what_scripts_wrote(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-p", str(example)]) == 0
    capsys.readouterr()
    assert main(["logs", "detectredis", "--tail", "3", "-p", str(example)]) == 0
    log = (example / ".trek" / "env" / "detectredis.log").read_text().splitlines()
    assert capsys.readouterr().out.splitlines() == log[-3:]
    assert any("inputParamsStr" in line for line in log)
    assert main(["logs", "nosuch", "-p", str(example)]) == 2
    assert capsys.readouterr().err == (
        "trek: error: ACTIONS: nosuch has no logs; start it with `trek initenv`\n"
    )


def test_the_test_task_runs_a_scripts_tests_once_per_content(example: Path) -> None:
    from trek_tasks.runner import run_tasks

    project = Project.load(example)
    assert run_tasks(project, ["test:detectredis"]) == ["test:detectredis"]
    assert run_tasks(project, ["test:detectredis"]) == []
    tests = example / "src/blcks/detectredis/tests/test_handler.py"
    tests.write_text(tests.read_text() + "\n\ndef test_added():\n    assert False\n")
    with pytest.raises(StepFailed, match="the tests of detectredis failed"):
        run_tasks(Project.load(example), ["test:detectredis"])

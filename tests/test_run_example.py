"""The example workflow end to end: real redis-server, real script processes, real local Marvin."""

from __future__ import annotations

import fcntl
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import set_config, set_redis_ports

from trek_tasks.cli import main
from trek_tasks.environment import Environment
from trek_tasks.errors import StepFailed
from trek_tasks.marvin.client import MarvinClient
from trek_tasks.project import Project

HANDLER = Path("src/blcks/detectredis/handler/handler.py")


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
def example(example_on_redis: Path) -> Path:
    return example_on_redis


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
    why = "edge 4-5: nodes.2.fail_hosts_count (0) > 0 is false"
    assert nodes["5"]["reason"] == why
    assert nodes["1"]["status"] == "done"
    assert marvin_get(example, "/api/v1/messages") == []
    out = capsys.readouterr().out
    assert "Messages sent:" not in out
    skip = f"[SKIP] id: 5, type: action, scriptId: notification ({why})"
    assert skip in out.splitlines()
    summary = out.splitlines()[out.splitlines().index("Summary:") + 1 :]
    assert [line.split()[0] for line in summary] == ["0", "2", "3", "4", "1", "5"]
    assert summary[-1].endswith(f" ms  {why}")
    assert main(["run", "--detail", "-p", str(example)]) == 0
    assert skip in capsys.readouterr().out.splitlines()


def test_a_notification_that_could_not_be_sent_is_a_warning(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = example / "inputs" / "data.yml"
    data.write_text(data.read_text().replace("value: C-ops", "value: C-nope"))
    assert main(["run", "-p", str(example)]) == 0
    out = capsys.readouterr().out.splitlines()
    notify = next(line for line in out if line.split()[:2] == ["5", "notification"])
    assert notify.split()[2] == "warning" and notify.endswith(" ms  status: failure")
    assert last_run(example)["5"]["outputs"] == {"status": "failure"}


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
    set_config(example, envs={})  # the blcks logger's json mode: a traceback is one field
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
    lines = err.splitlines()  # the traceback as lines, not one escaped JSON string
    assert "Traceback (most recent call last):" in lines
    assert "    raise RuntimeError('redis client exploded')" in lines
    assert "RuntimeError: redis client exploded" in lines
    assert "\\n" not in err
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


def marvin_port(project: Path) -> int:
    return int(json.loads((project / ".trek" / "env" / "marvin.json").read_text())["port"])


def test_a_taken_router_port_moves_the_local_marvin_and_says_so(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        set_config(example, router_port=port)
        assert main(["run", "-p", str(example)]) == 0
        moved = marvin_port(example)
        assert moved > port
        assert (
            f"router_port {port} is held by another program; "
            f"this project's local Marvin uses {moved}"
        ) in capsys.readouterr().out.splitlines()
        assert main(["run", "-p", str(example)]) == 0  # up to date: said once, at the move
        assert "is held by" not in capsys.readouterr().out


def other_example(tmp_path: Path, port: int) -> Environment:
    from conftest import EXAMPLE

    from trek_tasks.project import copy_sources

    other = copy_sources(EXAMPLE, tmp_path / "other" / EXAMPLE.name)
    set_config(other, router_port=port)
    return Environment(Project.load(other))


def test_the_marvin_holding_router_port_is_named_by_its_project(
    example: Path, tmp_path: Path
) -> None:
    from conftest import free_port

    from trek_tasks.events import attached
    from trek_tasks.progress import MarvinMoved

    port = free_port()
    holder = other_example(tmp_path, port)
    set_config(example, router_port=port)
    env = Environment(Project.load(example))
    said: list[object] = []
    try:
        holder.marvin_up()
        with attached(said.append):
            url = env.marvin_up()
        moved = marvin_port(example)
        assert said == [MarvinMoved(port, moved, holder.identity, "marvin")]
        assert url == env.marvin_url == f"http://127.0.0.1:{moved}"
        assert holder.marvin_url == f"http://127.0.0.1:{port}"
        assert MarvinClient(url, env.token()).get("/api/v1/messages") == []
    finally:
        holder.shutdown_all()


def test_losing_the_race_for_router_port_tries_the_next_one(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trek_tasks.events import attached
    from trek_tasks.progress import MarvinMoved
    from trek_tasks.runtimes import process

    # Taken after the check: the server itself finds the port in use (PORT_IN_USE).
    monkeypatch.setattr(process, "can_listen", lambda port: True)
    said: list[object] = []
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        set_config(example, router_port=port)
        env = Environment(Project.load(example))
        with attached(said.append):
            env.marvin_up()
    assert said == [MarvinMoved(port, marvin_port(example))]
    assert env.marvin_stale_reason() is None


def test_a_changed_router_port_restarts_the_local_marvin(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import free_port

    assert main(["run", "-p", str(example)]) == 0
    port = free_port()
    set_config(example, router_port=port)
    assert Environment(Project.load(example)).marvin_stale_reason() == "router_port changed"
    capsys.readouterr()
    assert main(["run", "-p", str(example)]) == 0
    assert "restart local Marvin: router_port changed" in capsys.readouterr().out.splitlines()
    assert marvin_port(example) == port


def test_the_local_marvin_is_used_only_once_it_proves_it_is_ours(
    example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import free_port

    env = Environment(Project.load(example))
    env.marvin_up()
    state = example / ".trek" / "env" / "marvin.json"
    # The state names our Marvin's pid and token but the port another project's Marvin
    # answers on: what a run would have sent its token to (an HTTP 401).
    other = other_example(tmp_path, free_port())
    try:
        other.marvin_up()
        data = json.loads(state.read_text())
        state.write_text(json.dumps({**data, "port": marvin_port(other.project.root)}))
        assert env.marvin_stale_reason() == "not answering"
        with pytest.raises(StepFailed) as raised:
            env.marvin_url  # noqa: B018 - reading it is the check
        assert str(raised.value) == (
            "no local Marvin of this project answers (not answering); start it with `trek initenv`"
        )
        capsys.readouterr()
        assert main(["run", "-p", str(example)]) == 0
        assert "restart local Marvin: not answering" in capsys.readouterr().out.splitlines()
    finally:
        other.shutdown_all()
    state.write_text(json.dumps({**json.loads(state.read_text()), "token": "not ours"}))
    assert env.marvin_stale_reason() == "process lost"


def test_every_run_says_once_which_marvin_it_uses(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trek_tasks.files import display

    assert main(["run", "-p", str(example)]) == 0
    log = display(example / ".trek" / "env" / "marvin.log")
    line = f"Marvin: local, http://127.0.0.1:{marvin_port(example)} ({log})"
    out = capsys.readouterr().out.splitlines()
    assert [text for text in out if text.startswith("Marvin")] == [line]
    assert out.index(line) < out.index("Workflow [host.detect.redis] start...")
    assert main(["runblcks", "-p", str(example / "src/blcks/detectredis")]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["starting blcks detectredis...", line]


def test_a_remote_marvin_that_does_not_answer_stops_the_run_before_any_script(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import free_port

    from trek_tasks.files import display

    port = free_port()
    set_config(example, marvin_url=f"http://ada:s3cret-pass@127.0.0.1:{port}")
    assert main(["run", "-p", str(example)]) == 1
    out, err = capsys.readouterr()
    config = display(example / ".trek" / "config.json")
    assert (
        f"Marvin: http://127.0.0.1:{port} (marvin_url in {config}; "
        "`trek config marvin_url ''` uses the local one)"
    ) in out.splitlines()
    assert "[EXEC]" not in out
    assert err.splitlines()[-1] == (
        f"trek: error: {config}: the Marvin at marvin_url http://127.0.0.1:{port} does not "
        "answer (cannot connect: Connection refused); correct marvin_url, or "
        "`trek config marvin_url ''` uses the local one"
    )
    assert "s3cret" not in out + err
    assert not (example / ".trek" / "env" / "marvin.json").exists()  # none was started


@pytest.mark.parametrize("command", ["validate", "initenv", "run"])
def test_a_bad_router_port_is_one_line_from_every_command_that_reads_it(
    example: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    from trek_tasks.files import display

    config = example / ".trek" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "router_port": -1}, indent=2))
    line = next(
        i for i, text in enumerate(config.read_text().splitlines()) if "router_port" in text
    )
    column = config.read_text().splitlines()[line].index("-1") + 1
    capsys.readouterr()
    assert main([command, "-p", str(example)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"trek: error: {display(config)}:{line + 1}:{column}: 'router_port' must be a port "
        "number from 1 to 65535, or 0 for any free port"
    )
    assert not (example / ".trek" / "env" / "marvin.json").exists()


def test_shutdownenv_says_closing_local_marvin_only_when_one_runs(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["shutdownenv", "-p", str(example)]) == 0
    assert capsys.readouterr().out == "Closing environment...\nDone\n"
    Environment(Project.load(example)).marvin_up()
    assert main(["shutdownenv", "-p", str(example)]) == 0
    assert capsys.readouterr().out == "Closing environment...\nclosing local Marvin...\nDone\n"


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
                "project": str(example),
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


def test_a_new_sdk_restarts_retests_reruns_and_reuses_nothing(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from trek_tasks import environment, localrun
    from trek_tasks.runner import run_tasks
    from trek_tasks.runtimes import base

    tasks = ["execute", "test:detectredis"]
    run_tasks(Project.load(example), tasks)
    assert run_tasks(Project.load(example), tasks) == []
    # A new trek-tasks version with other SDK sources; the environments stay (their key
    # is the runtime's), so only what reads the SDK's digest sees it.
    for module in (base, environment, localrun):
        monkeypatch.setattr(module, "sdk_hash", lambda: "another-sdk")
    capsys.readouterr()
    ran = run_tasks(Project.load(example), tasks)
    assert {"execute", "test:detectredis", "up:detectredis", "up:notification"} <= set(ran)
    out = capsys.readouterr().out
    assert "restart detectredis: SDK changed" in out.splitlines()
    assert "requirements changed" not in out
    assert run_tasks(Project.load(example), tasks) == []
    assert main(["run", "--reuse", "-p", str(example)]) == 0
    assert last_run(example)["2"]["status"] == "reused"
    monkeypatch.setattr(localrun, "sdk_hash", lambda: "a-third-sdk")
    assert main(["run", "--reuse", "-p", str(example)]) == 0
    assert {node["status"] for node in last_run(example).values()} == {"done"}


def test_a_second_run_with_nothing_changed_reuses_and_a_tag_set_since_does_not(
    example: Path, redis_server: int, capsys: pytest.CaptureFixture[str]
) -> None:
    set_redis_ports(example, {"S-redis-down": redis_server})  # no host to tag: state stays
    assert main(["run", "-p", str(example)]) == 0
    assert main(["run", "--reuse", "-p", str(example)]) == 0
    nodes = last_run(example)
    assert (nodes["2"]["status"], nodes["3"]["status"]) == ("reused", "reused")
    assert nodes["2"]["state"] == nodes["3"]["state"] != ""
    env = Environment(Project.load(example))
    tag = [{"name": "seen", "tagged": True, "assets": [{"id": "S-web", "type": "HOST"}]}]
    MarvinClient(env.marvin_url, env.token()).post("/api/v1/tags/update", tag)
    capsys.readouterr()
    assert main(["run", "--reuse", "-p", str(example)]) == 0
    out = capsys.readouterr().out
    assert "[FINISH] id: 2, type: action, scriptId: detectredis, scriptType: blcks" in out
    assert "[FINISH] id: 3, type: action, scriptId: blckssettags, scriptType: blcks" in out
    assert "[REUSE]" not in out


def test_reuse_against_a_remote_marvin_runs_every_node_and_says_why_once(
    example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trek_tasks.marvin.inventory import load_inventory
    from trek_tasks.marvin.server import local_marvin

    inventory = load_inventory(example / "inputs" / "inventory.yml")
    with local_marvin(inventory, tmp_path) as remote:  # one trek did not start for this project
        set_config(example, marvin_url=remote.url, marvin_JWT=remote.token)
        assert main(["run", "-p", str(example)]) == 0
        capsys.readouterr()
        assert main(["run", "--reuse", "-p", str(example)]) == 0
        err = capsys.readouterr().err
        main(["shutdownenv", "-a", "-p", str(example)])
    warning = (
        "trek: warning: --reuse runs every node: what a remote Marvin serves cannot be compared"
    )
    assert err.splitlines().count(warning) == 1
    nodes = last_run(example)
    assert [nodes[i]["status"] for i in ("2", "3", "5")] == ["done", "done", "done"]
    assert {nodes[i]["state"] for i in ("2", "3", "5")} == {""}

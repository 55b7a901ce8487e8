"""No stray processes, no unbounded disk: scripts leave with the graph, a lost handle never
makes a second copy, logs outlive a shutdown, `trek gc`, and the session's leak check."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import SESSION_VAR, left_running, set_config

from trek_tasks.cli import main
from trek_tasks.environment import Environment
from trek_tasks.lock import file_lock
from trek_tasks.project import Project
from trek_tasks.runtimes import process
from trek_tasks.store import READY_MARK, project_record, record_project

EVERY_SCRIPT = ["blckssettags", "detectredis", "local Marvin", "notification"]


def running(project: Path) -> list[str]:
    return sorted(Environment(Project.load(project)).leftovers())


def drop_notify(project: Path) -> None:
    """Take node 5 (notification) and its edges out of the example's graph."""
    graph = project / "src" / "graph.yml"
    data = yaml.safe_load(graph.read_text())
    data["graph"]["nodes"] = [n for n in data["graph"]["nodes"] if n["id"] != "5"]
    data["graph"]["edges"] = [
        e for e in data["graph"]["edges"] if "5" not in (e["source"], e["target"])
    ]
    graph.write_text(yaml.safe_dump(data, sort_keys=False))
    (project / "inputs" / "data.yml").write_text("{}\n")


@pytest.fixture
def example(project: Path) -> Iterator[Path]:
    set_config(project, router_port=0)
    yield project
    main(["shutdownenv", "-a", "-p", str(project)])
    assert running(project) == []


def test_a_script_taken_out_of_the_graph_stops_at_the_next_run_or_initenv(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = (example / "src" / "graph.yml").read_text()
    data = (example / "inputs" / "data.yml").read_text()
    assert main(["initenv", "-p", str(example)]) == 0
    drop_notify(example)
    capsys.readouterr()
    assert main(["run", "-p", str(example)]) == 0  # the doit initenv task
    assert "closing blcks notification (no longer in the graph)" in capsys.readouterr().out
    assert running(example) == ["blckssettags", "detectredis", "local Marvin"]
    assert not (example / ".trek" / "env" / "notification.json").exists()
    assert main(["run", "-p", str(example)]) == 0
    assert "closing" not in capsys.readouterr().out

    (example / "src" / "graph.yml").write_text(graph)
    (example / "inputs" / "data.yml").write_text(data)
    # --no-overwrite: a restart lets the old process end after the new one serves
    assert main(["initenv", "--no-overwrite", "-p", str(example)]) == 0
    assert running(example) == EVERY_SCRIPT
    drop_notify(example)
    capsys.readouterr()
    assert main(["initenv", "--no-overwrite", "-p", str(example)]) == 0  # `trek initenv`
    assert "closing blcks notification (no longer in the graph)" in capsys.readouterr().out
    assert running(example) == ["blckssettags", "detectredis", "local Marvin"]


def test_a_lost_handle_file_never_makes_a_second_copy(example: Path) -> None:
    assert main(["initenv", "-p", str(example)]) == 0
    (example / ".trek" / "env" / "detectredis.json").unlink()
    assert main(["initenv", "--no-overwrite", "-p", str(example)]) == 0
    assert running(example) == EVERY_SCRIPT
    (example / ".trek" / "env" / "blckssettags.json").unlink()
    assert main(["shutdownenv", "blckssettags", "-p", str(example)]) == 0
    assert running(example) == ["detectredis", "local Marvin", "notification"]


def pids_of(project: Path) -> dict[str, int]:
    """The pid of each process of ours the project runs, by script id / "marvin"."""
    from trek_tasks.runtimes import process

    return {found.role.removeprefix("script:"): found.pid for found in process.find(str(project))}


def test_a_copied_project_never_uses_or_stops_the_originals_processes(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["initenv", "-p", str(example)]) == 0
    original = pids_of(example)
    copy = example.parent / "copy"
    shutil.copytree(example, copy, symlinks=True)  # `cp -r` of a running project
    try:
        capsys.readouterr()
        assert main(["initenv", "--no-overwrite", "-p", str(copy)]) == 0
        out = capsys.readouterr().out
        assert f"restart detectredis: its state is {example}'s (a copy)" in out
        assert f"restart local Marvin: its state is {example}'s (a copy)" in out
        assert running(copy) == EVERY_SCRIPT
        assert set(pids_of(copy).values()).isdisjoint(original.values())
        assert main(["run", "-p", str(copy)]) == 0  # a run of the copy uses its own
        assert main(["shutdownenv", "-a", "-p", str(copy)]) == 0
        assert running(copy) == []
        assert pids_of(example) == original
    finally:
        main(["shutdownenv", "-a", "-p", str(copy)])


def test_corrupt_state_files_count_as_lost_and_leave_no_second_copy(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["initenv", "-p", str(example)]) == 0
    env = example / ".trek" / "env"
    handle = json.loads((env / "detectredis.json").read_text())
    (env / "detectredis.json").write_text(json.dumps({**handle, "state": {"pid": "x"}}))
    (env / "blckssettags.json").write_text('{"script_id": 5}')
    (env / "marvin.json").write_text('{"pid": "x"}')
    for _ in range(2):  # no error on this run or the next
        capsys.readouterr()
        assert main(["run", "-p", str(example)]) == 0
        assert "Traceback" not in capsys.readouterr().err
        assert running(example) == EVERY_SCRIPT  # the old processes were found and stopped


def test_a_changed_marvin_secret_restarts_the_local_marvin(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["initenv", "-p", str(example)]) == 0
    set_config(example, marvin_secret="a-new-secret-of-the-team")
    capsys.readouterr()
    assert main(["run", "-p", str(example)]) == 0
    assert "restart local Marvin: marvin_secret changed" in capsys.readouterr().out
    assert main(["run", "-p", str(example)]) == 0
    assert "restart local Marvin" not in capsys.readouterr().out


def test_two_cold_runs_at_once_start_one_process_each(example: Path) -> None:
    command = [sys.executable, "-m", "trek_tasks", "run", "-p", str(example)]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(run.wait(120), *run.communicate()) for run in runs]
    for code, _, err in results:
        assert "Traceback" not in err
        busy = "another `trek run` is in progress on this project"
        assert code == 0 or (code == 1 and busy in err), err
    assert any(code == 0 for code, _, _ in results)
    assert running(example) == EVERY_SCRIPT


def test_logs_stay_readable_after_shutdownenv(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["initenv", "-p", str(example)]) == 0
    assert main(["shutdownenv", "-p", str(example)]) == 0
    capsys.readouterr()
    assert main(["logs", "detectredis", "-p", str(example)]) == 0
    assert capsys.readouterr().out.startswith("blcks detectredis listening on http://127.0.0.1:")
    assert main(["logs", "-p", str(example)]) == 0
    prefixes = {line.split(" ")[0] for line in capsys.readouterr().out.splitlines()}
    assert prefixes == {"[blckssettags]", "[detectredis]", "[notification]"}
    assert main(["logs", "-f", "detectredis", "-p", str(example)]) == 2
    assert capsys.readouterr().err == (
        "trek: error: ACTIONS: detectredis is not running; "
        "without --follow `trek logs` shows its last log\n"
    )


def test_initenv_records_which_environments_the_project_uses(example: Path) -> None:
    assert main(["initenv", "-p", str(example)]) == 0
    record = json.loads(project_record(example).read_text())
    project = Project.load(example)
    runtime = Environment(project).runtime
    assert record == {
        "root": str(example),
        "envs": {s.id: runtime.env_key(s) for s in project.scripts.values()},
    }


def test_the_record_follows_a_requirements_edit_within_one_run(project: Path) -> None:
    env = Environment(Project.load(project))
    script = env.project.scripts["detectredis"]
    env.record_envs(script)
    before = json.loads(project_record(project).read_text())["envs"]["detectredis"]
    with open(script.requirements, "a") as out:
        out.write("pyyaml\n")
    env.record_envs(script)  # as the restart of that script does, in the same process
    after = json.loads(project_record(project).read_text())["envs"]["detectredis"]
    assert after != before
    assert after == env.runtime.env_key(script)


def fake_env(store: Path, name: str, size: int, requirements: tuple[str, ...] = ()) -> Path:
    folder = store / "envs" / name
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").write_bytes(b"\0" * size)
    (folder / READY_MARK).write_text(json.dumps({"requirements": list(requirements)}))
    return folder


def test_gc_removes_only_what_no_project_build_or_process_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    monkeypatch.setenv("TREK_HOME", str(store))
    live, gone = tmp_path / "live", tmp_path / "gone"
    live.mkdir()
    (live / "manifest.json").write_text("{}")
    record_project(live, {"a": "local-py311-kept"})
    record_project(gone, {"a": "local-py311-gone"})
    kept = fake_env(store, "local-py311-kept", 1000)
    unused = fake_env(store, "local-py311-gone", 2_000_000, ("redis>=5", "packaging"))
    building = fake_env(store, "local-py311-building", 10)
    in_use = fake_env(store, "local-py311-running", 10)
    killed = store / "envs" / ".local-py311-killed.x1y2"
    killed.mkdir()
    (in_use / "bin" / "sleep").symlink_to(shutil.which("sleep") or "/bin/sleep")
    sleeper = subprocess.Popen([str(in_use / "bin" / "sleep"), "60"])
    deadline = time.monotonic() + 10
    while process.cmdline(sleeper.pid)[:1] != [str(in_use / "bin" / "sleep")]:
        assert time.monotonic() < deadline, "the sleeper did not start"
        time.sleep(0.001)  # until /proc shows it running from the environment
    try:
        with file_lock(store / "envs" / ".local-py311-building.lock"):
            assert main(["gc", "--dry-run"]) == 0
            assert capsys.readouterr().out == (
                f"  forgot {gone} (folder gone)\n"
                "  would remove .local-py311-killed.x1y2 (an unfinished build; 0.0 MB)\n"
                "  would remove local-py311-gone (redis>=5, packaging; 2.0 MB)\n"
                "would remove 2 environments, freeing 2.0 MB\n"
            )
            assert unused.is_dir() and killed.is_dir() and project_record(gone).is_file()
            assert main(["gc"]) == 0
            assert capsys.readouterr().out == (
                f"  forgot {gone} (folder gone)\n"
                "  removed .local-py311-killed.x1y2 (an unfinished build; 0.0 MB)\n"
                "  removed local-py311-gone (redis>=5, packaging; 2.0 MB)\n"
                "removed 2 environments, freed 2.0 MB\n"
            )
            assert not unused.exists() and not killed.exists()
            assert kept.is_dir() and building.is_dir() and in_use.is_dir()
            assert not project_record(gone).exists() and project_record(live).is_file()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert main(["gc"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "removed 2 environments, freed 0.0 MB"
    assert sorted(p.name for p in (store / "envs").iterdir() if p.is_dir()) == [kept.name]
    assert main(["gc"]) == 0
    assert capsys.readouterr().out == "nothing to collect\n"


def test_the_session_check_finds_exactly_what_tests_started() -> None:
    ours = subprocess.Popen(["sleep", "60"])
    theirs = subprocess.Popen(
        ["sleep", "60"], env={k: v for k, v in os.environ.items() if k != SESSION_VAR}
    )
    try:
        left = left_running()
        assert ours.pid in left
        assert theirs.pid not in left  # a user's process, whatever its name
        assert os.getpid() not in left
    finally:
        for proc in (ours, theirs):
            proc.kill()
            proc.wait()
    assert ours.pid not in left_running()

"""The state layout: every path under ``.trek/`` and the store, from one object."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trek_tasks.environment import Environment
from trek_tasks.lock import file_lock
from trek_tasks.project import Project
from trek_tasks.state import StateLayout, store_dir
from trek_tasks.tasks import doit_config


def test_every_state_path_is_under_dot_trek(tmp_path: Path) -> None:
    state = StateLayout.for_project(tmp_path)
    trek = tmp_path / ".trek"
    assert {
        "config": state.config,
        "doit": state.dep_file,
        "validated": state.validated,
        "graph": state.graph,
        "handle": state.handle("x"),
        "log": state.log("x"),
        "marvin": state.marvin_state,
        "marvin log": state.marvin_log,
        "secret": state.marvin_secret,
        "db": state.marvin_db,
        "record": state.run_record("r1"),
        "last": state.last_run,
        "lock": state.run_lock,
    } == {
        "config": trek / "config.json",
        "doit": trek / "doit.db",
        "validated": trek / "validated.json",
        "graph": trek / "graph.gv",
        "handle": trek / "env" / "x.json",
        "log": trek / "env" / "x.log",
        "marvin": trek / "env" / "marvin.json",
        "marvin log": trek / "env" / "marvin.log",
        "secret": trek / "env" / "marvin.secret",
        "db": trek / "marvin.sqlite",
        "record": trek / "runs" / "r1.json",
        "last": trek / "runs" / "last.json",
        "lock": trek / "run.lock",
    }
    assert state.identity == str(tmp_path)


def test_the_project_its_environment_and_doit_share_the_layout(project: Path) -> None:
    loaded = Project.load(project)
    assert loaded.state == StateLayout.for_project(project)
    assert loaded.state.dir == project / ".trek"
    env = Environment(loaded)
    assert env.handle_path("detectredis") == loaded.state.handle("detectredis")
    assert env.log_path("detectredis") == loaded.state.log("detectredis")
    assert doit_config(project)["dep_file"] == str(loaded.state.dep_file)


def test_the_store_follows_trek_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREK_HOME", str(tmp_path / "home"))
    assert store_dir() == StateLayout.for_project(tmp_path).store == tmp_path / "home"
    monkeypatch.delenv("TREK_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert store_dir() == tmp_path / "cache" / "trek-tasks"


def test_a_held_lock_names_its_holder(tmp_path: Path) -> None:
    lock = tmp_path / "a" / "run.lock"
    other = (
        "import sys\n"
        "from trek_tasks.lock import Held, file_lock\n"
        "try:\n"
        "    with file_lock(__import__('pathlib').Path(sys.argv[1]), wait=False):\n"
        "        print('taken')\n"
        "except Held as held:\n"
        "    print(held.holder)\n"
    )
    with file_lock(lock):
        assert lock.read_text() == str(os.getpid())
        done = subprocess.run([sys.executable, "-c", other, str(lock)], capture_output=True)
        assert done.stdout.decode().strip() == str(os.getpid())
    with file_lock(lock, wait=False):
        pass


def test_the_marvin_docs_name_every_file_the_local_marvin_writes(tmp_path: Path) -> None:
    from conftest import REPO

    state = StateLayout.for_project(tmp_path)
    written = [
        state.marvin_db,
        state.marvin_state,
        state.marvin_log,
        state.marvin_secret,
        state.marvin_secret_run,
    ]
    doc = (REPO / "docs" / "marvin-api.md").read_text()
    for path in written:
        assert f"`{path.relative_to(tmp_path).as_posix()}`" in doc
    assert ".trek/marvin.db" not in doc

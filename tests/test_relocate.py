"""A project copied with its `.trek/` to another folder (as a CI cache restores it) finds
its tasks up to date there, with `doit` in the copy, the repository's dodo file and `trek`;
an edit in the copy re-runs exactly the task it concerns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Registry, build_reference, set_config
from images_made import Made

from trek_tasks.containers.images import recorded
from trek_tasks.state import StateLayout

WORKFLOW_ZIP = Path("bin") / "host.detect.redis-0.1.0.zip"
SCRIPT_ZIP = Path("bin") / "blcks.detectredis-0.1.0.zip"
HANDLER = Path("src") / "blcks" / "detectredis" / "handler" / "handler.py"
PACK_TASKS = {"validate", "pack:workflow", "pack:detectredis"}


def python(cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def doit(cwd: Path, *argv: str) -> str:
    return python(cwd, "-m", "doit", *argv).stdout


def trek(cwd: Path, *argv: str) -> str:
    return python(cwd, "-m", "trek_tasks", *argv).stdout


def ran(out: str) -> set[str]:
    return {line[3:] for line in out.splitlines() if line.startswith(".  ")}


def up_to_date(out: str) -> set[str]:
    return {
        line[3:].removesuffix(" (up to date)") for line in out.splitlines() if line[:3] == "-- "
    }


def relocate(project: Path, dest: Path) -> Path:
    """Copy ``project`` with its state to ``dest``, every file with a new mtime (as a
    checkout writes them): doit must compare content, not the timestamps it recorded."""
    shutil.copytree(project, dest, symlinks=True)
    later = time.time() + 10
    for path in dest.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, (later, later))
    return dest


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file but doit's own dep file and Python's bytecode caches (the copy's new
    mtimes make Python compile the dodo file again): its mtime and content."""
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("doit.db") and "__pycache__" not in p.parts
    }


@pytest.fixture
def packed(tmp_path: Path) -> Path:
    """The reference project after `doit pack`, copied to another folder."""
    original = build_reference(tmp_path / "first" / "host.detect.redis")
    assert PACK_TASKS <= ran(doit(original, "pack"))
    return relocate(original, tmp_path / "second" / "host.detect.redis")


def test_doit_pack_in_a_copy_runs_nothing_and_writes_nothing(packed: Path) -> None:
    before = snapshot(packed)
    out = doit(packed, "pack")
    assert ran(out) == set(), out
    assert {"install", *PACK_TASKS} <= up_to_date(out), out
    assert "-- pack:workflow\n" in out and "-- pack:detectredis\n" in out
    assert snapshot(packed) == before


def test_an_edit_in_the_copy_reruns_exactly_its_task(packed: Path, tmp_path: Path) -> None:
    original = tmp_path / "first" / "host.detect.redis"
    zipped = (original / SCRIPT_ZIP).read_bytes()
    handler = packed / HANDLER
    handler.write_text(handler.read_text() + "\n# edited in the copy\n")
    assert ran(doit(packed, "pack")) == {"pack:detectredis"}
    assert (packed / SCRIPT_ZIP).read_bytes() != zipped
    assert (original / SCRIPT_ZIP).read_bytes() == zipped  # the original is not touched
    assert ran(doit(packed, "pack")) == set()
    graph = packed / "src" / "graph.yml"
    graph.write_text(graph.read_text() + "\n# a comment\n")
    assert ran(doit(packed, "pack")) == {"validate", "pack:workflow"}


def test_the_repository_dodo_file_sees_the_copy_up_to_date(packed: Path, tmp_path: Path) -> None:
    """From the repository root (another cwd), `project=PATH` checks the same files."""
    before = snapshot(packed)
    out = doit(REPO, "-f", str(REPO / "dodo.py"), f"project={packed}", "pack")
    assert ran(out) == set(), out
    assert PACK_TASKS <= up_to_date(out)
    assert snapshot(packed) == before
    handler = packed / HANDLER
    handler.write_text(handler.read_text() + "\n# edited\n")
    out = doit(tmp_path, "-f", str(REPO / "dodo.py"), f"project={packed}", "pack")
    assert ran(out) == {"pack:detectredis"}, out


def test_trek_pack_in_a_copy_says_up_to_date_and_writes_nothing(
    packed: Path, tmp_path: Path
) -> None:
    before = snapshot(packed)
    shown = sorted(trek(tmp_path, "pack", "-a", "-p", str(packed)).splitlines())
    where = packed.relative_to(tmp_path)  # shown from the current folder
    assert shown == [
        f"{where / SCRIPT_ZIP} is up to date",
        f"{where / WORKFLOW_ZIP} is up to date",
    ]
    assert sorted(trek(packed, "pack", "-a").splitlines()) == [
        f"{SCRIPT_ZIP} is up to date",
        f"{WORKFLOW_ZIP} is up to date",
    ]
    assert snapshot(packed) == before
    handler = packed / HANDLER
    handler.write_text(handler.read_text() + "\n# edited\n")
    out = trek(packed, "pack", "-a", "-v")
    assert ran(out) == {"pack:detectredis"}, out
    assert f"{WORKFLOW_ZIP} is up to date" in out


def test_doit_clean_in_another_folder_removes_the_projects_targets(
    packed: Path, tmp_path: Path
) -> None:
    """Targets are read from the project root, not from where doit runs: a file of the
    same name there stays."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "bin").mkdir(parents=True)
    (elsewhere / WORKFLOW_ZIP).write_text("not the project's")
    doit(elsewhere, "-f", str(REPO / "dodo.py"), f"project={packed}", "clean", "pack")
    assert not (packed / WORKFLOW_ZIP).exists() and not (packed / SCRIPT_ZIP).exists()
    assert (elsewhere / WORKFLOW_ZIP).read_text() == "not the project's"


def test_validate_and_script_tests_in_a_copy_run_nothing(project: Path, tmp_path: Path) -> None:
    """The example (its detectredis has tests/): `doit validate test pack`, the CI
    pipeline's step, copied with its state, runs nothing; a test edit re-runs that test."""
    steps = ("validate", "test", "pack")
    first = doit(project, *steps)
    assert {"validate", "test:detectredis", "pack:detectredis"} <= ran(first), first
    copy = relocate(project, tmp_path / "copy" / project.name)
    before = snapshot(copy)
    out = doit(copy, *steps)
    assert ran(out) == set(), out
    assert {"validate", "test:detectredis", "pack:workflow"} <= up_to_date(out)
    assert snapshot(copy) == before
    test = next((copy / "src" / "blcks" / "detectredis" / "tests").glob("test_*.py"))
    test.write_text(test.read_text() + "\n# edited\n")
    assert ran(doit(copy, *steps)) == {"test:detectredis"}


def test_doit_deploy_in_a_copy_uploads_nothing(project: Path, tmp_path: Path) -> None:
    """The CI recipe against a standalone local Marvin: a non-interactive `trek login
    --global` from the environment, `doit validate test pack`, `doit deploy`; the copy
    (a CI cache restored in another checkout) runs and uploads nothing, and a new version
    of a script there packs and uploads only that script."""
    from marvin_served import served

    with served(tmp_path / "marvin-data") as marvin:
        login = {
            "TREK_MARVIN_URL": marvin.url,
            "TREK_MARVIN_USERNAME": "trek",
            "TREK_MARVIN_PASSWORD": marvin.first_password or "",
        }
        python(project, "-m", "trek_tasks", "login", "--global", **login)
        doit(project, "validate", "test", "pack")
        first = doit(project, "deploy")
        assert {"deploy:detectredis", "deploy:workflow"} <= ran(first), first
        copy = relocate(project, tmp_path / "ci" / project.name)
        before = snapshot(copy)
        out = doit(copy, "validate", "test", "pack")
        assert ran(out) == set(), out
        out = doit(copy, "deploy")
        assert ran(out) == set(), out
        assert {"deploy:detectredis", "deploy:workflow", *PACK_TASKS} <= up_to_date(out)
        assert "Deploying:" not in out
        assert snapshot(copy) == before
        handler = copy / HANDLER
        handler.write_text(handler.read_text() + "\n# edited in CI\n")
        para = copy / "src" / "blcks" / "detectredis" / "detectredis.para"
        para.write_text(para.read_text().replace('version: "0.1.0"', 'version: "0.1.1"', 1))
        out = doit(copy, "deploy")
        assert ran(out) == {"validate", "pack:detectredis", "deploy:detectredis"}, out
        assert [line for line in out.splitlines() if line.startswith("Deploying: ")] == [
            "Deploying: bin/blcks.detectredis-0.1.1.zip"
        ]


@pytest.fixture
def made(docker_client: Any, registry: Registry) -> Iterator[Made]:
    record = Made.under(registry.address)
    yield record
    record.remove(docker_client)


def test_doit_build_in_a_copy_builds_nothing(
    docker_project: Path, made: Made, tmp_path: Path
) -> None:
    """`.trek/images/*.json` and the build targets hold no path: the copy's images are
    the ones its content names (skipped without a Docker daemon, registry and base image)."""
    set_config(docker_project, docker_registry=made.prefix)
    handler = docker_project / HANDLER
    handler.write_text(handler.read_text() + f"\n# {made.prefix}\n")  # content no one built
    assert "build:detectredis" in ran(doit(docker_project, "build"))
    for script_id in ("detectredis", "blckssettags", "notification"):
        image = recorded(StateLayout.for_project(docker_project), script_id)
        assert image is not None
        made.note(image)
    copy = relocate(docker_project, tmp_path / "copy" / docker_project.name)
    before = snapshot(copy)
    out = doit(copy, "build")
    assert not {name for name in ran(out) if name.startswith("build:")}, out
    assert "build:detectredis" in up_to_date(out)
    assert snapshot(copy) == before

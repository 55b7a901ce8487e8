"""The real `doit` command in a temp project: listing, up-to-date checks, state shared with trek."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLE, REPO, build_reference, require_tool

WORKFLOW_ZIP = Path("bin") / "host.detect.redis-0.1.0.zip"
SCRIPT_ZIP = Path("bin") / "blcks.detectredis-0.1.0.zip"
HANDLER = Path("src") / "blcks" / "detectredis" / "handler" / "handler.py"


@pytest.fixture
def ref(tmp_path: Path) -> Path:
    return build_reference(tmp_path / "host.detect.redis")


def run(cwd: Path, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def doit(cwd: Path, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(cwd, "-m", "doit", *argv, check=check)


def ran(out: str) -> set[str]:
    """Tasks doit executed (`.  name`)."""
    return {line[3:] for line in out.splitlines() if line.startswith(".  ")}


def up_to_date(out: str) -> set[str]:
    """Tasks doit skipped as up to date (`-- name`)."""
    return {line[3:] for line in out.splitlines() if line.startswith("-- ")}


def listing(out: str) -> dict[str, str]:
    rows = [line.split(None, 1) for line in out.splitlines() if line.strip()]
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


def test_doit_list_shows_every_task_with_a_doc(ref: Path) -> None:
    shown = listing(doit(ref, "list").stdout)
    assert {"validate", "graph", "pack"} <= set(shown)
    assert all(doc for doc in shown.values()), shown
    every = listing(doit(ref, "list", "--all").stdout)
    assert {"pack:workflow", "pack:detectredis"} <= set(every)
    assert all(doc for doc in every.values()), every
    assert not (ref / "bin").exists()


def test_second_pack_workflow_runs_nothing(ref: Path) -> None:
    first = doit(ref, "pack:workflow")
    assert {"validate", "pack:workflow"} <= ran(first.stdout)
    assert "Success packing, output: bin/host.detect.redis-0.1.0.zip\n" in first.stdout
    zipped = (ref / WORKFLOW_ZIP).stat().st_mtime_ns
    second = doit(ref, "pack:workflow")
    assert ran(second.stdout) == set()
    assert {"validate", "pack:workflow"} <= up_to_date(second.stdout)
    assert "-- pack:workflow\n" in second.stdout
    assert "Success packing" not in second.stdout
    assert (ref / WORKFLOW_ZIP).stat().st_mtime_ns == zipped


def test_editing_graph_repacks_only_the_workflow(ref: Path) -> None:
    doit(ref, "pack")
    assert ran(doit(ref, "pack").stdout) == set()
    script_zip = (ref / SCRIPT_ZIP).read_bytes(), (ref / SCRIPT_ZIP).stat().st_mtime_ns
    graph = ref / "src" / "graph.yml"
    graph.write_text(graph.read_text().replace("title: Redis monitor", "title: Redis watch"))
    out = doit(ref, "pack").stdout
    assert ran(out) == {"validate", "pack:workflow"}
    assert "pack:detectredis" in up_to_date(out)
    assert ((ref / SCRIPT_ZIP).read_bytes(), (ref / SCRIPT_ZIP).stat().st_mtime_ns) == script_zip
    with zipfile.ZipFile(ref / WORKFLOW_ZIP) as archive:
        assert b"title: Redis watch" in archive.read("src/graph.yml")


def test_editing_one_handler_repacks_only_that_script(ref: Path) -> None:
    doit(ref, "pack")
    workflow_zip = (ref / WORKFLOW_ZIP).stat().st_mtime_ns
    with (ref / HANDLER).open("a") as handler:
        handler.write("# edited\n")
    out = doit(ref, "pack").stdout
    assert ran(out) == {"pack:detectredis"}
    assert {"validate", "pack:workflow"} <= up_to_date(out)
    assert "Success packing, output: bin/blcks.detectredis-0.1.0.zip\n" in out
    assert (ref / WORKFLOW_ZIP).stat().st_mtime_ns == workflow_zip


def test_touching_without_changing_content_is_up_to_date(ref: Path) -> None:
    doit(ref, "pack")
    for path in (ref / HANDLER, ref / "src" / "graph.yml"):
        os.utime(path, (2_000_000_000, 2_000_000_000))
    out = doit(ref, "pack").stdout
    assert ran(out) == set()
    assert {"validate", "pack:workflow", "pack:detectredis"} <= up_to_date(out)


def test_auto_pos_variable_lays_out_the_packed_graph(ref: Path) -> None:
    require_tool("dot")
    doit(ref, "pack:workflow", "auto_pos=1")
    with zipfile.ZipFile(ref / WORKFLOW_ZIP) as archive:
        packed = yaml.safe_load(archive.read("src/graph.yml"))
    assert all("position" in node["metadata"] for node in packed["graph"]["nodes"])
    assert "position" not in (ref / "src" / "graph.yml").read_text()
    # switching the option back is a change: the plain graph is packed again
    assert ran(doit(ref, "pack:workflow").stdout) == {"pack:workflow"}
    with zipfile.ZipFile(ref / WORKFLOW_ZIP) as archive:
        assert archive.read("src/graph.yml") == (ref / "src" / "graph.yml").read_bytes()


def test_graph_task_draws_once(ref: Path) -> None:
    require_tool("dot")
    first = doit(ref, "graph")
    assert ran(first.stdout) == {"graph"}
    assert "Graph written: .trek/graph.gv (png, svg)\n" in first.stdout
    for suffix in ("gv", "png", "svg"):
        assert (ref / ".trek" / f"graph.{suffix}").is_file()
    assert ran(doit(ref, "graph").stdout) == set()


def test_trek_and_doit_share_state(ref: Path) -> None:
    run(ref, "-m", "trek_tasks", "pack", "-a")
    out = doit(ref, "pack:workflow").stdout
    assert ran(out) == set()
    assert "-- pack:workflow\n" in out
    out = doit(ref, "pack").stdout
    assert ran(out) == set()
    assert {"validate", "pack:workflow", "pack:detectredis"} <= up_to_date(out)
    assert sorted(run(ref, "-m", "trek_tasks", "pack", "-a").stdout.splitlines()) == [
        "bin/blcks.detectredis-0.1.0.zip is up to date",
        "bin/host.detect.redis-0.1.0.zip is up to date",
    ]


def test_trek_graph_is_the_graph_task(ref: Path) -> None:
    require_tool("dot")
    run(ref, "-m", "trek_tasks", "graph")
    assert "-- graph\n" in doit(ref, "graph").stdout


def test_dep_file_is_sqlite_in_the_project(ref: Path) -> None:
    doit(ref, "pack:workflow")
    state = sorted(p.name for p in (ref / ".trek").iterdir() if p.name.startswith("doit"))
    assert state == ["doit.db"]
    assert (ref / ".trek" / "doit.db").read_bytes()[:16] == b"SQLite format 3\x00"
    assert not list(ref.glob(".doit.db*"))


def test_doit_clean_removes_the_zips(ref: Path) -> None:
    doit(ref, "pack")
    doit(ref, "clean", "pack")
    assert not (ref / WORKFLOW_ZIP).exists() and not (ref / SCRIPT_ZIP).exists()
    assert (ref / "src" / "graph.yml").is_file()


def test_doit_reports_a_bad_graph_without_packing(ref: Path) -> None:
    graph = ref / "src" / "graph.yml"
    graph.write_text(graph.read_text() + "\n    - source: '5'\n      target: '7'\n")
    proc = doit(ref, "pack", check=False)
    assert proc.returncode == 1
    assert "src/graph.yml:" in proc.stdout + proc.stderr
    assert "'7'" in proc.stdout + proc.stderr
    assert not (ref / "bin").exists()


def test_root_dodo_lists_the_tasks_of_a_given_project(ref: Path, tmp_path: Path) -> None:
    root_dodo = REPO / "dodo.py"
    assert root_dodo.is_file(), "the repository's root dodo.py is missing"
    shown = listing(doit(tmp_path, "-f", str(root_dodo), f"project={ref}", "list").stdout)
    assert {"validate", "graph", "pack"} <= set(shown)
    doit(tmp_path, "-f", str(root_dodo), f"project={ref}", "pack:workflow")
    assert (ref / WORKFLOW_ZIP).is_file()
    assert (ref / ".trek" / "doit.db").is_file()


def test_root_dodo_defaults_to_the_example(tmp_path: Path) -> None:
    assert EXAMPLE.is_dir()
    shown = listing(doit(REPO, "-f", str(REPO / "dodo.py"), "list", "--all").stdout)
    assert {"validate", "graph", "pack", "pack:workflow", "pack:detectredis"} <= set(shown)


def test_root_dodo_with_a_folder_that_is_not_a_project(tmp_path: Path) -> None:
    proc = doit(tmp_path, "-f", str(REPO / "dodo.py"), f"project={tmp_path}", "list", check=False)
    assert proc.returncode == 3
    assert "not a Trek project (no manifest.json here or above)" in proc.stderr
    assert "Traceback" not in proc.stderr

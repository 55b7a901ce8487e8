"""Recorded runs as regression tests: `trek record`, `trek replay`, the pytest plugin and
`doit test:recorded`, on the example with real script processes and a real local Marvin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from conftest import REPO, run_module

from trek_tasks import pytest_plugin, recorded
from trek_tasks.cli import main

HANDLER = Path("src/blcks/detectredis/handler/handler.py")
RETURNED = 'return {"fail_hosts_count": len(fail_hosts), "fail_hosts": fail_hosts}'


def run_id(project: Path) -> str:
    return str(json.loads((project / ".trek/runs/last.json").read_text())["run_id"])


def edit_handler(project: Path, returned: str) -> None:
    handler = project / HANDLER
    text = handler.read_text()
    assert RETURNED in text
    handler.write_text(text.replace(RETURNED, returned))


def with_plugin_installed(tmp_path: Path) -> dict[str, str]:
    """An environment where pytest finds this checkout's plugin by the entry point
    pyproject.toml declares (a dist-info holding just that), as an install makes it."""
    entry = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    site = tmp_path / "site"
    dist = site / "trek_tasks_plugin-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: trek-tasks-plugin\nVersion: 0\n")
    lines = [f"{name} = {value}" for name, value in entry["pytest11"].items()]
    (dist / "entry_points.txt").write_text("[pytest11]\n" + "\n".join(lines) + "\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(site)])}


def test_record_replay_and_a_changed_output(
    example_on_redis: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = example_on_redis
    assert main(["run", "-p", str(project)]) == 0
    run = run_id(project)
    fixture = f"tests/recorded/{run}"
    capsys.readouterr()

    assert main(["record", "-p", str(project)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"recorded run {run} in {fixture}/ (3 nodes)",
        f"check it with `trek replay {fixture}`",
    ]
    folder = project / fixture
    assert sorted(p.name for p in folder.iterdir()) == [
        "data.yml",
        "event.yml",
        "fixture.yml",
        "inventory.yml",
    ]
    written = yaml.safe_load((folder / "fixture.yml").read_text())
    assert (written["format"], written["run"], written["ignore"]) == (1, run, [])
    assert [(n["id"], n["script"]) for n in written["nodes"]] == [
        ("2", "detectredis"),
        ("3", "blckssettags"),
        ("5", "notification"),
    ]
    assert written["nodes"][0]["inputs"] == {"tag_name": "redis"}
    assert written["nodes"][0]["outputs"]["fail_hosts_count"] == 1
    inventory = yaml.safe_load((project / "inputs/inventory.yml").read_text())
    assert yaml.safe_load((folder / "inventory.yml").read_text()) == inventory

    assert main(["replay", "-p", str(project)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{fixture}: 3 nodes as recorded"

    # pytest in the project collects the fixture, by the plugin's entry point
    env = with_plugin_installed(tmp_path)
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "tests"]
    done = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"PASSED {fixture}/fixture.yml::{run}" in done.stdout.splitlines()

    edit_handler(project, RETURNED.replace("len(fail_hosts),", "len(fail_hosts) + 1,"))
    diff = [
        f"{fixture}: 1 of 3 nodes changed",
        "  node 2 (detectredis) outputs.fail_hosts_count: 1 -> 2",
    ]
    assert main(["replay", str(folder), "-p", str(project)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[-2:] == diff
    assert err.splitlines() == ["trek: error: 1 of 1 recorded run changed"]

    done = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[lines.index(diff[0]) + 1] == diff[1]
    assert any(line.startswith(f"FAILED {fixture}/fixture.yml::{run}") for line in lines)

    done = run_module("doit", "test:recorded", cwd=project)
    assert done.returncode == 1
    assert "\n".join(["1 of 1 recorded run changed", *diff]) in done.stdout + done.stderr


def test_ignore_patterns_and_a_rerecording_keeps_them(
    example_on_redis: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = example_on_redis
    assert main(["run", "-p", str(project)]) == 0
    assert main(["record", "--name", "hosts", "-p", str(project)]) == 0
    path = project / "tests/recorded/hosts/fixture.yml"
    # a new output, a changed count and a changed host name
    edit_handler(
        project,
        'return {"fail_hosts_count": len(fail_hosts) + 1, "checked_at": 1.5, '
        '"fail_hosts": [{**h, "name": h["name"].upper()} for h in fail_hosts]}',
    )
    capsys.readouterr()
    assert main(["replay", "-p", str(project)]) == 1
    assert capsys.readouterr().out.splitlines()[-4:] == [
        "tests/recorded/hosts: 1 of 3 nodes changed",
        "  node 2 (detectredis) outputs.fail_hosts_count: 1 -> 2",
        '  node 2 (detectredis) outputs.fail_hosts.0.name: "redis-down" -> "REDIS-DOWN"',
        "  node 2 (detectredis) outputs.checked_at: (none) -> 1.5",
    ]
    data = yaml.safe_load(path.read_text())
    data["ignore"] = ["outputs.checked_*", "**.name"]
    data["nodes"][0]["ignore"] = ["outputs.fail_hosts_count"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["replay", "-p", str(project)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "tests/recorded/hosts: 3 nodes as recorded (3 ignored differences)"
    )
    assert main(["record", "--name", "hosts", "-p", str(project)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "trek: error: tests/recorded/hosts: a fixture of that name exists; "
        "pass --force to replace it or --name for another"
    ]
    assert main(["record", "--name", "hosts", "--force", "-p", str(project)]) == 0
    again = yaml.safe_load(path.read_text())
    assert (again["ignore"], again["nodes"][0]["ignore"]) == (
        data["ignore"],
        data["nodes"][0]["ignore"],
    )


def test_a_fixture_of_another_format_says_so(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = project / "tests/recorded/old"
    folder.mkdir(parents=True)
    fixture = folder / "fixture.yml"
    cases = [
        (0, "an older trek; this one reads format 1: record the run again with `trek record`"),
        (2, "a newer trek; this one reads format 1: upgrade trek-tasks"),
    ]
    for version, said in cases:
        fixture.write_text(f"# recorded\nformat: {version}\nworkflow: w\nrun: r\nnodes: []\n")
        assert main(["replay", "-p", str(project)]) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"trek: error: tests/recorded/old/fixture.yml:2:9: fixture format {version} "
            f"was written by {said}"
        ]
    fixture.write_text("format: 1\nworkflow: w\nrun: r\nignore: [outputs..x]\nnodes: []\n")
    assert main(["replay", "-p", str(project)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "trek: error: tests/recorded/old/fixture.yml:4:10: ignore pattern 'outputs..x' has "
        "an empty segment (two dots, or a dot at an end)"
    ]


def test_record_refuses_what_it_cannot_replay(
    example_on_redis: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = example_on_redis
    assert main(["record", "-p", str(project)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "trek: error: RUN: no run record of the last run; recorded runs: none; run `trek run` first"
    ]
    assert main(["run", "-p", str(project)]) == 0
    inventory = project / "inputs/inventory.yml"
    inventory.write_text(inventory.read_text().replace("name: web", "name: web2"))
    capsys.readouterr()
    assert main(["record", "-p", str(project)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"trek: error: RUN: inputs/inventory.yml changed since run {run_id(project)}; a fixture "
        "holds what the run read: run `trek run` again, then `trek record`"
    ]
    assert not (project / "tests").exists()


@pytest.mark.parametrize(
    ("path", "patterns", "left_out"),
    [
        ("outputs.hosts.0.timestamp", ["outputs.*.timestamp"], False),
        ("outputs.hosts.0.timestamp", ["outputs.*.*.timestamp"], True),
        ("outputs.hosts.0.timestamp", ["**.timestamp"], True),
        ("outputs.id", ["*.id"], True),
        ("outputs.hosts.0.id", ["*.id"], False),
        ("outputs.hosts.0.id", ["outputs.hosts"], True),
        ("outputs.started_at", ["outputs.*_at"], True),
        ("outputs.hosts", ["outputs.hosts.0"], False),
    ],
)
def test_ignore_pattern_rule(path: str, patterns: list[str], left_out: bool) -> None:
    assert recorded.ignored(path, patterns) is left_out


def test_the_plugin_names_the_fixture_file_as_recorded_does() -> None:
    assert pytest_plugin.FIXTURE == recorded.FIXTURE

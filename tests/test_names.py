"""The one script-id rule: its syntax, the stricter rule for new names, and the id
`marvin`, reserved for the local Marvin (its `up:marvin` task and `.trek/env/marvin.json`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trek_tasks.cli import main
from trek_tasks.errors import BadInput, ManyErrors
from trek_tasks.install import read_packages, requirement_from_argument
from trek_tasks.names import SCRIPT_ID, name_problem, script_id_problem
from trek_tasks.project import Project
from trek_tasks.validate import load_schema, validate_project

RESERVED = "the script id 'marvin' is reserved for the local Marvin; use another id"
PARA = """\
id: marvin
schemaVersion: '1.0'
title: Marvin
version: '0.1.0'
inputs: {}
outputs: {}
"""


@pytest.mark.parametrize(
    ("script_id", "problem"),
    [
        ("detectredis", None),
        ("host.detect-redis_2", None),
        ("3scale", None),
        ("marvin", RESERVED),
        ("Marvin", "the script id 'Marvin' is reserved for the local Marvin; use another id"),
        ("marvin2", None),
        ("x y", "'x y' is not a valid script id"),
        ("_x", "'_x' is not a valid script id"),
        ("", "'' is not a valid script id"),
    ],
)
def test_script_id_rule(script_id: str, problem: str | None) -> None:
    assert script_id_problem(script_id) == problem


@pytest.mark.parametrize("name", ["flow", "a.b", "b-1", "c_d", "Z9"])
def test_every_new_name_is_a_valid_script_id(name: str) -> None:
    assert name_problem(name) is None
    assert SCRIPT_ID.fullmatch(name)


def test_the_schemas_use_the_same_rule() -> None:
    pattern = f"^{SCRIPT_ID.pattern}$"
    assert load_schema("para")["properties"]["id"]["pattern"] == pattern
    packages = load_schema("packages")["properties"]["packages"]["propertyNames"]
    assert packages["pattern"] == pattern


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_createblcks_refuses_marvin(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["createblcks", "marvin", "-y"]) == 2
    assert capsys.readouterr().err == f"trek: error: NAME 'marvin': {RESERVED}\n"
    assert list(cwd.iterdir()) == []


def test_initblcks_refuses_a_folder_named_marvin(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (cwd / "marvin").mkdir()
    assert main(["initblcks", "-p", "marvin"]) == 2
    assert capsys.readouterr().err == f"trek: error: folder name 'marvin': {RESERVED}\n"
    assert list((cwd / "marvin").iterdir()) == []


def test_install_refuses_marvin(cwd: Path) -> None:
    with pytest.raises(BadInput) as caught:
        requirement_from_argument("marvin==1.0", cwd)
    assert str(caught.value) == f"marvin==1.0: {RESERVED}"
    (cwd / "packages.json").write_text(json.dumps({"packages": {"marvin": ""}}))
    with pytest.raises(BadInput) as caught:
        read_packages(cwd)
    assert str(caught.value) == f"packages.json:1:15: {RESERVED}"


def test_validate_refuses_a_script_or_package_named_marvin(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["createproject", "flow", "-y"]) == 0
    root = cwd / "flow"
    script = root / "src" / "blcks" / "marvin"
    (script / "handler").mkdir(parents=True)
    (script / "handler" / "handler.py").write_text("")  # a script validate takes as whole
    (script / "marvin.para").write_text(PARA)
    (root / "packages.json").write_text(json.dumps({"packages": {"marvin": ""}}))
    with pytest.raises(ManyErrors) as caught:
        validate_project(Project.load(root))
    assert [str(e) for e in caught.value.errors] == [
        f"flow/src/blcks/marvin/marvin.para:1:5: {RESERVED}",
        f"flow/packages.json:1:15: {RESERVED}",
    ]

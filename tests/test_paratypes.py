"""One para type checker: `validate` and the engine's run-time check agree, `$ref`
types included, and 3.0 is an integer (JSON Schema's meaning)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trek_tasks.engine import check_inputs
from trek_tasks.errors import BadInput
from trek_tasks.paratypes import field_type, is_type, type_problem
from trek_tasks.validate import validate_para

HOSTS = {"$ref": "pn_ids_host"}


@pytest.mark.parametrize(
    ("value", "type_name", "expected"),
    [
        (3, "integer", True),
        (3.0, "integer", True),
        (3.5, "integer", False),
        (True, "integer", False),
        (True, "number", False),
        (2.5, "number", True),
        ("3", "integer", False),
        (["a"], "array", True),
        ({}, "object", True),
        (False, "boolean", True),
        ("x", "string", True),
    ],
)
def test_is_type(value: Any, type_name: str, expected: bool) -> None:
    assert is_type(value, type_name) is expected


def test_ref_types_resolve_to_the_builtin_type() -> None:
    assert field_type(HOSTS) == "array"
    assert field_type({"$ref": "pn_sp_password"}) == "string"
    assert field_type({"type": "integer"}) == "integer"
    assert field_type({"$ref": "pn_nothing"}) is None
    assert field_type({}) is None


def run_time_problem(inputs: dict[str, Any], fields: dict[str, Any]) -> str | None:
    try:
        check_inputs(inputs, {"inputs": fields})
    except BadInput as err:
        return err.message
    return None


def test_run_time_accepts_a_whole_float_for_an_integer() -> None:
    assert run_time_problem({"n": 3.0}, {"n": {"type": "integer"}}) is None
    assert run_time_problem({"n": 3.5}, {"n": {"type": "integer"}}) == (
        "input 'n' must be integer, got float 3.5"
    )


def test_run_time_checks_ref_types() -> None:
    assert run_time_problem({"ids": "abc"}, {"ids": HOSTS}) == (
        "input 'ids' must be array, got str 'abc'"
    )
    assert run_time_problem({"ids": ["h1"]}, {"ids": HOSTS}) is None
    assert type_problem("ids", None, HOSTS) is None


PARA = """\
id: demo
schemaVersion: '1.0'
title: Demo
version: '0.1.0'
inputs:
  n:
    type: integer
    default: 3.0
  ids:
    $ref: pn_ids_host
    default: abc
outputs: {}
"""


def test_validate_and_run_time_agree(tmp_path: Path) -> None:
    para = tmp_path / "demo" / "demo.para"
    para.parent.mkdir()
    para.write_text(PARA)
    errors, _ = validate_para(para, own=True)
    assert [e.message for e in errors] == ["input 'ids': default 'abc' is not a list"]
    fields = {"n": {"type": "integer"}, "ids": HOSTS}
    assert run_time_problem({"n": 3.0}, fields) is None
    assert run_time_problem({"ids": "abc"}, fields) is not None

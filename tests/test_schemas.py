"""The JSON Schemas shipped in trek_tasks/schemas: valid, consistent, and what they accept."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from test_validate import REFERENCE

from trek_tasks.config import DEFAULTS
from trek_tasks.expr import TYPES
from trek_tasks.runtimes import CONFIG_CHOICES
from trek_tasks.validate import SCHEMA_NAMES, builtin_types, load_schema


def accepts(name: str, instance: Any) -> bool:
    return Draft202012Validator(load_schema(name)).is_valid(instance)


def test_every_shipped_schema_is_named_and_valid() -> None:
    shipped = sorted(
        p.name[: -len(".json")]
        for p in (resources.files("trek_tasks") / "schemas").iterdir()
        if p.name.endswith(".json")
    )
    assert shipped == sorted(SCHEMA_NAMES)
    for name in SCHEMA_NAMES:
        Draft202012Validator.check_schema(load_schema(name))


def test_load_schema_reads_once_and_rejects_unknown_names() -> None:
    assert load_schema("graph") is load_schema("graph")
    with pytest.raises(ValueError, match="unknown schema 'grap'"):
        load_schema("grap")


def test_config_schema_knows_exactly_the_config_keys() -> None:
    schema = load_schema("config")
    assert sorted(schema["properties"]) == sorted(DEFAULTS)
    assert schema["properties"]["runtime"]["enum"] == [*CONFIG_CHOICES, "", None]
    assert accepts("config", DEFAULTS)
    assert not accepts("config", {"runtime": "nowhere"})
    assert not accepts("config", {"router_prot": 5000})


def test_types_agree_with_expr() -> None:
    graph, data, para = load_schema("graph"), load_schema("data"), load_schema("para")
    assert graph["$defs"]["binding"]["properties"]["type"]["enum"] == list(TYPES)
    assert data["additionalProperties"]["additionalProperties"]["properties"]["type"][
        "enum"
    ] == list(TYPES)
    assert sorted(para["$defs"]["field"]["properties"]["type"]["enum"]) == sorted(TYPES)


def test_para_ref_names_are_the_builtin_types_and_each_is_a_valid_field() -> None:
    para = load_schema("para")
    assert para["$defs"]["field"]["properties"]["$ref"]["enum"] == list(builtin_types())
    field = Draft202012Validator({"$ref": "#/$defs/field", "$defs": para["$defs"]})
    for name, spec in builtin_types().items():
        assert list(field.iter_errors(spec)) == [], name
    assert builtin_types()["pn_sp_nsrecord"]["properties"]["nameServers"]["minItems"] == 2
    assert builtin_types()["pn_ids_chatpair"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "chatbot pair ids",
    }


@pytest.mark.parametrize(
    "name, path",
    [
        ("graph", "src/graph.yml"),
        ("para", "src/blcks/detectredis/detectredis.para"),
        ("para", "trek_packages/blckssettags/blckssettags.para"),
        ("packages", "packages.json"),
        ("config", ".trek/config.json"),
        ("data", "inputs/data.yml"),
        ("event", "inputs/event.yml"),
    ],
)
def test_reference_files_fit_their_schema(name: str, path: str) -> None:
    assert accepts(name, yaml.safe_load(REFERENCE[path]))


def test_installed_notification_para_only_breaks_the_field_key_rule() -> None:
    data = yaml.safe_load(REFERENCE["trek_packages/notification/notification.para"])
    errors = list(Draft202012Validator(load_schema("para")).iter_errors(data))
    assert [(list(e.absolute_path), e.validator) for e in errors] == [
        (["outputs", "status"], "additionalProperties")
    ]


def graph_with(node: dict[str, Any] | None = None, edge: dict[str, Any] | None = None) -> Any:
    nodes = [{"id": "0", "metadata": {"type": "trigger", "sources": []}}]
    return {
        "graph": {
            "metadata": {"version": "1.0.0", "title": "t", "templateId": "t"},
            "nodes": nodes + ([node] if node else []),
            "edges": [edge] if edge else [],
        }
    }


@pytest.mark.parametrize(
    "node, ok",
    [
        ({"id": "12", "metadata": {"type": "action", "script": {"id": "x"}}}, True),
        ({"id": "1", "metadata": {"type": "action", "position": {"x": 1, "y": 2.5}}}, True),
        ({"id": "1", "metadata": {"type": "action", "position": {"x": 1}}}, False),
        ({"id": "1a", "metadata": {"type": "action"}}, False),
        ({"id": 1, "metadata": {"type": "action"}}, False),
        ({"id": "1", "metadata": {"type": "step"}}, False),
        ({"id": "1", "metadata": {"type": "trigger", "sources": [{"type": "manual"}]}}, True),
        ({"id": "1", "metadata": {"type": "trigger", "sources": [{"type": "cron"}]}}, False),
        ({"id": "1", "metadata": {"type": "trigger", "sources": [{"type": "event"}]}}, False),
        ({"id": "1", "metadata": {"type": "trigger", "sources": [{"type": "webhook"}]}}, False),
    ],
)
def test_graph_schema_nodes(node: dict[str, Any], ok: bool) -> None:
    assert accepts("graph", graph_with(node=node)) is ok


@pytest.mark.parametrize(
    "edge, ok",
    [
        ({"source": "0", "target": "1"}, True),
        ({"source": "0", "target": "1", "metadata": None}, True),
        ({"source": "0", "target": "1", "metadata": {"filters": {"and": []}}}, True),
        ({"source": "0", "target": "1", "metadata": {"filters": ["x"]}}, False),
        ({"source": "0", "target": "1", "metadata": {"label": "x"}}, False),
        ({"source": "0"}, False),
        (
            {
                "source": "0",
                "target": "1",
                "metadata": {"binding": [{"property": "a.0", "value": None, "type": "array"}]},
            },
            True,
        ),
        (
            {
                "source": "0",
                "target": "1",
                "metadata": {"binding": [{"property": "a..b", "value": 1, "type": "number"}]},
            },
            False,
        ),
        (
            {
                "source": "0",
                "target": "1",
                "metadata": {"binding": [{"property": "a", "value": 1}]},
            },
            False,
        ),
    ],
)
def test_graph_schema_edges(edge: dict[str, Any], ok: bool) -> None:
    assert accepts("graph", graph_with(edge=edge)) is ok


@pytest.mark.parametrize(
    "name, instance, ok",
    [
        ("packages", {"packages": {"a": "==1.0", "b": "https://x/b.zip"}}, True),
        ("packages", {"packages": {"a": 1}}, False),
        ("packages", {"scripts": {}}, False),
        (
            "lock",
            {"version": 1, "packages": {"a": {"version": "1", "sha256": "0" * 64, "source": "s"}}},
            True,
        ),
        (
            "lock",
            {"version": 1, "packages": {"a": {"version": "1", "sha256": "X" * 64, "source": "s"}}},
            False,
        ),
        ("lock", {"version": 1, "packages": {"a": {"version": "1", "source": "s"}}}, False),
        ("data", None, True),
        ("data", {"4-5": {"a.0": {"type": "string", "value": "x"}}}, True),
        ("data", {"4-5": {"a": {"value": "x"}}}, False),
        ("data", {"45": {}}, False),
        ("data", {5: {}}, False),
        ("event", None, True),
        ("event", {"a": [1]}, True),
        ("event", ["a"], False),
        ("config", {"router_port": ""}, True),
        ("config", {"router_port": 0}, True),
        ("config", {"router_port": -1}, False),
        ("config", {"action_timeout": 2.5, "envs": {"A": 1, "B": True}}, True),
        ("config", {"envs": {"A": None}}, False),
        ("config", {"marvin_url": "http://127.0.0.1:8000"}, True),
        ("config", {"marvin_url": "ftp://x"}, False),
    ],
)
def test_other_schemas(name: str, instance: Any, ok: bool) -> None:
    assert accepts(name, instance) is ok

"""Reading user files with line marks, and writing files atomically."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.files import (
    content_digest,
    display,
    dump_json,
    load_json,
    load_marked,
    load_yaml,
    write_atomic,
)


def error_of(load: object, path: Path) -> str:
    with pytest.raises(BadInput) as info:
        load(path)  # type: ignore[operator]
    return str(info.value)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_load_yaml_reads_a_document(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("a: [1, 2]\nb: {c: 'd'}\n")
    assert load_yaml(tmp_path / "a.yml") == {"a": [1, 2], "b": {"c": "d"}}


def test_empty_yaml_is_none(tmp_path: Path) -> None:
    (tmp_path / "empty.yml").write_text("")
    assert load_yaml(tmp_path / "empty.yml") is None


def test_bad_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("a: [1, 2\nb: 3\n")
    assert error_of(load_yaml, tmp_path / "a.yml") == (
        "a.yml:2:2: invalid YAML: did not find expected ',' or ']'"
    )


def test_bad_indentation_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text("a:\n  b: c\n d: e\n")
    assert error_of(load_yaml, tmp_path / "b.yml") == (
        "b.yml:3:2: invalid YAML: did not find expected key"
    )


def test_bad_json_names_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{\n  "a": 1,\n}\n')
    assert error_of(load_json, tmp_path / "c.json") == (
        "c.json:3:1: invalid JSON: Expecting property name enclosed in double quotes"
    )


def test_missing_file(tmp_path: Path) -> None:
    assert error_of(load_yaml, tmp_path / "nope.yml") == "nope.yml: file not found"
    assert error_of(load_json, tmp_path / "nope.json") == "nope.json: file not found"


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "d.yml").write_bytes(b"a: \xff\n")
    assert error_of(load_yaml, tmp_path / "d.yml") == (
        "d.yml:1:4: not UTF-8 text (byte 0xff: invalid start byte)"
    )


def test_unreadable_path(tmp_path: Path) -> None:
    (tmp_path / "folder.yml").mkdir()
    assert error_of(load_yaml, tmp_path / "folder.yml") == ("folder.yml: a folder, not a file")


def test_display_is_relative_to_root_then_cwd(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    target = project / "src" / "graph.yml"
    assert display(target, project) == "src/graph.yml"
    assert display(target) == "proj/src/graph.yml"
    outside = Path("/") / "etc" / "hosts"
    assert display(outside, project) == str(outside)


def test_errors_are_shown_relative_to_the_given_root(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src" / "graph.yml").write_text("graph: [\n")
    with pytest.raises(BadInput) as info:
        load_yaml(root / "src" / "graph.yml", root)
    assert info.value.where == "src/graph.yml:2:1"


GRAPH = """\
graph:
  nodes:
    - id: '0'
      metadata:
        type: trigger
    - id: '2'
      metadata: {type: action, script: {id: detectredis}}
  edges: []
"""


def test_load_marked_keeps_where_each_value_starts(tmp_path: Path) -> None:
    (tmp_path / "graph.yml").write_text(GRAPH)
    doc = load_marked(tmp_path / "graph.yml")
    assert doc.data["graph"]["nodes"][1]["metadata"]["script"] == {"id": "detectredis"}
    assert doc.where(("graph", "nodes", 0, "metadata", "type")) == "graph.yml:5:15"
    assert doc.where(("graph", "nodes", 1)) == "graph.yml:6:7"
    assert doc.where(("graph", "nodes", 1, "metadata", "script", "id")) == "graph.yml:7:45"
    assert doc.where(("graph", "edges")) == "graph.yml:8:10"


def test_load_marked_key_marks_and_fallback_to_the_deepest_known_prefix(tmp_path: Path) -> None:
    (tmp_path / "graph.yml").write_text(GRAPH)
    doc = load_marked(tmp_path / "graph.yml")
    assert doc.where(("graph", "nodes", 0, "metadata", "type"), key=True) == "graph.yml:5:9"
    # a path that does not exist points at the closest thing that does
    assert doc.where(("graph", "nodes", 1, "metadata", "missing")) == "graph.yml:7:17"
    assert doc.where(("graph", "nodes", 1, "metadata", "missing"), key=True) == "graph.yml:7:7"
    assert doc.where(()) == "graph.yml:1:1"


def test_load_marked_reads_json_with_marks(tmp_path: Path) -> None:
    (tmp_path / "packages.json").write_text('{\n  "packages": {\n    "a": "==1.0"\n  }\n}\n')
    doc = load_marked(tmp_path / "packages.json")
    assert doc.data == {"packages": {"a": "==1.0"}}
    assert doc.where(("packages", "a")) == "packages.json:3:10"


def test_load_marked_rejects_bad_json_as_json(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{\n  "a": 1,\n}\n')
    assert error_of(load_marked, tmp_path / "c.json") == (
        "c.json:3:1: invalid JSON: Expecting property name enclosed in double quotes"
    )


def test_load_marked_bad_yaml(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text("a:\n  b: c\n d: e\n")
    assert error_of(load_marked, tmp_path / "b.yml") == (
        "b.yml:3:2: invalid YAML: did not find expected key"
    )


def test_load_marked_rejects_unhashable_keys(tmp_path: Path) -> None:
    (tmp_path / "e.yml").write_text("? [1, 2]\n: x\n")
    assert (
        error_of(load_marked, tmp_path / "e.yml")
        == "e.yml:1:1: a mapping key must be a plain value"
    )


def test_load_marked_empty_document(tmp_path: Path) -> None:
    (tmp_path / "empty.yml").write_text("# nothing\n")
    doc = load_marked(tmp_path / "empty.yml")
    assert doc.data is None
    assert doc.where(("anything",)) == "empty.yml:1:1"


def test_load_marked_merges_yaml_anchors(tmp_path: Path) -> None:
    (tmp_path / "m.yml").write_text("base: &b {x: 1}\nchild:\n  <<: *b\n  y: 2\n")
    assert load_marked(tmp_path / "m.yml").data["child"] == {"x": 1, "y": 2}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomic_creates_parents_and_writes_0644(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    write_atomic(target, "héllo\n")
    assert target.read_text(encoding="utf-8") == "héllo\n"
    assert mode(target) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_write_atomic_private_is_0600_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "secret.json"
    write_atomic(target, "old")
    write_atomic(target, b"new", private=True)
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o600
    write_atomic(target, b"public")
    assert mode(target) == 0o644


def test_write_atomic_leaves_no_temp_file_when_it_fails(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    (target / "inside").mkdir(parents=True)
    with pytest.raises(StepFailed) as raised:
        write_atomic(target, "x", root=tmp_path)
    assert str(raised.value) == "taken: is a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_dump_json_style() -> None:
    text = dump_json({"b": 1, "a": {"é": [1]}})
    assert text == '{\n  "b": 1,\n  "a": {\n    "é": [\n      1\n    ]\n  }\n}\n'
    assert json.loads(text) == {"b": 1, "a": {"é": [1]}}


def test_a_kept_parse_is_read_while_the_text_is_unchanged(tmp_path: Path) -> None:
    path, keep = tmp_path / "graph.yml", tmp_path / ".trek" / "workflow.json"
    path.write_text("graph: {nodes: [1, 2]}\n")
    assert load_yaml(path, keep=keep) == {"graph": {"nodes": [1, 2]}}
    kept = json.loads(keep.read_text())
    assert kept["data"] == {"graph": {"nodes": [1, 2]}}
    # what is kept is what a later command reads, without parsing the YAML again
    keep.write_text(json.dumps({**kept, "data": {"from": "keep"}}))
    assert load_yaml(path, keep=keep) == {"from": "keep"}
    assert content_digest(path, keep) != content_digest(path)
    # an edit changes the text's digest: the file is parsed again and kept anew
    path.write_text("graph: {nodes: [3]}\n")
    assert load_yaml(path, keep=keep) == {"graph": {"nodes": [3]}}
    assert json.loads(keep.read_text())["data"] == {"graph": {"nodes": [3]}}
    assert content_digest(path, keep) == content_digest(path)


def test_data_json_cannot_hold_exactly_is_not_kept(tmp_path: Path) -> None:
    path, keep = tmp_path / "graph.yml", tmp_path / "workflow.json"
    for text in ("day: 2024-01-02\n", "1: one\n"):  # a date; a key that is not text
        path.write_text(text)
        assert load_yaml(path, keep=keep) == load_yaml(path)
        assert not keep.exists(), text
    keep.mkdir()  # a keep that cannot be written only costs a parse
    path.write_text("a: 1\n")
    assert load_yaml(path, keep=keep) == {"a": 1}


def test_content_digest_follows_what_a_file_says_not_how(tmp_path: Path) -> None:
    path = tmp_path / "graph.yml"
    path.write_text("a: 1\nb: [x, 'y']\n")
    digest = content_digest(path)
    for same in (
        '# a comment\na: 1   # another\n\nb:\n  - x\n  - "y"\n',
        "{a: 1, b: [x, y]}\n",
    ):
        path.write_text(same)
        assert content_digest(path) == digest, same
    for other in ("a: 1\nb: [x, z]\n", "a: '1'\nb: [x, y]\n", "b: [x, y]\na: 1\n"):
        path.write_text(other)
        assert content_digest(path) != digest, other


def test_content_digest_of_json_missing_and_unparsable_files(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    assert content_digest(path) == ""
    path.write_text('{"a": [1, 2]}')
    digest = content_digest(path)
    path.write_text('{\n  "a": [\n    1,\n    2\n  ]\n}\n')
    assert content_digest(path) == digest
    path.write_text("{bad")
    broken = content_digest(path)
    assert broken not in ("", digest)
    path.write_text("{bad ")
    assert content_digest(path) != broken  # bytes, then: the step reading it reports it

"""Property-based fuzzing of every kind of user file through the real CLI (issue 10).

Each example mutates one file of an installed copy of the example project (its
structure, its types, its sizes, its encoding, its YAML anchors) and runs ``trek
validate``, ``trek graph`` or ``trek pack -a`` in-process, through ``trek_tasks.cli.main``.
Whatever the file holds: exit 0 or 2, every stderr line one ``trek:`` line, each error
naming a file that exists, no traceback, and after an error nothing written but doit's
own state. The profile comes from ``HYPOTHESIS_PROFILE`` (tests/conftest.py): ``dev``
(quick, the default) or ``ci`` (what ``.ci/run`` selects).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.metadata
import io
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import doit.plugin
import pytest
import yaml
from conftest import EXAMPLE
from hypothesis import given
from hypothesis import strategies as st

from trek_tasks.cli import main
from trek_tasks.files import MAX_FILE_BYTES
from trek_tasks.project import INSTALLED_DIR, LOCK, PACKAGES, copy_sources


class Kind(NamedTuple):
    name: str
    paths: tuple[str, ...]  # the files of this kind in the project
    json: bool


KINDS = [
    Kind("graph", ("src/graph.yml",), False),
    Kind(
        "para",
        (
            "src/blcks/detectredis/detectredis.para",
            f"{INSTALLED_DIR}/notification/notification.para",
        ),
        False,
    ),
    Kind("data", ("inputs/data.yml",), False),
    Kind("event", ("inputs/event.yml",), False),
    Kind("inventory", ("inputs/inventory.yml",), False),
    Kind("packages", (PACKAGES,), True),
    Kind("lock", (LOCK,), True),
    Kind("config", (".trek/config.json",), True),
    Kind("manifest", ("manifest.json",), True),
]
# validate is the cheapest and reads every kind; graph and pack -a add doit's path
COMMANDS = (["validate"], ["validate"], ["graph"], ["pack", "-a"])
DOIT_STATE = re.compile(r"\.trek/doit\.db.*")
ERROR = "trek: error: "
LOCATED = re.compile(r"(?P<file>.+?)(?::\d+:\d+)?: ")
MAX_LINE = 600  # a message with its values cut (files.shown) stays readable
HANG = 20.0  # seconds: far above the slowest honest example

# --- values -------------------------------------------------------------------------

# Sentinels written as plain words, replaced in the serialized text by what no
# serializer writes: a number Python refuses to read, nesting deeper than any limit.
BIG_INT = "BIGINTSENTINEL"
DEEP = "DEEPSENTINEL"
HUGE = "HUGESENTINEL"
SENTINELS = {
    BIG_INT: "9" * 5000,
    DEEP: "[" * 1000 + "]" * 1000,
    HUGE: json.dumps("z" * 300_000),
}
NASTY_TEXT = [
    "",
    " ",
    "\n",
    "a\nb",
    "line\r\nbreak",
    "\t",
    "\x00",
    "\x01",
    "\x7f",
    "\u2028",
    "\ufeff",
    "é",
    "🙂",
    "x" * 300,
    "y" * 5000 + "\n" + "y" * 10,
    "../outside-graph.yml",
    "../../../../etc/passwd",
    "/dev/zero",
    "/etc/passwd",
    "/",
    ".",
    "..",
    "src",
    "inputs",
    "src/graph.yml",
    "src/../src/graph.yml",
    "manifest.json",
    "inputs/data.yml",
    "a" * 300 + ".yml",
    "nul\x00.yml",
    "{{ x }}",
    "*",
    "&a",
    "!!binary",
    "yes",
    "~",
    "null",
    "0x1F",
    "1e3",
    "NaN",
    "2001-13-45",
    "==0.5.0",
    ">=",
    "===",
    "trek_packages/x.zip",
    "0",
    "-1",
    "99999",
    "'",
    '"',
    "\\",
    "%",
    BIG_INT,
    DEEP,
    HUGE,
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(NASTY_TEXT),
)
keys = st.one_of(st.text(max_size=12), st.sampled_from(NASTY_TEXT[:40]))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=8,
)


def laughs(levels: int, width: int = 10) -> list[Any]:
    """A "billion laughs" value: ``width`` references to the level below, ``levels`` deep
    (a YAML dump writes each level once, with an anchor, and aliases to it)."""
    value: list[Any] = ["lol"] * width
    for _ in range(levels - 1):
        value = [value] * width
    return value


def yaml_laughs(levels: int) -> bytes:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]")
    return ("\n".join(lines) + "\n").encode()


def deep_block(levels: int) -> bytes:
    return "".join(f"{'  ' * i}a:\n" for i in range(levels)).encode() + b"  " * levels + b"x\n"


WHOLE_FILES = [
    b"",
    b"   \n",
    b"# only a comment\n",
    b"null\n",
    b"[]\n",
    b"{}\n",
    b'"text"\n',
    b"1\n",
    b"true\n",
    b"x: \x01\n",
    b"\xff\xfe\x00\x00",
    b"\xef\xbb\xbf{}\n",
    b"[" * 1000,
    b"[" * 100_000,
    b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b"9" * 5000,
    b'{"packages": ' + b"9" * 5000 + b"}",
    b"a: &a [*a]\n",
    b"a: *nothing\n",
    b"--- 1\n--- 2\n",
    b"!!python/object/apply:os.system ['true']\n",
    b"d: 2001-13-45\n",
    b"? [1, 2]\n: x\n",
    deep_block(150),
    yaml_laughs(3),
    yaml_laughs(9),
]


# --- mutations ----------------------------------------------------------------------


def paths_of(data: Any) -> list[tuple[Any, ...]]:
    """A path into ``data`` (keys and indices) to each of its values, the root first; a
    value shared by several places (an alias to be) is entered once."""
    found: list[tuple[Any, ...]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    seen: set[int] = set()
    while stack:
        path, value = stack.pop()
        found.append(path)
        if isinstance(value, (dict, list)):
            if id(value) in seen:
                continue
            seen.add(id(value))
        if isinstance(value, dict):
            stack.extend((path + (k,), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((path + (i,), v) for i, v in enumerate(value))
    return found


def at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def mutate_data(draw: Callable[[Any], Any], data: Any, as_json: bool) -> Any:
    """``data`` after one to three random edits; the edits may share values (aliases)."""
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths_of(data)))
        value = at(data, path)
        ops = ["replace", "nasty", "wrap", "insert", "delete", "rename", "grow"]
        if not as_json:
            ops += ["share", "laughs"]
        op = draw(st.sampled_from(ops))
        if op == "insert" and isinstance(value, (dict, list)):
            if isinstance(value, dict):
                value[draw(keys)] = draw(values)
            else:
                value.insert(draw(st.integers(0, len(value))), draw(values))
            continue
        if op == "grow" and isinstance(value, (dict, list)):
            items = value if isinstance(value, list) else list(value.values())
            item = items[0] if items else draw(values)
            new: Any = [copy.deepcopy(item) for _ in range(draw(st.sampled_from([50, 2000])))]
        elif op == "delete" and path:
            del at(data, path[:-1])[path[-1]]
            continue
        elif op == "rename" and path and isinstance(path[-1], str):
            parent = at(data, path[:-1])
            parent[draw(keys)] = parent.pop(path[-1])
            continue
        elif op == "wrap":
            new = draw(st.sampled_from([[value], {draw(keys): value}]))
        elif op == "share":
            new = at(data, draw(st.sampled_from(paths_of(data))))
            new = new if new is not data else copy.deepcopy(new)
        elif op == "laughs":
            new = laughs(draw(st.integers(2, 9)))
        elif op == "nasty":
            new = draw(st.sampled_from(NASTY_TEXT))
        else:
            new = draw(values)
        if path:
            at(data, path[:-1])[path[-1]] = new
        else:
            data = new
    return data


def serialize(draw: Callable[[Any], Any], data: Any, as_json: bool) -> bytes:
    if as_json:
        text = json.dumps(data, indent=draw(st.sampled_from([None, 2])), ensure_ascii=False)
    else:
        text = yaml.safe_dump(
            data,
            allow_unicode=draw(st.booleans()),
            default_flow_style=draw(st.sampled_from([False, None, True])),
            sort_keys=False,
        )
    for sentinel, written in SENTINELS.items():
        for quoted in (f'"{sentinel}"', f"'{sentinel}'", sentinel):
            text = text.replace(quoted, written)
    return text.encode("utf-8", "surrogatepass")


INSERTS = [
    b"\x00",
    b"\x01",
    b"\x1b",
    b"\x7f",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xef\xbb\xbf",
    b"\r",
    b"\t",
    b"\n",
    b"&a ",
    b"*a",
    b"<<: *a\n",
    b"!!python/object:os.system ",
    b"!!int ",
    b"!!timestamp ",
    b"---\n",
    b"%YAML 1.1\n",
    b"? ",
    b"{",
    b"[",
    b"]",
    b'"',
    b"'",
    b"#",
    b":",
    b"- ",
    b",",
    b"9" * 5000,
]


def mutate_bytes(draw: Callable[[Any], Any], raw: bytes) -> bytes:
    op = draw(st.sampled_from(["insert", "delete", "duplicate", "truncate", "encode", "crlf"]))
    pos = draw(st.integers(0, len(raw)))
    end = draw(st.integers(pos, len(raw)))
    if op == "insert":
        return raw[:pos] + draw(st.sampled_from(INSERTS) | st.binary(max_size=4)) + raw[pos:]
    if op == "delete":
        return raw[:pos] + raw[end:]
    if op == "duplicate":
        return raw[:end] + raw[pos:end] + raw[end:]
    if op == "truncate":
        return raw[:pos]
    if op == "encode":
        codec = draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "utf-8-sig"]))
        return raw.decode("utf-8", "replace").encode(codec, "replace")
    return raw.replace(b"\n", b"\r\n")


@st.composite
def mutated(draw: Callable[[Any], Any], original: bytes, as_json: bool) -> bytes:
    """A mutation of the file ``original``: of its structure, its text or all of it."""
    how = draw(st.sampled_from(["structure", "structure", "text", "text", "whole", "oversize"]))
    if how == "structure":
        data = json.loads(original) if as_json else yaml.safe_load(original)
        return serialize(draw, mutate_data(draw, data, as_json), as_json)
    if how == "text":
        raw = original
        for _ in range(draw(st.integers(1, 3))):
            raw = mutate_bytes(draw, raw)
        return raw
    if how == "whole":
        return draw(st.sampled_from(WHOLE_FILES) | st.binary(max_size=64))
    return original + b"\n" + b"#" * MAX_FILE_BYTES + b"\n"


# --- the project and what a run may change ------------------------------------------


@dataclass
class Workspace:
    root: Path
    pristine: Path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """An installed, valid copy of the example and a pristine copy of it to restore from
    (module-scoped: building it for every example would cost more than the example)."""
    base = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as patch:
        # doit looks up its plugins in every distribution's metadata at each run: once is
        # enough here, and makes a run through doit a third cheaper.
        found = functools.cache(importlib.metadata.entry_points)
        patch.setattr(doit.plugin, "entry_points_impl", lambda: found)
        patch.setenv("HOME", str(base / "home"))
        patch.setenv("TREK_GLOBAL_CONFIG", str(base / "home" / ".trek" / "config.json"))
        patch.setenv("TREK_HOME", str(base / "trek-home"))
        root = copy_sources(EXAMPLE, base / "project")
        assert run(root, ["install"])[0] == 0
        assert run(root, ["validate"])[0] == 0
        pristine = base / "pristine"
        shutil.copytree(root, pristine, symlinks=True)
        yield Workspace(root, pristine)


def run(root: Path, command: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*command, "-p", str(root)])
    return code, out.getvalue(), err.getvalue()


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Each file below ``root`` but doit's state: its size and modification time."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if not DOIT_STATE.fullmatch(rel):
                info = os.lstat(path)
                found[rel] = (info.st_size, info.st_mtime_ns)
    return found


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel))


def restore(space: Workspace, path: str, original: bytes, changed: list[str] | None) -> None:
    """Put back the mutated file, and the installed scripts when a run changed them (or may
    have: ``changed`` is None when the run did not finish)."""
    (space.root / path).write_bytes(original)
    kept = (INSTALLED_DIR + "/", LOCK, PACKAGES)
    if changed is None or any(rel.startswith(kept) and rel != path for rel in changed):
        shutil.rmtree(space.root / INSTALLED_DIR)
        shutil.copytree(space.pristine / INSTALLED_DIR, space.root / INSTALLED_DIR, symlinks=True)
        for name in (LOCK, PACKAGES):
            shutil.copy2(space.pristine / name, space.root / name)


def check_output(root: Path, code: int, out: str, err: str) -> list[str]:
    """The user-visible properties of one run; returns the error lines."""
    assert code in (0, 2), err
    assert "Traceback" not in out + err
    lines = err.splitlines()
    for line in lines:
        assert line.startswith((ERROR, "trek: warning: ")), line
        assert len(line) <= MAX_LINE, line[:200]
    errors = [line[len(ERROR) :] for line in lines if line.startswith(ERROR)]
    assert bool(errors) == (code != 0), err
    for line in errors:
        located = LOCATED.match(line)
        assert located, line
        named = Path(located.group("file"))
        assert (root / named).exists() or named.exists(), line
    return errors


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
@given(data=st.data())
def test_a_mutated_file_fails_cleanly(workspace: Workspace, kind: Kind, data: Any) -> None:
    root = workspace.root
    path = data.draw(st.sampled_from(kind.paths), label="file")
    original = (workspace.pristine / path).read_bytes()
    content = data.draw(mutated(original, kind.json), label="content")
    command = data.draw(st.sampled_from(COMMANDS), label="command")
    (root / path).write_bytes(content)
    before = snapshot(root)
    changed = None
    started = time.monotonic()
    try:
        code, out, err = run(root, command)
        elapsed = time.monotonic() - started
        changed = changes(before, snapshot(root))
    finally:
        restore(workspace, path, original, changed)
    assert elapsed < HANG, f"{command} took {elapsed:.1f} s"
    errors = check_output(root, code, out, err)
    if code == 0:
        return
    if kind.name in ("packages", "lock") and not names_packages(root, errors):
        # packages.json itself was valid: installing what it says is the task's work
        changed = [c for c in changed if not c.startswith((INSTALLED_DIR, LOCK))]
    assert changed == [], f"exit {code} but changed {changed}"


def names_packages(root: Path, errors: list[str]) -> bool:
    names = (PACKAGES, LOCK, str(root / PACKAGES), str(root / LOCK))
    return any(line.startswith(names) for line in errors)

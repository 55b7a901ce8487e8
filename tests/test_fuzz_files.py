"""Property-based fuzzing of every kind of user file through the real CLI (issue 10).

Each example mutates one file of an installed copy of the example project or the
user's global config (its structure, its types, its sizes, its encoding, its YAML
anchors) and runs ``trek validate``, ``trek graph`` or ``trek pack -a`` in-process,
through ``trek_tasks.cli.main``. Whatever the file holds: exit 0 or 2, every stderr line
one ``trek:`` line of readable length, each error naming a file that exists, no
traceback, well within time and memory, and after an error nothing in the project or the
home written but doit's own state. The profile comes from ``HYPOTHESIS_PROFILE``
(tests/conftest.py): ``dev`` (quick, the default) or ``ci`` (what ``.ci/run`` selects).
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import io
import json
import os
import re
import resource
import shutil
import signal
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from unittest.mock import patch

import doit.plugin
import pytest
import yaml
from conftest import EXAMPLE, is_read_cache
from hypothesis import event, given
from hypothesis import strategies as st

from trek_tasks.cli import main
from trek_tasks.files import MAX_FILE_BYTES
from trek_tasks.project import INSTALLED_DIR, LOCK, PACKAGES, copy_sources


class Kind(NamedTuple):
    name: str
    paths: tuple[str, ...]  # the files of this kind, relative to the project
    json: bool


HOME = "../home"  # the user's home, beside the project
GLOBAL_CONFIG = f"{HOME}/.trek/config.json"
GLOBAL_SETTINGS = {"marvin_url": "http://127.0.0.1:9/", "action_timeout": 30, "envs": {"A": "1"}}

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
    Kind("config", (".trek/config.json", GLOBAL_CONFIG), True),
    Kind("manifest", ("manifest.json",), True),
]
# validate is the cheapest and reads every kind; graph and pack -a add doit's path
COMMANDS = (["validate"], ["validate"], ["graph"], ["pack", "-a"])
ERROR = "trek: error: "
LOCATED = re.compile(r"(?P<file>.+?)(?::\d+:\d+)?: ")
MAX_LINE = 600  # a message with its values cut (files.shown) stays readable
SLOW = 20.0  # seconds: far above the slowest honest example
HANG = 60.0  # seconds: a run still going is stopped (Hung), so CI cannot hang here
MAX_GROWTH_MB = 1024  # what the test process may grow by at its peak (it stays near 200 MB)

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
# keys of every type YAML reads as one (JSON writes them as strings)
keys = st.one_of(
    st.text(max_size=12),
    st.sampled_from(NASTY_TEXT[:40]),
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.just(1.5),
)
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
    """``data`` after one to three random edits; the edits may share values (aliases).

    At most one edit grows the data (500 copies of an item at most): two would multiply,
    and the file would take gigabytes to write."""
    grown = False
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths_of(data)))
        value = at(data, path)
        ops = ["replace", "nasty", "wrap", "insert", "delete", "rename"]
        if not grown:
            ops.append("grow")
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
            grown = True
            items = value if isinstance(value, list) else list(value.values())
            item = items[0] if items else draw(values)
            new: Any = [copy.deepcopy(item) for _ in range(draw(st.sampled_from([50, 500])))]
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
        text = yaml.dump(
            data,
            Dumper=yaml.CSafeDumper,  # libyaml's: the pure-Python one would double the cost
            allow_unicode=draw(st.booleans()),
            default_flow_style=draw(st.sampled_from([False, None, True])),
            sort_keys=False,
        )
    for sentinel, written in SENTINELS.items():  # the first of each only: they are large
        places = [(text.find(q), q) for q in (f'"{sentinel}"', f"'{sentinel}'", sentinel)]
        first = min(((pos, q) for pos, q in places if pos >= 0), default=None)
        if first is not None:
            text = text.replace(first[1], written, 1)
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


@functools.cache
def parsed(original: bytes, as_json: bool) -> Any:
    """The data of an original file (parsed once: each example edits a deep copy)."""
    return json.loads(original) if as_json else yaml.load(original, Loader=yaml.CSafeLoader)


class Mutation(NamedTuple):
    data: bytes
    size: int  # of the file written: past len(data) it is padded with NUL bytes, sparsely

    def write(self, path: Path) -> None:
        path.write_bytes(self.data)
        if self.size > len(self.data):
            os.truncate(path, self.size)


@st.composite
def mutated(draw: Callable[[Any], Any], original: bytes, as_json: bool) -> Mutation:
    """A mutation of the file ``original``: of its structure, its text or all of it, or
    the file grown past the size cap (sparsely: 8 MB written out cost 16 ms each time)."""
    content = mutated_bytes(draw, original, as_json)
    if content is None:
        return Mutation(original + b"\n# past the cap\n", MAX_FILE_BYTES + 1)
    return Mutation(content, len(content))


def mutated_bytes(draw: Callable[[Any], Any], original: bytes, as_json: bool) -> bytes | None:
    how = draw(st.sampled_from(["structure", "structure", "text", "text", "whole", "oversize"]))
    if how == "structure":
        data = copy.deepcopy(parsed(original, as_json))
        return serialize(draw, mutate_data(draw, data, as_json), as_json)
    if how == "text":
        raw = original
        for _ in range(draw(st.integers(1, 3))):
            raw = mutate_bytes(draw, raw)
        return raw
    if how == "whole":
        return draw(st.sampled_from(WHOLE_FILES) | st.binary(max_size=64))
    return None


# --- the project and what a run may change ------------------------------------------


@dataclass(repr=False)
class Workspace:
    """The installed project the examples mutate, the user's home beside it, and what a
    run needs to be compared and restored cheaply."""

    root: Path
    pristine: Path  # a copy of root as installed, to restore trek_packages/ from
    env: dict[str, str]
    originals: dict[str, bytes]  # each fuzzed file as it was
    tree: dict[str, tuple[int, ...]]  # snapshot() as the last example left it
    memory_mb: int = 0  # the most the process may have held at any time

    def __repr__(self) -> str:  # a falsifying example shows this, not every file's bytes
        return f"Workspace({self.root})"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """An installed, valid copy of the example and its user's global config (module-scoped:
    each example restores the file it mutated, far cheaper than a copy of the project)."""
    base = tmp_path_factory.mktemp("fuzz")
    home = base / "home"
    (home / ".trek").mkdir(parents=True)
    (home / ".trek" / "config.json").write_text(json.dumps(GLOBAL_SETTINGS, indent=2) + "\n")
    env = {"HOME": str(home), "TREK_GLOBAL_CONFIG": str(home / ".trek" / "config.json")}
    with pytest.MonkeyPatch.context() as patch:
        # doit looks up its plugins in every distribution's metadata at each run: once is
        # enough here, and halves a run through doit (45 -> 22 ms CPU, `trek graph`).
        found = functools.cache(importlib.metadata.entry_points)
        patch.setattr(doit.plugin, "entry_points_impl", lambda: found)
        root = copy_sources(EXAMPLE, base / "project")
        space = Workspace(root, base / "pristine", env, {}, {})
        assert run(space, ["install"])[0] == 0
        code, _, err = run(space, ["validate"])
        assert (code, ERROR in err) == (0, False), err  # every file starts valid
        shutil.copytree(root, space.pristine, symlinks=True)
        space.originals = {p: (root / p).read_bytes() for kind in KINDS for p in kind.paths}
        space.tree = snapshot(root)
        space.memory_mb = max(peak_mb(), resident_mb() + MAX_GROWTH_MB)
        yield space


def peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def resident_mb() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024 // 1024


class Hung(BaseException):
    """Raised in a run that takes far longer than any honest example (not an Exception:
    nothing on the way may swallow it)."""


def on_alarm(signum: int, frame: Any) -> None:
    raise Hung(f"a run took more than {HANG:.0f} s")


def run(space: Workspace, command: list[str]) -> tuple[int, str, str]:
    """``trek COMMAND -p ROOT`` in-process with the workspace's home: exit code, stdout,
    stderr; a run past ``HANG`` seconds is stopped by ``Hung``."""
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG)
    try:
        with patch.dict(os.environ, space.env), redirect_stdout(out), redirect_stderr(err):
            code = main([*command, "-p", str(space.root)])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue()


def entry(path: str) -> tuple[int, ...]:
    """What snapshot() keeps of one path: size and modification time of a file (or link),
    only that it is there for a folder (doit's state changes the mtime of ``.trek/``)."""
    info = os.lstat(path)
    return () if stat.S_ISDIR(info.st_mode) else (info.st_size, info.st_mtime_ns)


def snapshot(root: Path) -> dict[str, tuple[int, ...]]:
    """Each file and folder of the project and of the home beside it, but the caches of
    what trek read (``is_read_cache``), by its path relative to ``root`` (as ``entry``
    says it)."""
    found: dict[str, tuple[int, ...]] = {}
    stack = [(str(root), ""), (str(root / HOME), HOME + "/")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as items:
            for item in items:
                rel = prefix + item.name
                if item.is_dir(follow_symlinks=False):
                    found[rel] = ()
                    stack.append((item.path, rel + "/"))
                elif not is_read_cache(rel):
                    info = item.stat(follow_symlinks=False)
                    found[rel] = (info.st_size, info.st_mtime_ns)
    return found


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel))


def restore(space: Workspace, path: str, after: dict[str, Any] | None) -> None:
    """Put back the mutated file, and the installed scripts when a run changed them (or may
    have: ``after`` is None when the run did not finish); keep the tree up to date."""
    root = space.root
    (root / path).write_bytes(space.originals[path])
    kept = (INSTALLED_DIR + "/", LOCK, PACKAGES)
    changed = None if after is None else changes(space.tree, after)
    if changed is None or any(rel.startswith(kept) and rel != path for rel in changed):
        shutil.rmtree(root / INSTALLED_DIR)
        shutil.copytree(space.pristine / INSTALLED_DIR, root / INSTALLED_DIR, symlinks=True)
        for name in (LOCK, PACKAGES):
            shutil.copy2(space.pristine / name, root / name)
        space.tree = snapshot(root)
    else:
        space.tree = {**after, path: entry(str(root / path))}


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
    content = data.draw(mutated(workspace.originals[path], kind.json), label="content")
    assert len(content.data) < 2 * MAX_FILE_BYTES  # the generator itself stays small
    command = data.draw(st.sampled_from(COMMANDS), label="command")
    content.write(root / path)
    before = {**workspace.tree, path: entry(str(root / path))}
    after = None
    started = time.monotonic()
    try:
        code, out, err = run(workspace, command)
        elapsed = time.monotonic() - started
        after = snapshot(root)
    finally:
        restore(workspace, path, after)
    assert elapsed < SLOW, f"{command} took {elapsed:.1f} s"
    assert peak_mb() <= workspace.memory_mb, f"the test process reached {peak_mb()} MB"
    event(f"{command[0]}: exit {code}")  # --hypothesis-show-statistics
    errors = check_output(root, code, out, err)
    if code == 0:
        return
    changed = changes(before, after)
    if kind.name in ("packages", "lock") and not names_packages(root, errors):
        # packages.json itself was valid: installing what it says is the task's work
        changed = [c for c in changed if not c.startswith((INSTALLED_DIR, LOCK))]
    assert changed == [], f"exit {code} but changed {changed}"


def names_packages(root: Path, errors: list[str]) -> bool:
    names = (PACKAGES, LOCK, str(root / PACKAGES), str(root / LOCK))
    return any(line.startswith(names) for line in errors)

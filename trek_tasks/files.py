"""Reading user files (YAML/JSON) with line marks, and writing files atomically.

Every parse error becomes a ``BadInput`` naming ``file:line:col``. ``load_marked`` also
keeps, for each path into the document, where it starts, so validators can point at
the exact line of a bad value.
"""

from __future__ import annotations

import collections
import copy
import errno
import functools
import hashlib
import json
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import yaml

from trek_tasks.errors import BadInput, StepFailed

try:
    from yaml._yaml import CParser as _Parser  # libyaml's parser: events, quickly
except ImportError:  # pragma: no cover - PyYAML without libyaml

    class _Parser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, text: str) -> None:
            yaml.reader.Reader.__init__(self, text)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


PathKey = tuple[Any, ...]  # a path into a parsed document: keys and list indices
SHOWN_MAX = 60
DISPLAY_MAX = 1024  # a longer path in a message is cut like a value
# Bounds on what a user file may make us hold (docs/design-notes.md, "Bad input"): Trek's
# files are a few kilobytes and a few levels deep.
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 100
MAX_ALIASED = 100_000  # values YAML aliases may add to a document, all aliases together
CHUNK = 64 * 1024
# What YAML refuses in a file (its "printable" set, inverted); JSON has no other rule.
_NOT_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|-?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?')
COMPILED_SUFFIXES = frozenset({".pyc", ".pyo"})


def display(path: Path, root: Path | None = None) -> str:
    """``path`` relative to ``root`` (or the cwd) when it lies below it, for messages; a
    path no file system takes (a NUL byte, too long) or that would not fit on one line is
    ``shown`` instead."""
    text = str(path)
    if len(text) > DISPLAY_MAX or _NOT_PRINTABLE.search(text) or "\n" in text:
        return shown(text)
    if root is not None and root.is_absolute() and ".." not in (*root.parts, *path.parts):
        try:  # written below ``root`` already: the common case, with no system call
            return str(path.relative_to(root))
        except ValueError:
            pass
    for base in (root, Path.cwd()):
        if base is None:
            continue
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except (ValueError, OSError):
            continue
    return text


def shown(value: Any, quoted: bool = True) -> str:
    """A user value in a message, on one line and cut to 60 characters: repr for strings
    (bare, with ``quoted=False``, when the string is one short printable word, as a node
    id is), JSON else."""
    if isinstance(value, str):
        plain = not quoted and value.isprintable() and len(value) <= SHOWN_MAX
        bare = plain and value and not any(c.isspace() for c in value)
        text = value if bare else repr(value[: SHOWN_MAX * 2])  # what is shown of it, at most
    else:
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):  # a key JSON has no type for (a date)
            text = repr(value)
    return text if len(text) <= SHOWN_MAX else text[: SHOWN_MAX - 3] + "..."


def one_line(text: str) -> str:
    """``text`` with every line break and control character escaped: a message is one
    line on the terminal whatever value it quotes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def ignored(relative: PurePath) -> bool:
    """Whether a path below a script or template folder is an editor's, a tool's or a
    cache's file, never part of what a user wrote: a hidden part (``.*``, so also
    ``.*.swp`` swap files, ``.#*`` locks and ``.pytest_cache``), a backup (``*~``), an
    auto-save (``#*#``), ``__pycache__`` or compiled Python (``*.pyc``, ``*.pyo``)."""
    for part in relative.parts:
        if part.startswith(".") or part.endswith("~") or part == "__pycache__":
            return True
        if len(part) > 1 and part.startswith("#") and part.endswith("#"):
            return True
    return relative.suffix in COMPILED_SUFFIXES


# The files of each tree last listed, with the modification time of every folder in it:
# a folder's time changes when an entry is added, removed or renamed in it, so a tree
# whose folders all kept theirs holds the same files (a script's files are listed by its
# restart check, its run digest and its record, in every cycle of a watch).
_TREES: dict[str, tuple[tuple[tuple[str, int], ...], tuple[Path, ...]]] = {}


def tree_files(folder: Path) -> list[Path]:
    """Every file below ``folder`` that is not ``ignored``, sorted; [] when it is missing
    (ignored folders are not entered)."""
    known = _TREES.get(str(folder))
    if known is not None and all(_mtime_ns(top) == when for top, when in known[0]):
        return list(known[1])
    folders: list[tuple[str, int]] = []
    found: list[Path] = []
    for top, subdirs, names in os.walk(folder):
        when = _mtime_ns(top)  # before the listing: a change during it is seen next time
        relative = PurePath(top).relative_to(folder)
        subdirs[:] = [d for d in subdirs if not ignored(relative / d)]
        folders.append((top, when))
        found += [
            Path(top, name)
            for name in names
            if not ignored(relative / name) and os.path.isfile(os.path.join(top, name))
        ]
    if not folders:
        return []
    if settled(*(when for _, when in folders)):
        if len(_TREES) > 10_000:
            _TREES.clear()
        _TREES[str(folder)] = (tuple(folders), tuple(sorted(found)))
    return sorted(found)


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _path_error(err: Exception) -> str:
    """What an OS error (or the ValueError of an unusable path) says about a path."""
    if isinstance(err, UnicodeError):
        return "a path that is not valid text"
    if isinstance(err, ValueError):
        return "a path with a NUL byte"
    if isinstance(err, (FileNotFoundError, NotADirectoryError)):
        return "file not found"
    if isinstance(err, OSError) and err.errno == errno.ENAMETOOLONG:
        return "a path too long for the file system"
    return f"cannot read: {getattr(err, 'strerror', None) or err}"


def _mode_problem(mode: int) -> str | None:
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if not stat.S_ISREG(mode):
        return "not a regular file (a device, a pipe or a socket)"
    return None


def file_problem(path: Path) -> str | None:
    """Why ``path`` is no file to read (``file not found``, ``a folder, not a file``, a
    device, an unusable path), or None: the words ``read_bytes`` uses, for a message at
    the setting that names the path."""
    try:
        return _mode_problem(os.stat(path).st_mode)
    except (OSError, ValueError) as err:
        return _path_error(err)


def read_bytes(path: Path, shown: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; anything else (a
    folder, a device, a pipe, a larger file, an unusable path) is one ``BadInput``.

    The file is opened without blocking and checked before a byte is read, so a pipe or
    ``/dev/zero`` is refused at once."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (OSError, ValueError) as err:
        raise BadInput(_path_error(err), shown) from None
    try:
        info = os.fstat(fd)
        problem = _mode_problem(info.st_mode)
        if problem:
            raise BadInput(problem, shown)
        chunks, size = [], 0
        if info.st_size > limit:  # refused unread; one growing while read is cut below
            size = info.st_size
        while size <= limit:
            chunk = os.read(fd, min(CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as err:
        raise BadInput(_path_error(err), shown) from None
    finally:
        os.close(fd)
    if size > limit:
        raise BadInput(f"larger than {limit // 1024 // 1024} MB; refusing to read it", shown)
    return b"".join(chunks)


def _position(text: str, offset: int) -> str:
    """``line:col`` (from 1) of character ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    return f"{line}:{offset - (text.rfind(chr(10), 0, offset) + 1) + 1}"


def _read_text(path: Path, shown: str) -> str:
    data = read_bytes(path, shown)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start].decode("utf-8")
        byte = data[err.start : err.start + 1].hex()
        where = f"{shown}:{_position(before, len(before))}"
        raise BadInput(f"not UTF-8 text (byte 0x{byte}: {err.reason})", where) from None


def _unprintable(text: str, shown: str) -> None:
    """Refuse a control character, as YAML does, with its line and column."""
    found = _NOT_PRINTABLE.search(text)
    if found:
        code = f"U+{ord(found.group()):04X}"
        where = f"{shown}:{_position(text, found.start())}"
        raise BadInput(f"control character {code} is not allowed; remove it", where)


def _yaml_error(err: yaml.YAMLError, shown: str) -> BadInput:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
    return BadInput(f"invalid YAML: {problem}", where)


def _json_error(err: json.JSONDecodeError, shown: str) -> BadInput:
    return BadInput(f"invalid JSON: {err.msg}", f"{shown}:{err.lineno}:{err.colno}")


class _Composer(yaml.composer.Composer):
    """PyYAML's composer, bounded: no value nested deeper than ``MAX_DEPTH`` levels, and
    aliases adding at most ``MAX_ALIASED`` values in all (a "billion laughs" file is
    refused while it is read, real files with a few small anchors load as before)."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._open: set[str] = set()  # anchors of the values being composed
        self._aliased = 0
        self._extent: dict[int, tuple[int, int]] = {}  # id(node) -> (values, levels)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[attr-defined]  # the parser's, in _Loader
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                self._check_alias(event, target)
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise _bounded(f"values nested more than {MAX_DEPTH} levels deep", event)
        self._depth += 1
        if event.anchor is not None:
            self._open.add(event.anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(event.anchor)

    def _check_alias(self, event: Any, target: Any) -> None:
        if event.anchor in self._open:
            raise _bounded(f"alias *{event.anchor} refers to the value holding it", event)
        values, levels = self._measure(target)
        self._aliased += values
        if self._aliased > MAX_ALIASED:
            raise _bounded(
                f"aliases expand to more than {MAX_ALIASED:,} values; write the values out",
                event,
            )
        if self._depth + levels > MAX_DEPTH:
            raise _bounded(
                f"values nested more than {MAX_DEPTH} levels deep (through *{event.anchor})",
                event,
            )

    def _measure(self, node: Any) -> tuple[int, int]:
        """How many values ``node`` stands for with every alias in it expanded, and how
        many levels deep they go; each node is measured once (only anchored values are)."""
        extent = self._extent
        stack = [(node, False)]
        while stack:
            current, children_done = stack.pop()
            if id(current) in extent:
                continue
            children = current.value if isinstance(current, yaml.SequenceNode) else []
            if isinstance(current, yaml.MappingNode):
                children = [part for pair in current.value for part in pair]
            if children_done:
                sizes = [extent[id(child)] for child in children]
                values = 1 + sum(size for size, _ in sizes)
                extent[id(current)] = (values, 1 + max((deep for _, deep in sizes), default=0))
            else:
                stack.append((current, True))
                stack.extend((child, False) for child in children if id(child) not in extent)
        return extent[id(node)]


def _bounded(problem: str, event: Any) -> yaml.YAMLError:
    return yaml.composer.ComposerError(None, None, problem, event.start_mark)


class _Constructor(yaml.constructor.SafeConstructor):
    """PyYAML's safe constructor; a value it cannot build (a number of more than 4,300
    digits, a 13th month) is a YAML error at that value, not a crash."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, AttributeError, OverflowError) as err:
            value = shown(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            problem = f"cannot read {value} as {node.tag.rsplit(':', 1)[-1]}"
            if "digits" in str(err):
                problem = f"a number of more than {sys.get_int_max_str_digits()} digits"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


class _Loader(_Composer, _Parser, _Constructor, yaml.resolver.Resolver):
    def __init__(self, text: str) -> None:
        _Parser.__init__(self, text)
        _Composer.__init__(self)
        _Constructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


def _yaml_document(text: str, shown: str, build: Any) -> Any:
    """``build(loader, node)`` on the one document of ``text``; a YAML problem as BadInput."""
    _unprintable(text, shown)
    loader = _Loader(text)
    try:
        return build(loader, loader.get_single_node())
    except yaml.YAMLError as err:
        raise _yaml_error(err, shown) from None
    finally:
        loader.dispose()


def parse_yaml(text: str, shown: str) -> Any:
    """The data of the YAML ``text`` (None when empty), bounded as ``_Composer`` says;
    any problem is one ``BadInput`` at ``shown:line:col``."""
    return _yaml_document(
        text, shown, lambda loader, node: None if node is None else loader.construct_document(node)
    )


def parse_json(text: str, shown: str) -> Any:
    """The data of the JSON ``text``, nested at most ``MAX_DEPTH`` levels; any problem is
    one ``BadInput`` at ``shown:line:col``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise _json_error(err, shown) from None
    except (RecursionError, ValueError):  # too deep, or a number too long
        _json_bounds(text, shown)
        raise BadInput("invalid JSON: nested too deeply or a number too long", shown) from None
    _json_bounds(text, shown)
    return data


def _json_bounds(text: str, shown: str) -> None:
    """Refuse JSON nested deeper than ``MAX_DEPTH`` or with an integer Python cannot read."""
    digits = sys.get_int_max_str_digits()
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        kind = token.group()[0]
        if kind in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                where = f"{shown}:{_position(text, token.start())}"
                raise BadInput(f"invalid JSON: nested more than {MAX_DEPTH} levels deep", where)
        elif kind in "]}":
            depth -= 1
        elif kind != '"' and token.group().lstrip("-").isdigit() and len(token.group()) > digits:
            where = f"{shown}:{_position(text, token.start())}"
            raise BadInput(f"invalid JSON: a number of more than {digits} digits", where)


def load_yaml(path: Path, root: Path | None = None, keep: Path | None = None) -> Any:
    """Parse a YAML file (libyaml's parser when present); empty file -> None.

    With ``keep`` (a file of trek's state) the data is kept there as JSON with a digest of
    the text, and read from it while the text is the same: a file is parsed once per edit,
    not once per command (PyYAML takes 0.4 s on a 1,000-node workflow, JSON 5 ms)."""
    shown = display(path, root)
    text = _read_text(path, shown)
    if keep is None:
        return _parsed(text, shown, json_text=False).data
    digest = hashlib.sha256(f"{_KEPT_FORMAT}\n{text}".encode()).hexdigest()
    try:
        kept = json.loads(keep.read_text(encoding="utf-8"))
        if isinstance(kept, dict) and kept.get("text") == digest and "data" in kept:
            return kept["data"]
    except (OSError, ValueError):
        pass  # none kept yet, or not readable: parse the text
    data = _parsed(text, shown, json_text=False).data
    _keep(keep, digest, data)
    return data


# What ``load_yaml`` keeps names this; a change to what a text parses to bumps it.
_KEPT_FORMAT = 1


def _keep(path: Path, digest: str, data: Any) -> None:
    """Keep parsed ``data`` in ``path`` when JSON holds it exactly (no date, no key other
    than text); a state folder that cannot be written only costs the next parse."""
    try:
        text = json.dumps({"text": digest, "data": data}, ensure_ascii=False)
    except (TypeError, ValueError):
        return
    if json.loads(text)["data"] != data:
        return
    try:
        write_atomic(path, text)
    except StepFailed:
        return


def load_json(path: Path, root: Path | None = None) -> Any:
    """Parse a JSON file; errors name the line and column."""
    shown = display(path, root)
    return parse_json(_read_text(path, shown), shown)


# Digests of file bytes by what ``stat`` says of the file: a long-lived process (``trek
# watch``, ``doit auto``) hashes a file again only once it changed, and one command that
# digests a script's files three times (restart check, run digest, record) reads them once.
_DIGESTS: dict[str, tuple[tuple[int, int, int, int], str]] = {}


def bytes_digest(path: Path) -> str:
    """The SHA-256 of ``path``'s bytes (hex), read again only when its size, inode,
    modification or change time differ from the last read."""
    info = path.stat()
    key = (info.st_size, info.st_ino, info.st_mtime_ns, info.st_ctime_ns)
    known = _DIGESTS.get(str(path))
    if known is not None and known[0] == key:
        return known[1]
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    if settled(info.st_mtime_ns, info.st_ctime_ns):
        if len(_DIGESTS) > 100_000:
            _DIGESTS.clear()
        _DIGESTS[str(path)] = (key, digest)
    return digest


# File times tick in steps (a kernel's clock tick, up to 10 ms): a file written twice within
# one step, to the same size, keeps its times. What changed less than this long ago is read
# again each time, not remembered (git's "racily clean" rule).
SETTLE_NS = 100_000_000


def settled(*times_ns: int) -> bool:
    """Whether every one of ``times_ns`` lies far enough in the past to be trusted."""
    return time.time_ns() - max(times_ns) > SETTLE_NS


def content_digest(path: Path, keep: Path | None = None) -> str:
    """A digest of what a YAML or JSON file says, not of how it is written: comments,
    blank lines, indentation and quoting leave it unchanged (key order does not). A
    missing file digests as ``""``; one that does not parse digests its bytes, so the
    step reading it is not skipped and reports the error. ``keep``: as ``load_yaml``'s."""
    if not path.is_file():
        return ""
    try:
        data = load_json(path) if path.suffix == ".json" else load_yaml(path, keep=keep)
    except BadInput:
        try:
            with open(path, "rb") as handle:
                return "bytes:" + hashlib.file_digest(handle, "sha256").hexdigest()[:16]
        except OSError:
            return "unreadable"
    text = json.dumps(data, ensure_ascii=False, default=_tagged)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _tagged(value: Any) -> str:
    """A YAML value JSON has no type for (a date, a set) in canonical JSON, typed."""
    shown = sorted(map(repr, value)) if isinstance(value, set | frozenset) else value
    return f"!{type(value).__name__} {shown}"


@dataclass
class Document:
    """A parsed file plus the line/column where each value (and each key) starts."""

    shown: str
    data: Any
    marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Iterable[Any] = (), key: bool = False) -> str:
        """``file:line:col`` of the deepest known prefix of ``path``."""
        parts = tuple(path)
        table = self.key_marks if key else self.marks
        while parts:
            if parts in table:
                line, col = table[parts]
                return f"{self.shown}:{line}:{col}"
            if key and parts in self.marks:
                line, col = self.marks[parts]
                return f"{self.shown}:{line}:{col}"
            parts = parts[:-1]
        line, col = self.marks.get((), (1, 1))
        return f"{self.shown}:{line}:{col}"


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _build(
    node: yaml.Node, path: PathKey, doc: Document, constructor: yaml.constructor.SafeConstructor
) -> Any:
    doc.marks[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise BadInput("a mapping key must be a plain value", doc.where(path)) from None
            doc.key_marks[path + (key,)] = _mark(key_node)
            out[key] = _build(value_node, path + (key,), doc, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), doc, constructor) for i, item in enumerate(node.value)]
    return constructor.construct_object(node, deep=True)


def load_marked(path: Path, root: Path | None = None) -> Document:
    """Parse a YAML or JSON file keeping marks (for validation)."""
    shown = display(path, root)
    return _parsed(_read_text(path, shown), shown, json_text=path.suffix == ".json")


# The documents last parsed, by their text: a command reads most files twice (to load the
# project, then to validate it with marks) and parses each once. Only texts that parsed
# are kept, up to ``_PARSED_CHARS`` of text in all (a count would let a project's 200
# small files push its workflow out); every caller gets its own copy of the data.
_PARSED: collections.OrderedDict[tuple[bool, str], Document] = collections.OrderedDict()
_PARSED_CHARS = 1 << 23
_PARSED_TEXT_MAX = 1 << 20
_parsed_chars = 0  # the text _PARSED holds


def _parsed(text: str, shown: str, json_text: bool) -> Document:
    global _parsed_chars
    key = (json_text, text)
    known = _PARSED.get(key)
    if known is None:
        known = _parse_marked(text, shown, json_text)
        if len(text) <= _PARSED_TEXT_MAX:
            _PARSED[key] = known
            _parsed_chars += len(text)
            while _parsed_chars > _PARSED_CHARS:
                _parsed_chars -= len(_PARSED.popitem(last=False)[0][1])
    else:
        _PARSED.move_to_end(key)
    return Document(shown, copy.deepcopy(known.data), known.marks, known.key_marks)


def _parse_marked(text: str, shown: str, json_text: bool) -> Document:
    if not json_text:
        return _yaml_document(text, shown, functools.partial(_marked, Document(shown, None)))
    data = parse_json(text, shown)
    # The marks come from reading the JSON as YAML. Valid JSON holds tabs only as
    # whitespace and may hold characters YAML refuses inside strings: a space in their
    # place keeps every column where it was.
    text = _NOT_PRINTABLE.sub(" ", text.replace("\t", " "))
    try:
        doc = _yaml_document(text, shown, functools.partial(_marked, Document(shown, None)))
    except BadInput:  # valid JSON YAML cannot read (a key of over 1,024 characters)
        doc = Document(shown, None)
    doc.data = data
    return doc


def _marked(doc: Document, loader: Any, node: Any) -> Document:
    if node is not None:
        doc.data = _build(node, (), doc, loader)
    return doc


def write_problem(err: OSError) -> str:
    """What an OS error while writing says, for a message (``no space left on device``)."""
    said = err.strerror or str(err)
    return said[:1].lower() + said[1:]


def write_atomic(
    path: Path, content: str | bytes, private: bool = False, root: Path | None = None
) -> None:
    """Write ``content`` to ``path`` through a temp file and rename; 0600 when private.

    All or nothing: on failure (a full disk) the old file stays and no temp file is left,
    and the error is one ``StepFailed`` naming ``path`` (relative to ``root``)."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next(p for p in (*reversed(path.parent.parents), path.parent) if not p.is_dir())
        raise StepFailed(
            f"a file is in the way of the folder for {path.name}; move it", display(blocker, root)
        ) from None
    except OSError as err:
        raise StepFailed(write_problem(err), display(path, root)) from None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise StepFailed(write_problem(err), display(path, root)) from None
        raise


def dump_json(data: Any) -> str:
    """The one JSON style for files we write: 2-space indent, trailing newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

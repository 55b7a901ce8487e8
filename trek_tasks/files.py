"""Reading user files (YAML/JSON) with line marks, and writing files atomically.

Every parse error becomes a ``BadInput`` naming ``file:line:col``. ``load_marked`` also
keeps, for each path into the document, where it starts, so validators can point at
the exact line of a bad value.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import yaml

from trek_tasks.errors import BadInput

try:
    _FastLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _FastLoader = yaml.SafeLoader

PathKey = tuple[Any, ...]  # a path into a parsed document: keys and list indices
SHOWN_MAX = 60
COMPILED_SUFFIXES = frozenset({".pyc", ".pyo"})


def display(path: Path, root: Path | None = None) -> str:
    """``path`` relative to ``root`` (or the cwd) when it lies below it, for messages."""
    for base in (root, Path.cwd()):
        if base is None:
            continue
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return str(path)


def shown(value: Any) -> str:
    """A user value in a message, cut to 60 characters: repr for strings, JSON else."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= SHOWN_MAX else text[: SHOWN_MAX - 3] + "..."


def ignored(relative: PurePath) -> bool:
    """Whether a path below a script or template folder is an editor's, a tool's or a
    cache's file, never part of what a user wrote: a hidden part (``.*``, so also
    ``.#*`` locks and ``.pytest_cache``), a backup (``*~``), ``__pycache__`` or
    compiled Python (``*.pyc``, ``*.pyo``)."""
    for part in relative.parts:
        if part.startswith(".") or part.endswith("~") or part == "__pycache__":
            return True
    return relative.suffix in COMPILED_SUFFIXES


def tree_files(folder: Path) -> list[Path]:
    """Every file below ``folder`` that is not ``ignored``, sorted; [] when it is missing."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and not ignored(p.relative_to(folder))
    )


def _read_text(path: Path, shown: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput("file not found", shown) from None
    except UnicodeDecodeError as err:
        raise BadInput(f"not UTF-8 text ({err.reason} at byte {err.start})", shown) from None
    except OSError as err:
        raise BadInput(f"cannot read: {err.strerror}", shown) from None


def _yaml_error(err: yaml.YAMLError, shown: str) -> BadInput:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
    return BadInput(f"invalid YAML: {problem}", where)


def _json_error(err: json.JSONDecodeError, shown: str) -> BadInput:
    return BadInput(f"invalid JSON: {err.msg}", f"{shown}:{err.lineno}:{err.colno}")


def load_yaml(path: Path, root: Path | None = None) -> Any:
    """Parse a YAML file quickly (libyaml when present); empty file -> None."""
    shown = display(path, root)
    text = _read_text(path, shown)
    try:
        return yaml.load(text, Loader=_FastLoader)
    except yaml.YAMLError as err:
        raise _yaml_error(err, shown) from None


def load_json(path: Path, root: Path | None = None) -> Any:
    """Parse a JSON file; errors name the line and column."""
    shown = display(path, root)
    text = _read_text(path, shown)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise _json_error(err, shown) from None


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
    """Parse a YAML or JSON file keeping marks (slower than ``load_yaml``; for validation)."""
    shown = display(path, root)
    text = _read_text(path, shown)
    if path.suffix == ".json":
        try:
            json.loads(text)
        except json.JSONDecodeError as err:
            raise _json_error(err, shown) from None
        # Valid JSON holds raw tabs only as whitespace, which YAML refuses; a space keeps
        # every column where it was.
        text = text.replace("\t", " ")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        doc = Document(shown, None)
        if node is not None:
            doc.data = _build(node, (), doc, loader)
        return doc
    except yaml.YAMLError as err:
        raise _yaml_error(err, shown) from None
    finally:
        loader.dispose()


def write_atomic(path: Path, content: str | bytes, private: bool = False) -> None:
    """Write ``content`` to ``path`` through a temp file and rename; 0600 when private."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_json(data: Any) -> str:
    """The one JSON style for files we write: 2-space indent, trailing newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

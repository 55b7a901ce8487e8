"""JSON Schemas of the user files, and their errors put in words with file:line:col."""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from trek_tasks.errors import BadInput, ManyErrors
from trek_tasks.files import SHOWN_MAX, Document, PathKey, load_marked, shown
from trek_tasks.names import SCRIPT_ID_PATTERN
from trek_tasks.resources import read_schema

_LOCATION = re.compile(r"(.*):(\d+):(\d+)")

# --- schemas ------------------------------------------------------------------------


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``name`` (one of ``resources.SCHEMA_NAMES``), read once, with what
    the code owns filled in: the runtimes, the kinds' code-base keys, the script-id rule,
    the path rule."""
    schema = read_schema(name)
    script_id = f"^{SCRIPT_ID_PATTERN}$"
    if name == "config":
        from trek_tasks.kinds import code_base_defaults
        from trek_tasks.runtimes import CONFIG_CHOICES

        schema["properties"]["runtime"]["enum"] = [*CONFIG_CHOICES, "", None]
        for key in code_base_defaults():
            schema["properties"].setdefault(key, {"$ref": "#/$defs/path"})
    elif name == "para":
        schema["properties"]["id"]["pattern"] = script_id
    elif name == "packages":
        packages = schema["properties"]["packages"]
        packages["propertyNames"]["pattern"] = script_id
        # a zip path there follows the rule of paths in config.json
        packages["additionalProperties"]["allOf"] = read_schema("config")["$defs"]["path"]["allOf"]
    return schema


@functools.cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(name))


# --- collecting findings ------------------------------------------------------------


class Finding(NamedTuple):
    where: str
    message: str


def _position(where: str) -> tuple[str, int, int]:
    match = _LOCATION.fullmatch(where)
    if match is None:
        return where, 0, 0
    return match.group(1), int(match.group(2)), int(match.group(3))


@dataclass
class Report:
    """Errors and warnings, reported per file (in the order files were read), by line."""

    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.errors.append(Finding(where, message))

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(Finding(where, message))

    def load(self, path: Path) -> Document | None:
        """The file with marks, or None (and the parse error recorded)."""
        try:
            doc = load_marked(path)
        except BadInput as err:
            self.files.append(_position(err.where or str(path))[0])
            self.error(err.where or str(path), err.message)
            return None
        self.files.append(doc.shown)
        return doc

    def _sorted(self, findings: list[Finding]) -> list[Finding]:
        rank = {name: i for i, name in reversed(list(enumerate(self.files)))}

        def key(finding: Finding) -> tuple[int, int, int]:
            name, line, col = _position(finding.where)
            return rank.get(name, len(rank)), line, col

        return sorted(dict.fromkeys(findings), key=key)

    def raise_errors(self) -> None:
        if self.errors:
            raise ManyErrors([BadInput(f.message, f.where) for f in self._sorted(self.errors)])

    def warning_lines(self) -> list[str]:
        return [f"{f.where}: {f.message}" for f in self._sorted(self.warnings)]


# --- schema errors in words ---------------------------------------------------------

Subject = Callable[[Any, PathKey], tuple[str, int]]


class Problem(NamedTuple):
    """One schema error, located and put in words."""

    path: PathKey
    where: str
    message: str
    validator: str
    key: Any = None  # the missing (required) or unknown (additionalProperties) key


def no_subject(data: Any, path: PathKey) -> tuple[str, int]:
    return "", 0


def get_at(data: Any, path: PathKey) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else type(value).__name__


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "a mapping",
    "array": "a list",
}


def a_type(type_name: str) -> str:
    return _TYPE_WORDS.get(type_name, type_name)


def with_article(word: str) -> str:
    return f"{'an' if word[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {word}"


def did_you_mean(word: Any, choices: Iterable[Any]) -> str:
    if len(str(word)) > SHOWN_MAX:  # no typo of a word that long; difflib would be slow
        return ""
    options = {str(c).casefold(): str(c) for c in choices}
    close = difflib.get_close_matches(str(word).casefold(), list(options), n=1, cutoff=0.6)
    return f"; did you mean {shown(options[close[0]])}?" if close else ""


def listed(names: Iterable[Any], most: int = 10) -> str:
    """``names`` for a message: each once, each ``shown``, the first ``most`` of them."""
    unique = list(dict.fromkeys(shown(name, quoted=False) for name in names))
    more = f", ... ({len(unique)} in all)" if len(unique) > most else ""
    return ", ".join(unique[:most]) + more


def _item_name(path: PathKey) -> str:
    if not path:
        return "the file"
    last = path[-1]
    if isinstance(last, int):
        parent = path[-2] if len(path) > 1 else None
        of = f" of {shown(parent)}" if isinstance(parent, str) else ""
        return f"item {last + 1}{of}"
    return shown(last)


def _type_sentence(name: str, expected: Any, instance: Any) -> str:
    wanted = [t for t in (expected if isinstance(expected, list) else [expected]) if t != "null"]
    text = f"{name} must be {' or '.join(a_type(t) for t in wanted)}, not {_kind(instance)}"
    if "string" in wanted and isinstance(instance, (bool, int, float)):
        text += "; put it in quotes"
    return text


def _sentence(error: Any, name: str) -> str:
    kind, value, instance = error.validator, error.validator_value, error.instance
    custom = error.schema.get("x-message") if isinstance(error.schema, dict) else None
    if custom:
        return str(custom).replace("{name}", name)
    if kind == "type":
        return _type_sentence(name, value, instance)
    if kind == "enum":
        options = [o for o in value if o not in ("", None)]
        listed = ", ".join(str(o) for o in options)
        return f"{name} must be one of {listed}, not {shown(instance)}" + did_you_mean(
            instance, options
        )
    if kind == "const":
        return f"{name} must be {json.dumps(value)}"
    if kind == "pattern":
        return f"{name} {shown(instance)} does not match the pattern {value}"
    if kind == "minLength":
        return f"{name} must not be empty"
    if kind == "minItems":
        return f"{name} needs at least {value} item(s)"
    if kind == "maxItems":
        return f"{name} may hold at most {value} item(s)"
    if kind in ("minimum", "exclusiveMinimum"):
        return f"{name} must be {'at least' if kind == 'minimum' else 'above'} {value}"
    if kind in ("maximum", "exclusiveMaximum"):
        return f"{name} must be {'at most' if kind == 'maximum' else 'below'} {value}"
    if kind == "uniqueItems":
        return f"{name} lists the same item twice"
    return f"{name}: {error.message[: SHOWN_MAX * 2]}"


def _explain(error: Any, doc: Document, subject: Subject) -> Iterator[Problem]:
    from jsonschema.exceptions import best_match

    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator in ("anyOf", "oneOf") and "x-message" not in schema and error.context:
        yield from _explain(best_match(error.context), doc, subject)
        return
    path = tuple(error.absolute_path)
    label, used = subject(doc.data, path)
    rest = path[used:]
    if len(error.schema_path) >= 2 and list(error.schema_path)[-2] == "propertyNames":
        key_path = path + (error.instance,)
        prefix = f"{label}: " if label and not rest else ""
        message = prefix + _sentence(error, f"key {shown(error.instance)}")
        yield Problem(key_path, doc.where(key_path, key=True), message, "propertyNames")
        return
    if label and not rest:
        prefix, name = "", label
    else:
        prefix, name = (f"{label}: " if label else ""), _item_name(rest)
    instance = error.instance
    if error.validator == "required":
        for key in error.validator_value:
            if isinstance(instance, dict) and key not in instance:
                where = doc.where(path)
                yield Problem(path, where, f"{prefix}{name} needs '{key}'", "required", key)
        return
    if error.validator == "additionalProperties":
        known = list(schema.get("properties", {}))
        for key in instance:
            if key in known:
                continue
            hint = did_you_mean(key, known) or (
                f"; known keys: {', '.join(known)}" if known else ""
            )
            place = f" in {name}" if rest or label else ""
            message = f"{prefix}unknown key {shown(key)}{place}{hint}"
            where = doc.where(path + (key,), key=True)
            yield Problem(path + (key,), where, message, "additionalProperties", key)
        return
    yield Problem(path, doc.where(path), prefix + _sentence(error, name), error.validator)


def schema_problems(doc: Document, name: str, subject: Subject = no_subject) -> list[Problem]:
    """Every error of ``doc`` against schema ``name``, in words, in file order."""
    problems = [
        problem
        for error in _validator(name).iter_errors(doc.data)
        for problem in _explain(error, doc, subject)
    ]
    return sorted(dict.fromkeys(problems), key=lambda p: _position(p.where)[1:])


def check_setting(doc: Document, key: str) -> None:
    """Raise BadInput, in ``trek validate``'s words, when setting ``key`` of the config
    ``doc`` breaks the config schema (the one rule for a setting's value)."""
    for problem in schema_problems(doc, "config"):
        if problem.path[:1] == (key,):
            raise BadInput(problem.message, problem.where)

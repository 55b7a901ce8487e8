"""Project validation: JSON Schemas for every user file, then cross-checks.

Each file is checked against its schema (``trek_tasks/schemas/*.json``) and every
schema error is mapped back to the YAML mark of the offending value. Cross-checks
(ids, reachability, scripts, bindings, filters, required inputs) run on the parts that
passed their schema. All errors are reported at once; the strictness rules (what is a
warning, how loose data is matched) are in docs/validation.md.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import sys
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from trek_tasks import __version__
from trek_tasks.config import CONFIG_NAME
from trek_tasks.errors import BadInput, ManyErrors
from trek_tasks.files import Document, display, dump_json, load_marked, write_atomic
from trek_tasks.graph import Edge, Node, Workflow
from trek_tasks.project import LOCK, MANIFEST, PACKAGES, Project, Script

SCHEMA_NAMES = ("graph", "para", "packages", "lock", "config", "data", "event")
TYPES = ("string", "integer", "number", "boolean", "array", "object")
PathKey = tuple[Any, ...]
# In an installed para, problems under these top-level keys make the para unusable.
_FATAL_PARA_KEYS = frozenset({"id", "version", "inputs"})
_LOCATION = re.compile(r"(.*):(\d+):(\d+)")
_LEADING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URL_OR_FILE = re.compile(r"^[a-z][a-z0-9+.-]*://|\.zip$", re.IGNORECASE)
_MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


# --- schemas ------------------------------------------------------------------------


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``name`` (one of ``SCHEMA_NAMES``), read once from the package."""
    if name not in SCHEMA_NAMES:
        raise ValueError(f"unknown schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    text = (resources.files("trek_tasks") / "schemas" / f"{name}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    if name == "config":
        from trek_tasks.runtimes import RUNTIMES

        schema["properties"]["runtime"]["enum"] = [*RUNTIMES, "", None]
    return schema


@functools.cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(name))


def builtin_types() -> dict[str, dict[str, Any]]:
    """The para ``$ref`` types (``pn_ids_host`` ...) by name."""
    defs = load_schema("para")["$defs"]
    return {name: spec for name, spec in defs.items() if name.startswith("pn_")}


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
class _Report:
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


def _no_subject(data: Any, path: PathKey) -> tuple[str, int]:
    return "", 0


def _get(data: Any, path: PathKey) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


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


def _a(type_name: str) -> str:
    return _TYPE_WORDS.get(type_name, type_name)


def _an(word: str) -> str:
    return f"{'an' if word[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {word}"


def _did_you_mean(word: Any, choices: Iterable[Any]) -> str:
    options = {str(c).casefold(): str(c) for c in choices}
    close = difflib.get_close_matches(str(word).casefold(), list(options), n=1, cutoff=0.6)
    return f"; did you mean '{options[close[0]]}'?" if close else ""


def _item_name(path: PathKey) -> str:
    if not path:
        return "the file"
    last = path[-1]
    if isinstance(last, int):
        parent = path[-2] if len(path) > 1 else None
        return f"item {last + 1} of '{parent}'" if isinstance(parent, str) else f"item {last + 1}"
    return f"'{last}'"


def _type_sentence(name: str, expected: Any, instance: Any) -> str:
    wanted = [t for t in (expected if isinstance(expected, list) else [expected]) if t != "null"]
    text = f"{name} must be {' or '.join(_a(t) for t in wanted)}, not {_kind(instance)}"
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
        return f"{name} must be one of {listed}, not {_show(instance)}" + _did_you_mean(
            instance, options
        )
    if kind == "const":
        return f"{name} must be {json.dumps(value)}"
    if kind == "pattern":
        return f"{name} {_show(instance)} does not match the pattern {value}"
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
    return f"{name}: {error.message}"


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
        message = prefix + _sentence(error, f"key '{error.instance}'")
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
            hint = _did_you_mean(key, known) or (
                f"; known keys: {', '.join(known)}" if known else ""
            )
            place = f" in {name}" if rest or label else ""
            message = f"{prefix}unknown key '{key}'{place}{hint}"
            where = doc.where(path + (key,), key=True)
            yield Problem(path + (key,), where, message, "additionalProperties", key)
        return
    yield Problem(path, doc.where(path), prefix + _sentence(error, name), error.validator)


def schema_problems(doc: Document, name: str, subject: Subject = _no_subject) -> list[Problem]:
    """Every error of ``doc`` against schema ``name``, in words, in file order."""
    problems = [
        problem
        for error in _validator(name).iter_errors(doc.data)
        for problem in _explain(error, doc, subject)
    ]
    return sorted(dict.fromkeys(problems), key=lambda p: _position(p.where)[1:])


# --- paras --------------------------------------------------------------------------


@dataclass(frozen=True)
class Para:
    """What cross-checks need from a para: its fields, ``$ref`` kept as written."""

    id: str
    inputs: Mapping[str, Mapping[str, Any]]
    outputs: Mapping[str, Mapping[str, Any]]
    required: tuple[str, ...]


def resolve_field(spec: Any) -> dict[str, Any]:
    """A para field with its built-in ``$ref`` type filled in ({} when not a mapping)."""
    if not isinstance(spec, Mapping):
        return {}
    ref = spec.get("$ref")
    builtin = builtin_types().get(ref) if isinstance(ref, str) else None
    own = {k: v for k, v in spec.items() if k != "$ref"}
    return {**own, **builtin} if builtin else own


def _para_subject(data: Any, path: PathKey) -> tuple[str, int]:
    if len(path) >= 2 and path[0] in ("inputs", "outputs"):
        return f"{path[0][:-1]} '{path[1]}'", 2
    return "", 0


def _fatal_in_installed(problem: Problem) -> bool:
    path = problem.path
    if problem.validator == "required" and not path:
        return problem.key in _FATAL_PARA_KEYS
    if not path:
        return True
    if path[0] in _FATAL_PARA_KEYS and problem.validator != "additionalProperties":
        return len(path) == 1 or (len(path) == 2 and problem.validator == "type")
    return False


def _is_type(value: Any, type_name: str) -> bool:
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if type_name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def _truth(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    return None


def enum_match(value: Any, option: Any) -> bool:
    """Loose enum equality: strings ignore case, 1/0 stand for true/false, 3 == 3.0."""
    if isinstance(value, str) and isinstance(option, str):
        return value.casefold() == option.casefold()
    if isinstance(value, bool) or isinstance(option, bool):
        truth = _truth(value)
        return truth is not None and truth == _truth(option)
    return bool(value == option)


def _field_quirks(spec: Any, path: PathKey, label: str) -> Iterator[tuple[PathKey, str]]:
    """Enum/default values that do not fit the declared type, recursing into fields."""
    if not isinstance(spec, Mapping):
        return
    kind = spec.get("type")
    enum = spec.get("enum")
    typed = isinstance(kind, str) and kind in TYPES
    kind = str(kind)
    if typed and isinstance(enum, list):
        for i, option in enumerate(enum):
            if not _is_type(option, kind):
                note = ""
                if kind == "boolean" and _truth(option) is not None:
                    note = f" (read as {str(_truth(option)).lower()})"
                yield (
                    path + ("enum", i),
                    f"{label}: enum value {_show(option)} is not {_a(kind)}{note}",
                )
        names = spec.get("enumNames")
        if isinstance(names, list) and len(names) != len(enum):
            yield (
                path + ("enumNames",),
                f"{label}: 'enumNames' has {len(names)} name(s) for {len(enum)} enum value(s)",
            )
    default = spec.get("default")
    if typed and default is not None:
        if not _is_type(default, kind):
            yield path + ("default",), f"{label}: default {_show(default)} is not {_a(kind)}"
        elif isinstance(enum, list) and not any(enum_match(default, o) for o in enum):
            yield path + ("default",), f"{label}: default {_show(default)} is not an enum value"
    yield from _field_quirks(spec.get("items"), path + ("items",), f"{label} items")
    properties = spec.get("properties")
    if isinstance(properties, Mapping):
        for name, sub in properties.items():
            yield from _field_quirks(sub, path + ("properties", name), f"{label} property '{name}'")


def _fields(data: Mapping[str, Any], key: str) -> dict[str, Mapping[str, Any]]:
    found = data.get(key)
    if not isinstance(found, Mapping):
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, Mapping)}


def _check_para(path: Path, own: bool) -> tuple[list[Finding], list[Finding], Para | None]:
    """Errors, warnings and (when usable) the para; installed paras get quirks as warnings."""
    from packaging.version import InvalidVersion, Version

    errors: list[Finding] = []
    warnings: list[Finding] = []
    try:
        doc = load_marked(path)
    except BadInput as err:
        return [Finding(err.where or str(path), err.message)], [], None
    usable = True
    for problem in schema_problems(doc, "para", _para_subject):
        fatal = _fatal_in_installed(problem)
        usable = usable and not fatal
        (errors if own or fatal else warnings).append(Finding(problem.where, problem.message))
    data = doc.data if isinstance(doc.data, Mapping) else {}
    quirks = errors if own else warnings
    para_id, version = data.get("id"), data.get("version")
    if isinstance(para_id, str) and para_id != path.parent.name:
        errors.append(
            Finding(
                doc.where(("id",)),
                f"id '{para_id}' must equal the folder name '{path.parent.name}'; "
                "rename one of them",
            )
        )
        usable = False
    if isinstance(version, str) and version:
        try:
            Version(version)
        except InvalidVersion:
            errors.append(
                Finding(
                    doc.where(("version",)),
                    f"version '{version}' is not a valid version (PEP 440), e.g. '0.1.0'",
                )
            )
    inputs = _fields(data, "inputs")
    listed = data.get("required")
    required: list[Any] = listed if isinstance(listed, list) else []
    for i, name in enumerate(required):
        if isinstance(name, str) and name not in inputs:
            quirks.append(
                Finding(
                    doc.where(("required", i)),
                    f"required input '{name}' is not among the inputs"
                    + _did_you_mean(name, inputs),
                )
            )
    for key in ("inputs", "outputs"):
        for name, spec in _fields(data, key).items():
            for where, message in _field_quirks(spec, (key, name), f"{key[:-1]} '{name}'"):
                quirks.append(Finding(doc.where(where), message))
    if not usable or not isinstance(para_id, str):
        return errors, warnings, None
    para = Para(
        id=para_id,
        inputs=inputs,
        outputs=_fields(data, "outputs"),
        required=tuple(n for n in required if isinstance(n, str) and n in inputs),
    )
    return errors, warnings, para


def validate_para(path: Path, *, own: bool = False) -> tuple[list[BadInput], list[str]]:
    """Check one ``<id>.para``: errors (BadInput with file:line:col) and warnings.

    ``own=False`` (installed or downloaded scripts) turns enum/type quirks and unknown
    field keys into warnings; ``own=True`` makes them errors.
    """
    errors, warnings, _ = _check_para(path, own)
    return [BadInput(f.message, f.where) for f in errors], [
        f"{w.where}: {w.message}" for w in warnings
    ]


# --- values bound to inputs ---------------------------------------------------------


def _sub_field(spec: Mapping[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The field at a dotted input path, or ({}, problem) when the path cannot exist."""
    current = resolve_field(spec)
    head, *segments = path.split(".")
    walked = [head]
    for segment in segments:
        kind = current.get("type")
        place = ".".join(walked)
        if kind == "array":
            if not segment.isdigit():
                return {}, f"'{place}' is a list; index it with a number, e.g. '{place}.0'"
            current = resolve_field(current.get("items"))
        elif kind == "object":
            properties = current.get("properties")
            if isinstance(properties, Mapping) and properties:
                if segment not in properties:
                    hint = _did_you_mean(segment, properties) or (
                        f"; it has {', '.join(map(str, properties))}"
                    )
                    return {}, f"'{place}' has no property '{segment}'{hint}"
                current = resolve_field(properties[segment])
            else:
                current = {}
        elif isinstance(kind, str) and kind in TYPES:
            return {}, f"'{place}' is {_a(kind)}; it has no '{segment}'"
        else:
            current = {}
        walked.append(segment)
    return current, ""


def _value_problem(value: Any, spec: Mapping[str, Any], what: str) -> str:
    """Why a literal (already converted to its binding type) cannot fill ``spec``."""
    from trek_tasks.expr import ExpressionError, coerce

    kind = spec.get("type")
    if value is None or not (isinstance(kind, str) and kind in TYPES):
        return ""
    try:
        converted = coerce(value, kind)
    except ExpressionError as err:
        return f"{err.message}, which {what} needs"
    enum = spec.get("enum")
    if isinstance(enum, list) and enum and not any(enum_match(converted, o) for o in enum):
        listed = ", ".join(str(o) for o in enum)
        hint = _did_you_mean(value, enum)
        return f"{_show(value)} is not one of {listed} ({what}){hint}"
    if kind == "array" and isinstance(spec.get("items"), Mapping):
        for item in converted:
            problem = _value_problem(item, resolve_field(spec["items"]), f"each item of {what}")
            if problem:
                return problem
    if kind == "object" and isinstance(spec.get("properties"), Mapping):
        for key, sub in spec["properties"].items():
            if key in converted:
                problem = _value_problem(converted[key], resolve_field(sub), f"'{key}' of {what}")
                if problem:
                    return problem
    return ""


# --- the workflow -------------------------------------------------------------------


class InputSpec(NamedTuple):
    """An input field a value is bound to, and its name for messages."""

    field: Mapping[str, Any]
    what: str


def _graph_subject(data: Any, path: PathKey) -> tuple[str, int]:
    if len(path) < 3 or path[0] != "graph" or path[1] not in ("nodes", "edges"):
        return "", 0
    if not isinstance(path[2], int):
        return "", 0
    item = _get(data, path[:3])
    if path[1] == "nodes":
        node_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(node_id, (str, int)) and not isinstance(node_id, bool):
            return f"node {node_id}", 3
        return f"item {path[2] + 1} of 'nodes'", 3
    if isinstance(item, dict):
        label = f"edge {item.get('source')}->{item.get('target')}"
    else:
        label = f"item {path[2] + 1} of 'edges'"
    if len(path) >= 6 and path[3:5] == ("metadata", "binding") and isinstance(path[5], int):
        binding = _get(data, path[:6])
        prop = binding.get("property") if isinstance(binding, dict) else None
        name = f"'{prop}'" if isinstance(prop, str) else str(path[5] + 1)
        return f"{label} binding {name}", 6
    return label, 3


def _filter_extra_keys(node: Any, path: PathKey) -> Iterator[tuple[PathKey, str]]:
    """Keys a filter mapping ignores (expr.check_filters reports the missing ones)."""
    if not isinstance(node, Mapping):
        return
    group = next((k for k in ("and", "or") if k in node), None)
    if group is None:
        if "property" in node and "operator" in node:
            for key in node:
                if key not in ("property", "operator", "value"):
                    yield (
                        path + (key,),
                        (
                            f"unknown key '{key}' in a condition; "
                            "a condition has property, operator and value"
                        ),
                    )
        return
    for key in node:
        if key not in ("and", "or", "property", "operator"):
            yield path + (key,), f"unknown key '{key}' in an '{group}' group"
    items = node[group]
    for i, item in enumerate(items if isinstance(items, list) else []):
        yield from _filter_extra_keys(item, path + (group, i))


def cron_problem(text: str) -> str:
    """What is wrong with a cron source ``'<5 fields>[::<IANA timezone>]'`` ('' if fine)."""
    expression, separator, zone = text.partition("::")
    fields = expression.split()
    if len(fields) != 5:
        return (
            f"cron {expression.strip()!r} has {len(fields)} field(s); write 5 "
            "(minute hour day-of-month month day-of-week), e.g. '*/60 * * * *'"
        )
    for text_field, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text_field.split(","):
            span, slash, step = part.partition("/")
            if slash and not (step.isdigit() and int(step) > 0):
                return f"cron {name} {text_field!r}: the step after '/' must be a number above 0"
            if span == "*":
                continue
            for bound in span.split("-", 1):
                number = int(bound) if bound.isdigit() else names.get(bound.upper())
                if number is None or not low <= number <= high:
                    return f"cron {name} {text_field!r}: {bound!r} is not in {low}-{high}"
    if separator:
        return _zone_problem(zone.strip())
    return ""


def _zone_problem(zone: str) -> str:
    if not zone:
        return "no timezone after '::'; write an IANA name such as 'Asia/Taipei'"
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        hint = _did_you_mean(zone, zoneinfo.available_timezones())
        return f"unknown timezone '{zone}'{hint or '; use an IANA name such as Asia/Taipei'}"
    return ""


def event_problem(text: str) -> str:
    """What is wrong with an event source ``'<namespace>::<event_id>[::<version>]'``."""
    parts = text.split("::")
    if len(parts) in (2, 3) and all(p and not any(c.isspace() for c in p) for p in parts[:2]):
        if len(parts) == 2 or not any(c.isspace() for c in parts[2]):
            return ""
    return (
        f"event source {text!r} must be '<namespace>::<event_id>' or "
        "'<namespace>::<event_id>::<version>', e.g. 'network.pentium::host.down::1'"
    )


@dataclass
class _Graph:
    """Cross-checks of a schema-valid graph against the scripts, paras and data.yml."""

    report: _Report
    project: Project
    doc: Document
    paras: Mapping[str, Para | None]
    workflow: Workflow = field(init=False)
    ids: set[str] = field(init=False)
    trigger: Node | None = field(init=False, default=None)
    _upstream: dict[str, set[str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.workflow = Workflow.from_data(self.doc.data)
        self.ids = {n.id for n in self.workflow.nodes}

    def at(self, *path: Any, key: bool = False) -> str:
        return self.doc.where(("graph", *path), key=key)

    def node_at(self, node: Node, *path: Any, key: bool = False) -> str:
        return self.at("nodes", node.index, *path, key=key)

    def edge_at(self, edge: Edge, *path: Any, key: bool = False) -> str:
        return self.at("edges", edge.index, *path, key=key)

    def upstream(self, node_id: str) -> set[str]:
        if node_id not in self._upstream:
            self._upstream[node_id] = self.workflow.upstream(node_id)
        return self._upstream[node_id]

    def para_of(self, node: Node | None) -> Para | None:
        if node is None or node.type != "action":
            return None
        return self.paras.get(node.script_id)

    def run(self, data: Mapping[str, Any], bad_edges: set[int]) -> None:
        """All checks; edges whose metadata failed the schema skip bindings and filters.

        With duplicate node ids only the node and edge checks run: which node an edge
        means is unclear until the ids are fixed."""
        unique = self.check_nodes()
        edges = self.check_edges()
        if not unique:
            return
        if self.trigger is not None:
            self.check_reachable(edges)
        self.check_cycles(edges)
        for edge in self.workflow.edges:
            if edge.index not in bad_edges:
                self.check_bindings(edge)
                self.check_filters(edge)
        self.check_required(data)

    # nodes

    def check_nodes(self) -> bool:
        """Node checks; False when node ids are not unique."""
        report, first_seen = self.report, dict[str, str]()
        triggers = [n for n in self.workflow.nodes if n.type == "trigger"]
        for node in self.workflow.nodes:
            if node.id in first_seen:
                report.error(
                    self.node_at(node, "id"),
                    f"node id '{node.id}' is already used at {first_seen[node.id]}; "
                    "give each node its own id",
                )
            else:
                first_seen[node.id] = self.node_at(node, "id")
            self.check_node_kind(node)
        if not triggers:
            report.error(
                self.at("nodes"), "the workflow has no trigger; add a node of type trigger"
            )
        else:
            self.trigger = triggers[0]
            for extra in triggers[1:]:
                report.error(
                    self.node_at(extra, "metadata", "type"),
                    f"node {extra.id} is a second trigger (node {triggers[0].id} is the first); "
                    "a workflow has exactly one",
                )
        if not any(n.type == "terminator" for n in self.workflow.nodes):
            report.error(
                self.at("nodes"),
                "the workflow has no terminator; add a node of type terminator and "
                "connect the last steps to it",
            )
        return len(first_seen) == len(self.workflow.nodes)

    def check_node_kind(self, node: Node) -> None:
        meta = _get(self.doc.data, ("graph", "nodes", node.index, "metadata"))
        if node.type == "action" and not node.script_id:
            self.report.error(
                self.node_at(node, "metadata"),
                f"node {node.id} is an action and needs 'script: {{id: <script id>}}'",
            )
        if node.type != "action" and "script" in meta:
            self.report.error(
                self.node_at(node, "metadata", "script", key=True),
                f"node {node.id} is {_an(node.type)} and runs no script; remove 'script'",
            )
        if node.type != "trigger" and "sources" in meta:
            self.report.error(
                self.node_at(node, "metadata", "sources", key=True),
                f"node {node.id} is {_an(node.type)}; only the trigger has 'sources'",
            )
        sources = meta.get("sources") if node.type == "trigger" else None
        for i, source in enumerate(sources if isinstance(sources, list) else []):
            if isinstance(source, dict) and isinstance(source.get("data"), str):
                check = {"cron": cron_problem, "event": event_problem}.get(str(source.get("type")))
                problem = check(source["data"]) if check else ""
                if problem:
                    self.report.error(self.node_at(node, "metadata", "sources", i, "data"), problem)
        if node.type == "action" and node.script_id:
            self.check_script(node)

    def check_script(self, node: Node) -> None:
        project, script_id = self.project, node.script_id
        if script_id in project.scripts:
            return
        where = self.node_at(node, "metadata", "script", "id")
        if script_id in project.packages:
            self.report.error(
                where, f"node {node.id}: script '{script_id}' is not installed; run `trek install`"
            )
            return
        close = difflib.get_close_matches(script_id, [*project.scripts, *project.packages], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        self.report.error(
            where,
            f"node {node.id}: unknown script '{script_id}'{hint}; "
            f"create it with `trek createblcks {script_id}` "
            f"or install it with `trek install {script_id}`",
        )

    # edges and the shape of the graph

    def check_edges(self) -> list[Edge]:
        """Report bad edges; return the ones joining existing nodes (each pair once)."""
        good: list[Edge] = []
        seen: dict[tuple[str, str], Edge] = {}
        known = ", ".join(n.id for n in self.workflow.nodes)
        for edge in self.workflow.edges:
            label, fine = f"edge {edge.source}->{edge.target}", True
            for end in ("source", "target"):
                node_id = getattr(edge, end)
                if node_id not in self.ids:
                    self.report.error(
                        self.edge_at(edge, end),
                        f"{label}: {end} node '{node_id}' does not exist (nodes: {known})",
                    )
                    fine = False
            pair = (edge.source, edge.target)
            if pair in seen:
                self.report.error(
                    self.edge_at(edge),
                    f"{label} is already defined at {self.edge_at(seen[pair])}; merge the two",
                )
                continue
            seen[pair] = edge
            source, target = self.workflow.node(edge.source), self.workflow.node(edge.target)
            if target is not None and target.type == "trigger":
                self.report.error(
                    self.edge_at(edge, "target"),
                    f"{label}: nothing may lead into the trigger (node {target.id})",
                )
            if source is not None and source.type == "terminator":
                self.report.error(
                    self.edge_at(edge, "source"),
                    f"{label}: node {source.id} is a terminator and ends the run; "
                    "it has no outgoing edges",
                )
            if fine:
                good.append(edge)
        return good

    def check_reachable(self, edges: list[Edge]) -> None:
        assert self.trigger is not None
        reached, stack = {self.trigger.id}, [self.trigger.id]
        while stack:
            current = stack.pop()
            for edge in edges:
                if edge.source == current and edge.target not in reached:
                    reached.add(edge.target)
                    stack.append(edge.target)
        for node in self.workflow.nodes:
            if node.id in reached:
                continue
            if node.type == "terminator":
                self.report.error(
                    self.node_at(node, "id"),
                    f"terminator {node.id} cannot be reached from the trigger "
                    f"(node {self.trigger.id}); connect a path to it",
                )
            elif node.type != "trigger":
                self.report.warn(
                    self.node_at(node, "id"),
                    f"node {node.id} cannot be reached from the trigger, so it never runs",
                )

    def check_cycles(self, edges: list[Edge]) -> None:
        outgoing: dict[str, list[Edge]] = {}
        for edge in edges:
            outgoing.setdefault(edge.source, []).append(edge)
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        reported: set[frozenset[str]] = set()
        for start in (n.id for n in self.workflow.nodes):
            if start in state:
                continue
            path: list[Edge] = []
            entered = {start: 0}
            state[start] = 1
            stack = [(start, iter(outgoing.get(start, [])))]
            while stack:
                current, pending = stack[-1]
                step = next(pending, None)
                if step is None:
                    stack.pop()
                    state[current] = 2
                    if path:
                        path.pop()
                    continue
                edge = step
                if state.get(edge.target) == 1:
                    cycle = path[entered[edge.target] :] + [edge]
                    members = frozenset(e.source for e in cycle)
                    if members not in reported:
                        reported.add(members)
                        shown = " -> ".join([cycle[0].source] + [e.target for e in cycle])
                        self.report.error(
                            self.edge_at(edge, "target"),
                            f"edges {shown} form a cycle; a workflow may not loop, "
                            "remove one of these edges",
                        )
                elif edge.target not in state:
                    state[edge.target] = 1
                    entered[edge.target] = len(path) + 1
                    path.append(edge)
                    stack.append((edge.target, iter(outgoing.get(edge.target, []))))

    # what flows along the edges

    def before(self, node_id: str) -> set[str]:
        """Nodes whose outputs exist when ``node_id`` starts: its upstream and the trigger."""
        found = set(self.upstream(node_id))
        if self.trigger is not None:
            found.add(self.trigger.id)
        return found

    def reference_problem(
        self, node_id: str, expression: str, allowed: set[str], when: str
    ) -> tuple[str, bool]:
        """(problem, is_error) of a use of node ``node_id``'s outputs ('' when fine).

        Naming a node that has not run is an error; naming an output its para does not
        declare is a warning (paras often under-declare outputs)."""
        if node_id not in self.ids:
            return f"node '{node_id}' does not exist", True
        if node_id not in allowed:
            shown = ", ".join(sorted(allowed, key=int)) or "none"
            return f"node {node_id} has not run {when} (usable: {shown})", True
        para = self.para_of(self.workflow.node(node_id))
        name = _LEADING_NAME.match(expression)
        if para is None or not para.outputs or name is None or name.group() in para.outputs:
            return "", False
        hint = _did_you_mean(name.group(), para.outputs) or (
            f"; its outputs: {', '.join(para.outputs)}"
        )
        return f"{para.id} (node {node_id}) has no output '{name.group()}'{hint}", False

    def check_value(
        self, label: str, where: str, entry: Mapping[str, Any], target: Node, spec: InputSpec | None
    ) -> None:
        """A bound value: templates name nodes that ran before; literals fit the input."""
        from trek_tasks.expr import ExpressionError, check_template, coerce, references

        value, kind = entry.get("value"), entry.get("type")
        problems = check_template(value)
        for problem in problems:
            self.report.error(where, f"{label}: {problem}")
        refs = references(value)
        for node_id, expression in refs:
            problem, is_error = self.reference_problem(
                node_id, expression, self.before(target.id), f"before node {target.id}"
            )
            if problem:
                (self.report.error if is_error else self.report.warn)(where, f"{label}: {problem}")
        if problems or refs or spec is None or not isinstance(kind, str):
            return
        try:
            converted = coerce(value, kind)
        except ExpressionError as err:
            self.report.error(where, f"{label}: {err.message}")
            return
        problem = _value_problem(converted, spec.field, spec.what)
        if problem:
            self.report.error(where, f"{label}: {problem}")

    def check_property(self, label: str, where: str, prop: str, target: Node) -> InputSpec | None:
        """The input field a property path sets (None when there is none to check)."""
        para = self.para_of(target)
        if para is None:
            return None
        head = prop.split(".")[0]
        if head not in para.inputs:
            hint = _did_you_mean(head, para.inputs) or (
                f"; its inputs: {', '.join(para.inputs)}" if para.inputs else "; it has no inputs"
            )
            self.report.error(
                where, f"{label} binds '{head}', but {para.id} has no such input{hint}"
            )
            return None
        found, problem = _sub_field(para.inputs[head], prop)
        if problem:
            self.report.error(where, f"{label} binds '{prop}', but {problem}")
            return None
        return InputSpec(found, f"{para.id} input '{prop}'")

    def check_bindings(self, edge: Edge) -> None:
        target = self.workflow.node(edge.target)
        if target is None:
            return
        label, bound = f"edge {edge.source}->{edge.target}", set()
        for j, binding in enumerate(edge.binding):
            prop, path = binding["property"], ("metadata", "binding", j)
            where = self.edge_at(edge, *path, "property")
            if prop in bound:
                self.report.error(where, f"{label} binds '{prop}' twice")
            bound.add(prop)
            spec = self.check_property(label, where, prop, target)
            value_at = self.edge_at(edge, *path, "value")
            self.check_value(f"{label} binding '{prop}'", value_at, binding, target, spec)

    def check_filters(self, edge: Edge) -> None:
        from trek_tasks.expr import check_filters, filter_node_ids, iter_conditions

        if not edge.filters:
            return
        label, base = f"edge {edge.source}->{edge.target}", ("metadata", "filters")
        for path, message in check_filters(edge.filters):
            self.report.error(self.edge_at(edge, *base, *path), f"{label}: {message}")
        source = self.workflow.node(edge.source)
        allowed = self.before(edge.source) | {edge.source}
        for path, message in _filter_extra_keys(edge.filters, ()):
            self.report.error(self.edge_at(edge, *base, *path, key=True), f"{label}: {message}")
        for path, condition in iter_conditions(edge.filters):
            prop = str(condition.get("property"))
            for node_id in sorted(filter_node_ids(condition)):
                if source is not None and source.type == "selector" and node_id == source.id:
                    continue  # a selector's own id means what flowed into it
                expression = prop.split(".", 2)[2] if prop.count(".") >= 2 else ""
                problem, is_error = self.reference_problem(
                    node_id, expression, allowed, f"when node {edge.source} finishes"
                )
                if problem:
                    message = f"{label}: filter property '{prop}': {problem}"
                    where = self.edge_at(edge, *base, *path, "property")
                    (self.report.error if is_error else self.report.warn)(where, message)

    def check_required(self, data: Mapping[str, Any]) -> None:
        data_file = self.project.config["input_data_path"]
        for node in self.workflow.nodes:
            para = self.para_of(node)
            if para is None:
                continue
            incoming = self.workflow.incoming(node.id)
            bound = {str(b.get("property")).split(".")[0] for e in incoming for b in e.binding}
            for edge in incoming:
                entries = data.get(edge.key)
                if isinstance(entries, Mapping):
                    bound.update(str(prop).split(".")[0] for prop in entries)
            for name in para.required:
                if name in bound or resolve_field(para.inputs[name]).get("default") is not None:
                    continue
                self.report.error(
                    self.node_at(node, "id"),
                    f"node {node.id} ({para.id}): required input '{name}' is not bound; "
                    f"bind it on an edge into node {node.id} or set it in {data_file}",
                )

    def check_data(self, doc: Document, skip: set[Any]) -> None:
        """inputs/data.yml: edges exist, properties are inputs of the target, values fit."""
        edges = {e.key: e for e in self.workflow.edges}
        for key, entries in (doc.data or {}).items():
            if key in skip:
                continue
            edge = edges.get(key)
            if edge is None:
                hint = _did_you_mean(key, edges) or f"; edges: {', '.join(edges) or 'none'}"
                self.report.error(
                    doc.where((key,), key=True),
                    f"edge {key} does not exist in {self.doc.shown}{hint}",
                )
                continue
            target = self.workflow.node(edge.target)
            if target is None:
                continue
            for prop, entry in entries.items():
                where = doc.where((key, prop), key=True)
                spec = self.check_property(f"edge {key}", where, str(prop), target)
                label = f"edge {key} property '{prop}'"
                self.check_value(label, doc.where((key, prop, "value")), entry, target, spec)


# --- the other files ----------------------------------------------------------------


def _keyed_subject(noun: str) -> Subject:
    def subject(data: Any, path: PathKey) -> tuple[str, int]:
        if len(path) >= 2 and path[0] == "packages":
            return f"{noun} '{path[1]}'", 2
        return "", 0

    return subject


def _data_subject(data: Any, path: PathKey) -> tuple[str, int]:
    if len(path) >= 2:
        return f"edge {path[0]} property '{path[1]}'", 2
    if len(path) == 1:
        return f"edge {path[0]}", 1
    return "", 0


def _check_schema(report: _Report, doc: Document, name: str, subject: Subject) -> list[Problem]:
    problems = schema_problems(doc, name, subject)
    for problem in problems:
        report.error(problem.where, problem.message)
    return problems


def _check_specifiers(report: _Report, doc: Document) -> None:
    """packages.json values that are neither URLs nor zips must be PEP 440 specifiers."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    listed = doc.data.get("packages") if isinstance(doc.data, dict) else None
    for script_id, spec in (listed if isinstance(listed, dict) else {}).items():
        if not isinstance(spec, str) or _URL_OR_FILE.search(spec.strip()):
            continue
        try:
            SpecifierSet(spec)
        except InvalidSpecifier:
            report.error(
                doc.where(("packages", script_id)),
                f"package '{script_id}': {spec!r} is not a version specifier; write e.g. "
                "'==0.5.0', '>=0.5,<1', '' (the newest), a URL or a zip path",
            )


def validation_inputs(project: Project) -> list[Path]:
    """The existing files ``validate_project`` reads (the doit task's file_dep)."""
    root = project.root
    scripts: dict[str, Script] = {s.id: s for s in project.used_scripts()}
    scripts.update(project.own)
    candidates = [
        project.entry,
        root / MANIFEST,
        root / PACKAGES,
        root / LOCK,
        *(s.para_path for s in scripts.values()),
        project.path("input_data_path"),
        project.path("input_event_path"),
        root / CONFIG_NAME,
    ]
    return [p for p in dict.fromkeys(candidates) if p.is_file()]


def validate_project(project: Project) -> list[str]:
    """Check every file of the project; return warnings, raise ManyErrors with all errors."""
    report = _Report()
    graph_doc = report.load(project.entry)
    paras: dict[str, Para | None] = {}
    installed = [s for s in project.used_scripts() if s.installed]
    for script in [*project.own.values(), *installed]:
        errors, warnings, para = _check_para(script.para_path, own=not script.installed)
        report.files.append(display(script.para_path))
        report.errors.extend(errors)
        report.warnings.extend(warnings)
        paras[script.id] = para
    data_path = project.path("input_data_path")
    data_doc = report.load(data_path) if data_path.is_file() else None
    data_problems = _check_schema(report, data_doc, "data", _data_subject) if data_doc else []
    for path, schema, subject in (
        (project.path("input_event_path"), "event", _no_subject),
        (project.root / PACKAGES, "packages", _keyed_subject("package")),
        (project.root / LOCK, "lock", _keyed_subject("package")),
        (project.root / CONFIG_NAME, "config", _no_subject),
    ):
        doc = report.load(path) if path.is_file() else None
        if doc is not None:
            _check_schema(report, doc, schema, subject)
            if schema == "packages":
                _check_specifiers(report, doc)
    if graph_doc is not None:
        _check_graph(report, project, graph_doc, paras, data_doc, data_problems)
    report.raise_errors()
    return report.warning_lines()


def _check_graph(
    report: _Report,
    project: Project,
    doc: Document,
    paras: Mapping[str, Para | None],
    data_doc: Document | None,
    data_problems: list[Problem],
) -> None:
    from packaging.version import InvalidVersion, Version

    problems = _check_schema(report, doc, "graph", _graph_subject)
    version = _get(doc.data, ("graph", "metadata", "version"))
    if isinstance(version, str) and version:
        try:
            Version(version)
        except InvalidVersion:
            report.error(
                doc.where(("graph", "metadata", "version")),
                f"version '{version}' is not a valid version (PEP 440), e.g. '0.1.0'",
            )
    if any(_blocks_graph_checks(p.path) for p in problems):
        return
    graph = _Graph(report, project, doc, paras)
    bad_edges = {p.path[2] for p in problems if p.path[:2] == ("graph", "edges")}
    bad_data = {p.path[0] for p in data_problems if p.path}
    if data_doc is None or any(not p.path for p in data_problems):
        graph.run({}, bad_edges)
        return
    graph.run({k: v for k, v in (data_doc.data or {}).items() if k not in bad_data}, bad_edges)
    graph.check_data(data_doc, bad_data)


def _blocks_graph_checks(path: PathKey) -> bool:
    """Whether a schema problem leaves node ids, node types or edge ends unknown."""
    if path[:2] == ("graph", "metadata"):
        return False
    if len(path) <= 3:
        return True
    if path[1] == "nodes":
        return path[3] == "id" or path[3:] == ("metadata",) or path[3:5] == ("metadata", "type")
    return path[3] in ("source", "target")


def write_validated(project: Project, target: Path) -> None:
    """The doit action: validate, print warnings, record the result in ``target``."""
    warnings = validate_project(project)
    for warning in warnings:
        print(f"trek: warning: {warning}", file=sys.stderr)
    write_atomic(target, dump_json({"trek": __version__, "warnings": warnings}))

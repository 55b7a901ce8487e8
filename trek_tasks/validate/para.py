"""Para files: schema, quirks tolerated in installed paras, and values bound to inputs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trek_tasks.errors import BadInput
from trek_tasks.files import PathKey, load_marked, shown
from trek_tasks.names import reserved_problem
from trek_tasks.paratypes import TYPES, field_type, is_type, resolve_field
from trek_tasks.validate.schema import Finding, Problem, a_type, did_you_mean, schema_problems

# In an installed para, problems under these top-level keys make the para unusable.
_FATAL_PARA_KEYS = frozenset({"id", "version", "inputs"})

# --- paras --------------------------------------------------------------------------


@dataclass(frozen=True)
class Para:
    """What cross-checks need from a para: its fields, ``$ref`` kept as written."""

    id: str
    inputs: Mapping[str, Mapping[str, Any]]
    outputs: Mapping[str, Mapping[str, Any]]
    required: tuple[str, ...]


def _para_subject(data: Any, path: PathKey) -> tuple[str, int]:
    if len(path) >= 2 and path[0] in ("inputs", "outputs"):
        return f"{path[0][:-1]} {shown(path[1])}", 2
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
    found = field_type(spec)
    enum = spec.get("enum")
    typed = found is not None
    kind = str(found)
    if typed and isinstance(enum, list):
        for i, option in enumerate(enum):
            if not is_type(option, kind):
                note = ""
                if kind == "boolean" and _truth(option) is not None:
                    note = f" (read as {str(_truth(option)).lower()})"
                yield (
                    path + ("enum", i),
                    f"{label}: enum value {shown(option)} is not {a_type(kind)}{note}",
                )
        names = spec.get("enumNames")
        if isinstance(names, list) and len(names) != len(enum):
            yield (
                path + ("enumNames",),
                f"{label}: 'enumNames' has {len(names)} name(s) for {len(enum)} enum value(s)",
            )
    default = spec.get("default")
    if typed and default is not None:
        if not is_type(default, kind):
            yield path + ("default",), f"{label}: default {shown(default)} is not {a_type(kind)}"
        elif isinstance(enum, list) and not any(enum_match(default, o) for o in enum):
            yield path + ("default",), f"{label}: default {shown(default)} is not an enum value"
    yield from _field_quirks(spec.get("items"), path + ("items",), f"{label} items")
    properties = spec.get("properties")
    if isinstance(properties, Mapping):
        for name, sub in properties.items():
            yield from _field_quirks(
                sub, path + ("properties", name), f"{label} property {shown(name)}"
            )


def _fields(data: Mapping[str, Any], key: str) -> dict[str, Mapping[str, Any]]:
    found = data.get(key)
    if not isinstance(found, Mapping):
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, Mapping)}


def check_para(path: Path, own: bool) -> tuple[list[Finding], list[Finding], Para | None]:
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
                f"id {shown(para_id)} must equal the folder name {shown(path.parent.name)}; "
                "rename one of them",
            )
        )
        usable = False
    reserved = reserved_problem(para_id) if isinstance(para_id, str) else None
    if reserved:
        errors.append(Finding(doc.where(("id",)), reserved))
        usable = False
    if isinstance(version, str) and version:
        try:
            Version(version)
        except InvalidVersion:
            errors.append(
                Finding(
                    doc.where(("version",)),
                    f"version {shown(version)} is not a valid version (PEP 440), e.g. '0.1.0'",
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
                    f"required input {shown(name)} is not among the inputs"
                    + did_you_mean(name, inputs),
                )
            )
    for key in ("inputs", "outputs"):
        for name, spec in _fields(data, key).items():
            for where, message in _field_quirks(spec, (key, name), f"{key[:-1]} {shown(name)}"):
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
    errors, warnings, _ = check_para(path, own)
    return [BadInput(f.message, f.where) for f in errors], [
        f"{w.where}: {w.message}" for w in warnings
    ]


# --- values bound to inputs ---------------------------------------------------------


def sub_field(spec: Mapping[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The field at a dotted input path, or ({}, problem) when the path cannot exist."""
    current = resolve_field(spec)
    head, *segments = path.split(".")
    walked = [head]
    for segment in segments:
        kind = current.get("type")
        place = ".".join(walked)
        if kind == "array":
            if not segment.isdigit():
                example = shown(place + ".0")
                return {}, f"{shown(place)} is a list; index it with a number, e.g. {example}"
            current = resolve_field(current.get("items"))
        elif kind == "object":
            properties = current.get("properties")
            if isinstance(properties, Mapping) and properties:
                if segment not in properties:
                    hint = did_you_mean(segment, properties) or (
                        f"; it has {', '.join(map(str, properties))}"
                    )
                    return {}, f"{shown(place)} has no property {shown(segment)}{hint}"
                current = resolve_field(properties[segment])
            else:
                current = {}
        elif isinstance(kind, str) and kind in TYPES:
            return {}, f"{shown(place)} is {a_type(kind)}; it has no {shown(segment)}"
        else:
            current = {}
        walked.append(segment)
    return current, ""


def value_problem(value: Any, spec: Mapping[str, Any], what: str) -> str:
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
        hint = did_you_mean(value, enum)
        return f"{shown(value)} is not one of {listed} ({what}){hint}"
    if kind == "array" and isinstance(spec.get("items"), Mapping):
        for item in converted:
            problem = value_problem(item, resolve_field(spec["items"]), f"each item of {what}")
            if problem:
                return problem
    if kind == "object" and isinstance(spec.get("properties"), Mapping):
        for key, sub in spec["properties"].items():
            if key in converted:
                problem = value_problem(
                    converted[key], resolve_field(sub), f"{shown(key)} of {what}"
                )
                if problem:
                    return problem
    return ""

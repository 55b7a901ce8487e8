"""Para field types: the one checker ``validate`` and the engine's run-time check share.

A field's type is its ``type`` or, for a ``$ref`` to a built-in type (``pn_ids_host``
...), that type's. Types follow JSON Schema: ``3.0`` is an integer (its value is
whole), a boolean is neither an integer nor a number.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from trek_tasks.files import shown
from trek_tasks.resources import read_schema

TYPES = ("string", "integer", "number", "boolean", "array", "object")


@functools.cache
def builtin_types() -> dict[str, dict[str, Any]]:
    """The para ``$ref`` types (``pn_ids_host`` ...) by name, from the para schema."""
    defs = read_schema("para")["$defs"]
    return {name: spec for name, spec in defs.items() if name.startswith("pn_")}


def resolve_field(spec: Any) -> dict[str, Any]:
    """A para field with its built-in ``$ref`` type filled in ({} when not a mapping)."""
    if not isinstance(spec, Mapping):
        return {}
    ref = spec.get("$ref")
    builtin = builtin_types().get(ref) if isinstance(ref, str) else None
    own = {k: v for k, v in spec.items() if k != "$ref"}
    return {**own, **builtin} if builtin else own


def field_type(spec: Any) -> str | None:
    """The declared type of a para field (``$ref`` resolved), or None when it has none."""
    kind = resolve_field(spec).get("type")
    return kind if isinstance(kind, str) and kind in TYPES else None


def is_type(value: Any, type_name: str) -> bool:
    """Whether ``value`` is of the para type ``type_name`` (JSON Schema's meaning)."""
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


def type_problem(name: str, value: Any, spec: Any) -> str | None:
    """Why the value of input ``name`` does not fit its field's type, or None (also for
    no value and for a field without a type)."""
    kind = field_type(spec)
    if value is None or kind is None or is_type(value, kind):
        return None
    return f"input '{name}' must be {kind}, got {type(value).__name__} {shown(value)}"


def event_problem(declared: Mapping[str, Any], event: Any) -> tuple[str | None, dict[str, Any]]:
    """Whether an event fits the fields a trigger declares (para-shaped ``outputs``):
    (the problem naming the field, or None; the event with declared defaults filled in).
    Every declared field without a ``default`` is required; with none declared, any
    mapping fits."""
    if not isinstance(event, Mapping):
        return "the event must be a JSON object of the trigger's fields", {}
    filled = dict(event)
    if not declared:
        return None, filled
    names = ", ".join(declared)
    for name in event:
        if name not in declared:
            return f"event field '{name}' is not among the trigger's outputs ({names})", filled
    for name, spec in declared.items():
        if name not in filled and "default" in resolve_field(spec):
            filled[name] = resolve_field(spec)["default"]
        if name not in filled:
            return f"event field '{name}' is missing (the trigger's outputs: {names})", filled
        kind = field_type(spec)
        if kind is not None and not is_type(filled[name], kind):
            got = f"{type(filled[name]).__name__} {shown(filled[name])}"
            return f"event field '{name}' must be {kind}, got {got}", filled
    return None, filled

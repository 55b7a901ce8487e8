"""Edge expressions: binding templates, filters, type coercion and property paths.

A pure module: no I/O. The validator uses the ``check_*``/``iter_*``/``references``
helpers, the engine uses ``render``, ``coerce``, ``set_path`` and ``evaluate_filter``.

Paths (JMESPath)
  The path after ``nodes.<id>.`` in a filter and after ``<id>.`` in a template is a
  JMESPath expression. Dotted numeric segments are indices: ``fail_hosts.0.id`` means
  ``fail_hosts[0].id`` and a leading ``0.id`` means ``[0].id`` (plain JMESPath rejects
  these, so nothing valid changes meaning; quoted text is never touched). A key that
  is made of digits is reached with a quoted identifier: ``a."0"``. Expressions are
  compiled once and cached; calls to unknown functions and wrong argument counts are
  reported when the expression is checked, not only when it runs. A path that finds
  nothing gives ``None`` (JMESPath's own rule).

Templates (binding ``value``)
  A value is a literal (any YAML value) or a string holding ``{{ <nodeId>.<path> }}``;
  spaces inside the braces are optional and ``{{ 2 }}`` is the whole outputs of node 2
  (``references`` reports its expression as ``""``). ``{{ 2[0] }}`` is also accepted.
  A string that is exactly one template (surrounding whitespace ignored) keeps the
  type of the result: ``'{{ 2.fail_hosts[].id }}'`` gives a list. Templates embedded
  in text are interpolated: strings as they are, ``None`` as nothing, anything else
  as compact JSON (``ensure_ascii=False``). Lists and dicts are rendered item by
  item (dict keys are not templates); other values are returned unchanged. Rendered
  lists/dicts are fresh copies, so changing them never changes a node's outputs.
  A template ends at the first ``}}``: write ``{{ 2.{a: x} }}`` with a space before
  the closing braces. ``{{`` without a closing ``}}`` is an error; a lone ``}}`` is
  literal text, because JSON strings such as ``'{"a": {"b": 1}}'`` are common values.
  A template naming a node that has no outputs in the context is an error.

Filters (edge ``filters``)
  ``{property: nodes.<id>.<path>, operator, value}`` or ``{and: [...]}`` /
  ``{or: [...]}`` nested freely. An empty mapping at the top is no condition (true);
  an empty ``and``/``or`` list, an empty nested mapping, a mapping holding both
  ``and`` and ``or`` (or a group and a condition) are errors. ``value`` is a literal
  (templates are not rendered there); a missing ``value`` is ``None``. A property
  naming a node without outputs in the context is an error; a selector's filters may
  name the selector itself, which the caller maps to the outputs that flowed into it.
  ``check_filters`` reports problems with a path inside the filters such as
  ``('and', 1, 'operator')``; ``evaluate_filter`` raises with the same place written
  out: ``filters.and[1].operator: unknown operator 'sizeEqual'; did you mean ...``.
  ``decide_filter`` is the one evaluation; besides the outcome it says why, naming the
  conditions that decided it with the values compared:
  ``nodes.2.fail_hosts_count (0) > 0 is false``. A false item decides an ``and``, a
  true one an ``or`` (evaluation stops there); otherwise every item is named, joined
  with "and" (nested groups in parentheses).

Comparison (``==`` ``!=`` ``>`` ``>=`` ``<`` ``<=``), for loose data
  * a boolean against ``"true"``/``"false"`` (any case) compares as booleans; a
    boolean against a number or numeric string compares as 1/0 (paras use ``enum:
    [1, 0]`` for booleans); two booleans compare as booleans (false < true);
  * numbers and numeric strings (``"3"``, ``" 2.5 "``, ``"1e3"``; not ``"nan"`` or
    ``"inf"``) compare numerically, also two numeric strings (``"007" == 7``);
  * two other strings compare as strings (case-sensitive);
  * anything else: ``==`` is Python equality (``None == None``, lists, objects) and
    the ordering operators are false, never an error. ``!=`` is ``not ==``.

Other operators (a negated operator is always the negation of its positive form)
  * ``size*``: ``len()`` of the property (array, string or object) against the value,
    which must be a number or numeric string (else an error). Any other property
    (missing, a number) gives false, so ``sizeNotEquals`` gives true.
  * ``length*``: ``len(text(property))`` against ``len(text(value))`` where text is
    the interpolation text above (``None`` is ``""``, ``true`` is ``"true"``).
  * ``have``: the property occurs in the value (documented: ``"Good"`` have ``"Good
    morning"`` is true). A list value: some item equals the property (comparison
    rules above); a list property: some item equals the value; both lists: every
    property item occurs in the value; an object on either side: the other side's
    text is one of its keys; otherwise substring of the texts. A missing property
    never has. ``notHave`` is its negation.
  * ``regEx``: ``re.search(value, text(property))``; an invalid pattern or a
    non-string value is an error; a missing property never matches.
  * ``ipAddress``: the property is a string holding an IPv4/IPv6 address; when the
    value is a non-empty address or CIDR network (or a list of them), the address
    must also lie in one of them (host bits of the network are ignored). A bad
    value is an error. ``notIpAddress`` is the negation.
  * ``containObjectAll``: the property is a list of objects (a single object counts
    as a list of one); the value is an object or a list of objects; true when every
    value object is matched by some property item holding all of its key/value pairs
    (values compared with ``==`` above). An empty value list is true; a value that
    is not objects is an error.

Coercion (binding ``type``; ``None``/``''`` leaves the value alone, ``None`` values
stay ``None`` for every type)
  * ``string``: booleans as ``"true"``/``"false"``, numbers, lists and objects as
    compact JSON, other values (YAML dates) as ``str()``;
  * ``integer``: booleans as 1/0, integral floats, numeric strings with an integral
    value (``"3"``, ``"3.0"``, ``"1e3"``);
  * ``number``: booleans as 1/0, numeric strings as int when written as an integer,
    else float;
  * ``boolean``: ``"true"/"false"/"yes"/"no"/"1"/"0"`` (any case, spaces ignored) and
    the numbers 1/0;
  * ``array``: lists as they are, a string starting with ``[`` must be a JSON array,
    anything else becomes a one-item list;
  * ``object``: objects as they are, a string starting with ``{`` must be a JSON
    object. Everything else raises ``ExpressionError`` naming the value and the type.

Property paths (binding ``property``, ``inputs/data.yml``)
  Dotted; in ``set_path`` a digits-only segment indexes a list (created, or extended
  with ``None`` up to the index, at most 10000) unless the container there is already
  an object, where it is a key; other segments create objects. ``get_path`` follows
  the same rules (a digits-only key also finds an integer key) and raises
  ``ExpressionError`` naming the path when something is missing. An empty path is the
  data itself.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache, partial
from typing import Any, NamedTuple

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath.functions import Functions
from jmespath.parser import ParsedResult

from trek_tasks.errors import BadInput
from trek_tasks.files import PathKey, shown
from trek_tasks.paratypes import TYPES

__all__ = [
    "OPERATORS",
    "TYPES",
    "Decision",
    "ExpressionError",
    "check_filters",
    "check_template",
    "coerce",
    "decide_filter",
    "evaluate_filter",
    "filter_node_ids",
    "get_path",
    "iter_conditions",
    "references",
    "render",
    "set_path",
]

_MAX_INDEX = 10_000
_NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_TRUE_WORDS = {"true": True, "false": False}
_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_QUOTED = re.compile(r"""('(?:\\.|[^'\\])*'?|"(?:\\.|[^"\\])*"?|`(?:\\.|[^`\\])*`?)""")
_DOTTED_INDEX = re.compile(r"\.(\d+)(?!\w)")
_LEADING_INDEX = re.compile(r"^(\d+)(?=$|[.\[])")
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_NODE_REF = re.compile(r"([^\s.\[\]{}|@'\"`]+)(.*)", re.DOTALL)
_PROPERTY = re.compile(r"nodes\.([^\s.\[\]]+)(?:\.(.*)|(\[.*))", re.DOTALL)
_FUNCTIONS = Functions().FUNCTION_TABLE
_CONDITION_KEYS = ("property", "operator", "value", "and", "or")
_CONDITION_HINT = "a condition is {property: nodes.<id>.<path>, operator: <operator>, value: ...}"


class ExpressionError(BadInput):
    """A template, filter, path or value that cannot be used (exit code 2)."""


# --- shared helpers -----------------------------------------------------------------


def _text(value: Any) -> str:
    """The interpolation text of a value (strings as-is, None empty, JSON otherwise)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (bool, int, float, list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    names = [repr(c) for c in close]
    listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    return f"; did you mean {listed}?"


def _where(path: PathKey) -> str:
    return "filters" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _number(value: Any) -> int | float | None:
    """The number a value stands for (numbers and numeric strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        if _NUMERIC.fullmatch(text):
            return float(text)
    return None


# --- JMESPath -----------------------------------------------------------------------


def _normalise(expression: str) -> str:
    """Turn dotted numeric segments into indices, leaving quoted text alone."""
    pieces = _QUOTED.split(expression)
    for i in range(0, len(pieces), 2):
        pieces[i] = _DOTTED_INDEX.sub(r"[\1]", pieces[i])
    pieces[0] = _LEADING_INDEX.sub(r"[\1]", pieces[0])
    return "".join(pieces)


def _parse_reason(err: jmespath_errors.JMESPathError) -> str:
    if isinstance(err, jmespath_errors.EmptyExpressionError):
        return "it is empty"
    if isinstance(err, jmespath_errors.IncompleteExpressionError):
        return "it ends too early"
    if isinstance(err, jmespath_errors.LexerError):
        return f"{err.message} at {shown(err.lexer_value)}"
    if isinstance(err, jmespath_errors.ParseError):
        return f"unexpected {shown(err.token_value)}"
    return str(err)


def _function_problems(node: Mapping[str, Any]) -> Iterator[str]:
    if node.get("type") == "function_expression":
        name, args = node["value"], len(node["children"])
        spec = _FUNCTIONS.get(name)
        if spec is None:
            yield f"unknown function {name}(){_did_you_mean(name, _FUNCTIONS)}"
        else:
            signature = spec["signature"]
            variadic = bool(signature) and signature[-1].get("variadic", False)
            if args < len(signature) or (args > len(signature) and not variadic):
                least = "at least " if variadic else ""
                yield f"{name}() takes {least}{len(signature)} argument(s), not {args}"
    for child in node.get("children", ()):
        if isinstance(child, Mapping):
            yield from _function_problems(child)


@lru_cache(maxsize=2048)
def _compile(expression: str) -> ParsedResult:
    """Compile a (normalised) JMESPath expression or raise ExpressionError."""
    try:
        parsed = jmespath.compile(_normalise(expression))
    except jmespath_errors.JMESPathError as err:
        reason = _parse_reason(err)
        raise ExpressionError(
            f"invalid JMESPath expression {shown(expression)}: {reason}"
        ) from None
    for problem in _function_problems(parsed.parsed):
        raise ExpressionError(f"invalid JMESPath expression {shown(expression)}: {problem}")
    return parsed


def _search(compiled: ParsedResult | None, data: Any, expression: str) -> Any:
    if compiled is None:
        return data
    try:
        return compiled.search(data)
    except jmespath_errors.JMESPathError as err:
        raise ExpressionError(f"cannot evaluate {shown(expression)}: {err}") from None


def _outputs(context: Mapping[str, Any], node: str, what: str) -> Any:
    try:
        return context[node]
    except KeyError:
        known = ", ".join(sorted(context, key=str)) or "none"
        raise ExpressionError(
            f"{what} refers to node {shown(node)}, which has no outputs here "
            f"(nodes with outputs: {known})"
        ) from None


def _detach(value: Any) -> Any:
    """A copy of JSON-like containers, so callers may change what they get."""
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_detach(v) for v in value]
    return value


# --- comparison and operators -------------------------------------------------------


def _comparable(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Both values in one comparable kind (see the module docstring), or None."""
    if isinstance(a, bool) or isinstance(b, bool):
        flag, other = (a, b) if isinstance(a, bool) else (b, a)
        if isinstance(other, bool):
            return a, b
        if isinstance(other, str) and other.strip().lower() in _TRUE_WORDS:
            word = _TRUE_WORDS[other.strip().lower()]
            return (flag, word) if flag is a else (word, flag)
        number = _number(other)
        if number is None:
            return None
        return (int(flag), number) if flag is a else (number, int(flag))
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return na, nb
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    return None


def _equals(a: Any, b: Any) -> bool:
    pair = _comparable(a, b)
    if pair is None:
        return bool(a == b)
    return bool(pair[0] == pair[1])


def _ordering(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def operator(prop: Any, value: Any) -> bool:
        pair = _comparable(prop, value)
        return pair is not None and test(*pair)

    return operator


_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: bool(a == b),
    "NotEquals": lambda a, b: bool(a != b),
    "LessThan": lambda a, b: bool(a < b),
    "LessThanEquals": lambda a, b: bool(a <= b),
    "GreaterThan": lambda a, b: bool(a > b),
    "GreaterThanEquals": lambda a, b: bool(a >= b),
}


def _size_limit(name: str, value: Any) -> int | float:
    number = _number(value)
    if number is None:
        raise ExpressionError(
            f"{name} compares a size with a number, but the value is {shown(value)}"
        )
    return number


def _size(name: str, test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def operator(prop: Any, value: Any) -> bool:
        limit = _size_limit(name, value)
        return isinstance(prop, (list, str, dict)) and test(len(prop), limit)

    return operator


def _length(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def operator(prop: Any, value: Any) -> bool:
        return test(len(_text(prop)), len(_text(value)))

    return operator


def _have(prop: Any, value: Any) -> bool:
    if prop is None:
        return False
    if isinstance(value, list) and isinstance(prop, list):
        return all(any(_equals(p, v) for v in value) for p in prop)
    if isinstance(value, list):
        return any(_equals(prop, v) for v in value)
    if isinstance(prop, list):
        return any(_equals(p, value) for p in prop)
    if isinstance(value, dict):
        return _text(prop) in value
    if isinstance(prop, dict):
        return _text(value) in prop
    return _text(prop) in _text(value)


def _pattern(value: Any) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ExpressionError(f"regEx needs a regular expression string, not {shown(value)}")
    try:
        return re.compile(value)
    except re.error as err:
        raise ExpressionError(
            f"regEx value {shown(value)} is not a valid regular expression ({err})"
        ) from None


def _regex(prop: Any, value: Any) -> bool:
    pattern = _pattern(value)
    return prop is not None and pattern.search(_text(prop)) is not None


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(name: str, value: Any) -> list[_Network]:
    items = value if isinstance(value, list) else [value]
    networks = []
    for item in items:
        if item is None or item == "":
            continue
        try:
            networks.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise ExpressionError(
                f"{name} value {shown(item)} is not an IP address or network like '10.0.0.0/8'"
            ) from None
    return networks


def _ip_operator(name: str, negate: bool) -> Callable[[Any, Any], bool]:
    def operator(prop: Any, value: Any) -> bool:
        networks = _networks(name, value)
        try:
            address = ipaddress.ip_address(prop) if isinstance(prop, str) else None
        except ValueError:
            address = None
        inside = address is not None and (
            not networks or any(n.version == address.version and address in n for n in networks)
        )
        return inside != negate

    return operator


def _wanted_objects(value: Any) -> list[dict[Any, Any]]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, dict) for item in items):
        raise ExpressionError(
            f"containObjectAll value must be an object or a list of objects, not {shown(value)}"
        )
    return items


def _contain_object_all(prop: Any, value: Any) -> bool:
    wanted = _wanted_objects(value)
    have = [prop] if isinstance(prop, dict) else prop
    if not isinstance(have, list):
        return False
    candidates = [item for item in have if isinstance(item, dict)]
    return all(
        any(all(k in item and _equals(item[k], v) for k, v in want.items()) for item in candidates)
        for want in wanted
    )


def _build_operators() -> dict[str, Callable[[Any, Any], bool]]:
    operators: dict[str, Callable[[Any, Any], bool]] = {
        "==": _equals,
        "!=": lambda prop, value: not _equals(prop, value),
        ">": _ordering(_TESTS["GreaterThan"]),
        ">=": _ordering(_TESTS["GreaterThanEquals"]),
        "<": _ordering(_TESTS["LessThan"]),
        "<=": _ordering(_TESTS["LessThanEquals"]),
    }
    for suffix, test in _TESTS.items():
        operators["size" + suffix] = _size("size" + suffix, test)
    size_equals = operators["sizeEquals"]
    operators["sizeNotEquals"] = lambda prop, value: not size_equals(prop, value)
    for suffix, test in _TESTS.items():
        operators["length" + suffix] = _length(test)
    operators.update(
        {
            "have": _have,
            "notHave": lambda prop, value: not _have(prop, value),
            "regEx": _regex,
            "ipAddress": _ip_operator("ipAddress", negate=False),
            "notIpAddress": _ip_operator("notIpAddress", negate=True),
            "containObjectAll": _contain_object_all,
        }
    )
    return operators


OPERATORS: dict[str, Callable[[Any, Any], bool]] = _build_operators()

# Checks of a filter's literal value, by operator; each raises ExpressionError.
_VALUE_CHECKS: dict[str, Callable[[Any], object]] = {
    **{f"size{suffix}": partial(_size_limit, f"size{suffix}") for suffix in _TESTS},
    "regEx": _pattern,
    "ipAddress": lambda v: _networks("ipAddress", v),
    "notIpAddress": lambda v: _networks("notIpAddress", v),
    "containObjectAll": _wanted_objects,
}


def _unknown_operator(operator: Any) -> str:
    hint = _did_you_mean(str(operator), OPERATORS)
    return f"unknown operator {shown(operator)}" + (hint or "; use one of: " + ", ".join(OPERATORS))


# --- filters ------------------------------------------------------------------------


@lru_cache(maxsize=2048)
def _parse_property(prop: str) -> tuple[str, str, ParsedResult]:
    """``nodes.<id>.<path>`` -> (node id, path, compiled path) or ExpressionError."""
    match = _PROPERTY.fullmatch(prop)
    if match is None:
        raise ExpressionError(f"property {shown(prop)} must look like 'nodes.<id>.<path>'")
    node, dotted, bracketed = match.groups()
    expression = dotted if dotted is not None else bracketed
    try:
        return node, expression, _compile(expression)
    except ExpressionError as err:
        raise ExpressionError(f"property {shown(prop)}: {err.message}") from None


def _property(prop: Any) -> tuple[str, str, ParsedResult]:
    if not isinstance(prop, str):
        raise ExpressionError(f"property {shown(prop)} must look like 'nodes.<id>.<path>'")
    return _parse_property(prop)


def _group(node: Mapping[str, Any]) -> tuple[str, Any] | None:
    """('and'|'or', items) when the mapping is a group, None when it is a condition."""
    for key in ("and", "or"):
        if key in node:
            return key, node[key]
    return None


def _missing(key: str, condition: Mapping[str, Any]) -> str:
    for found in condition:
        if (
            isinstance(found, str)
            and found not in _CONDITION_KEYS
            and difflib.get_close_matches(found, [key], cutoff=0.6)
        ):
            return f"condition has no {shown(key)}; rename {shown(found)} to {shown(key)}"
    return f"condition has no {shown(key)}; {_CONDITION_HINT}"


def _not_mapping(value: Any) -> str:
    return (
        f"expected a condition or an and/or group, not {shown(value)}; "
        f"{_CONDITION_HINT}, a group is {{and: [...]}} or {{or: [...]}}"
    )


def _structure_problems(node: Any, path: PathKey) -> Iterator[tuple[PathKey, str]]:
    """Problems of the and/or skeleton; conditions are checked separately."""
    if not isinstance(node, Mapping):
        yield path, _not_mapping(node)
        return
    if not node and path:
        yield path, f"empty condition; {_CONDITION_HINT}"
    if "and" in node and "or" in node:
        yield path, "a mapping holds either 'and' or 'or', not both; nest one inside the other"
    group = _group(node)
    if group is None:
        return
    key, items = group
    if "property" in node or "operator" in node:
        yield (
            path,
            (
                f"a mapping holds either {shown(key)} or a condition, not both; "
                f"move the condition into the {shown(key)} list"
            ),
        )
    if not isinstance(items, list):
        yield path + (key,), f"{shown(key)} must be a list of conditions, not {shown(items)}"
    elif not items:
        yield path + (key,), f"{shown(key)} has no conditions; add some or remove it"


def _walk(filters: Any, path: PathKey = ()) -> Iterator[tuple[PathKey, Any]]:
    """Every mapping of the filters tree with its path (groups and conditions)."""
    yield path, filters
    if isinstance(filters, Mapping):
        group = _group(filters)
        if group is not None and isinstance(group[1], list):
            for index, item in enumerate(group[1]):
                yield from _walk(item, path + (group[0], index))


def _is_condition(node: Any) -> bool:
    return isinstance(node, Mapping) and bool(node) and _group(node) is None


def iter_conditions(filters: Any) -> Iterator[tuple[PathKey, Mapping[str, Any]]]:
    """Yield (path inside the filters, condition) for every leaf condition.

    The path is a tuple of keys and indices, e.g. ``('and', 1, 'or', 0)``; a
    top-level condition has the path ``()``. Malformed parts are skipped
    (``check_filters`` reports them)."""
    for path, node in _walk(filters):
        if _is_condition(node):
            yield path, node


def _condition_problems(
    condition: Mapping[str, Any], path: PathKey
) -> Iterator[tuple[PathKey, str]]:
    if "property" not in condition:
        yield path, _missing("property", condition)
    else:
        try:
            _property(condition["property"])
        except ExpressionError as err:
            yield path + ("property",), err.message
    if "operator" not in condition:
        yield path, _missing("operator", condition)
        return
    operator = condition["operator"]
    if not isinstance(operator, str) or operator not in OPERATORS:
        yield path + ("operator",), _unknown_operator(operator)
        return
    check = _VALUE_CHECKS.get(operator)
    if check is not None:
        try:
            check(condition.get("value"))
        except ExpressionError as err:
            yield path + ("value",), err.message


def check_filters(filters: Any) -> list[tuple[PathKey, str]]:
    """Every structural problem of a filters tree as (path, message).

    The path points at the offending part: a condition's key (``('and', 0,
    'operator')``) when one key is wrong, the condition itself when a key is missing.
    """
    problems: list[tuple[PathKey, str]] = []
    for path, node in _walk(filters):
        problems.extend(_structure_problems(node, path))
        if _is_condition(node):
            problems.extend(_condition_problems(node, path))
    return problems


def filter_node_ids(filters: Any) -> set[str]:
    """The node ids named by the conditions' properties (invalid ones skipped)."""
    ids = set()
    for _, condition in iter_conditions(filters):
        prop = condition.get("property")
        match = _PROPERTY.fullmatch(prop) if isinstance(prop, str) else None
        if match is not None:
            ids.add(match.group(1))
    return ids


class Decision(NamedTuple):
    """Whether filters hold, and why: the conditions that decided it, values included."""

    holds: bool
    why: str


def _evaluate(node: Any, context: Mapping[str, Any], path: PathKey) -> Decision:
    problem = next(_structure_problems(node, path), None)
    if problem is not None:
        raise ExpressionError(f"{_where(problem[0])}: {problem[1]}")
    group = _group(node)
    if group is None:
        return _evaluate_condition(node, context, path) if node else Decision(True, "no condition")
    key, items = group
    decisive = key == "or"  # the outcome of one item that decides the group
    whys = []
    for index, item in enumerate(items):
        decision = _evaluate(item, context, path + (key, index))
        nested = _group(item) is not None and " and " in decision.why
        why = f"({decision.why})" if nested else decision.why
        if decision.holds is decisive:
            return Decision(decisive, why)
        whys.append(why)
    return Decision(not decisive, " and ".join(whys))


def _evaluate_condition(
    condition: Mapping[str, Any], context: Mapping[str, Any], path: PathKey
) -> Decision:
    name = condition.get("operator")
    operator = OPERATORS.get(name) if isinstance(name, str) else None
    if operator is None or "property" not in condition:
        problem_path, message = next(_condition_problems(condition, path))
        raise ExpressionError(f"{_where(problem_path)}: {message}")
    prop = condition["property"]
    try:
        node, expression, compiled = _property(prop)
        value = _search(compiled, _outputs(context, node, f"property {shown(prop)}"), expression)
    except ExpressionError as err:
        raise ExpressionError(f"{_where(path + ('property',))}: {err.message}") from None
    expected = condition.get("value")
    try:
        holds = bool(operator(value, expected))
    except ExpressionError as err:
        raise ExpressionError(f"{_where(path + ('value',))}: {err.message}") from None
    outcome = "true" if holds else "false"
    return Decision(holds, f"{prop} ({shown(value)}) {name} {shown(expected)} is {outcome}")


def decide_filter(filters: Mapping[str, Any], context: Mapping[str, Any]) -> Decision:
    """Whether the filters hold for ``context`` (node id -> that node's outputs), and why."""
    return _evaluate(filters, context, ())


def evaluate_filter(filters: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """Whether the filters hold for ``context`` (``decide_filter`` without the why)."""
    return decide_filter(filters, context).holds


# --- templates ----------------------------------------------------------------------


class _Ref(NamedTuple):
    text: str  # the template as written, for messages
    node: str
    expression: str  # "" for the whole outputs
    compiled: ParsedResult | None


class _Template(NamedTuple):
    parts: tuple[str | _Ref, ...]
    single: _Ref | None  # set when the string is exactly one template
    problems: tuple[str, ...]


def _reference(text: str, inner: str) -> _Ref | str:
    """A parsed ``{{ ... }}`` or the problem with it."""
    inner = inner.strip()
    if "{{" in inner:
        return f"template {shown(text)} contains '{{{{'; close each template with '}}}}'"
    match = _NODE_REF.fullmatch(inner)
    if match is None:
        return f"template {shown(text)} has no node id; write '{{{{ <nodeId>.<path> }}}}'"
    node, rest = match.groups()
    if node == "nodes":
        return f"template {shown(text)}: write '{{{{ <nodeId>.<path> }}}}' without 'nodes.'"
    if rest and rest[0] not in ".[":
        return f"template {shown(text)}: expected '.' or '[' after the node id {shown(node)}"
    if not rest:
        return _Ref(text, node, "", None)
    expression = rest[1:] if rest.startswith(".") else rest
    try:
        return _Ref(text, node, expression, _compile(expression))
    except ExpressionError as err:
        return f"template {shown(text)}: {err.message}"


@lru_cache(maxsize=4096)
def _parse_template(text: str) -> _Template:
    parts: list[str | _Ref] = []
    problems: list[str] = []
    position = 0
    for match in _TEMPLATE.finditer(text):
        parts.append(text[position : match.start()])
        ref = _reference(match.group(0), match.group(1))
        if isinstance(ref, str):
            problems.append(ref)
        else:
            parts.append(ref)
        position = match.end()
    tail = text[position:]
    if "{{" in tail:
        opened = tail[tail.index("{{") :]
        problems.append(f"{shown(opened)} opens a template but never closes it; end it with '}}}}'")
    parts.append(tail)
    refs = [p for p in parts if isinstance(p, _Ref)]
    exact = len(refs) == 1 and all(isinstance(p, _Ref) or not p.strip() for p in parts)
    kept = tuple(p for p in parts if p != "")
    return _Template(kept, refs[0] if exact else None, tuple(problems))


def _walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _walk_strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk_strings(item)


def references(value: Any) -> list[tuple[str, str]]:
    """(node id, expression) of every valid template in a value, in order.

    The expression is ``""`` for ``{{ <id> }}`` (the whole outputs)."""
    found: list[tuple[str, str]] = []
    for text in _walk_strings(value):
        if "{{" in text:
            found.extend(
                (p.node, p.expression) for p in _parse_template(text).parts if isinstance(p, _Ref)
            )
    return found


def check_template(value: Any) -> list[str]:
    """Every problem of the templates in a value (recursing into lists and dicts)."""
    problems: list[str] = []
    for text in _walk_strings(value):
        if "{{" in text:
            problems.extend(_parse_template(text).problems)
    return problems


def _resolve(ref: _Ref, context: Mapping[str, Any]) -> Any:
    outputs = _outputs(context, ref.node, f"template {ref.text!r}")
    try:
        return _search(ref.compiled, outputs, ref.expression)
    except ExpressionError as err:
        raise ExpressionError(f"template {ref.text!r}: {err.message}") from None


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """A binding value with its templates replaced by values from ``context``."""
    if isinstance(value, str):
        if "{{" not in value:
            return value
        template = _parse_template(value)
        if template.problems:
            raise ExpressionError(template.problems[0])
        if template.single is not None:
            return _detach(_resolve(template.single, context))
        return "".join(
            _text(_resolve(p, context)) if isinstance(p, _Ref) else p for p in template.parts
        )
    if isinstance(value, list):
        return [render(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    return value


# --- coercion -----------------------------------------------------------------------


def _cannot(value: Any, type_name: str, why: str) -> ExpressionError:
    return ExpressionError(f"cannot convert {shown(value)} to {type_name}: {why}")


def _to_number(value: Any, type_name: str) -> int | float:
    if isinstance(value, bool):
        return int(value)
    number = _number(value)
    if number is None:
        raise _cannot(value, type_name, "it is not a number")
    if type_name == "integer" and not isinstance(number, int):
        if not float(number).is_integer():
            raise _cannot(value, type_name, "it has a fraction")
        return int(number)
    return number


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise _cannot(value, "boolean", "use true/false, yes/no or 1/0")


def _from_json(value: str, type_name: str, kind: type) -> Any:
    try:
        loaded = json.loads(value)
    except json.JSONDecodeError as err:
        raise _cannot(value, type_name, f"invalid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(loaded, kind):
        raise _cannot(value, type_name, f"the JSON is not an {type_name}")
    return loaded


def _to_array(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.lstrip().startswith("["):
        return list(_from_json(value, "array", list))
    return [value]


def _to_object(value: Any) -> dict[Any, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        return dict(_from_json(value, "object", dict))
    raise _cannot(value, "object", "it is neither an object nor a JSON object string")


def coerce(value: Any, type_name: str | None) -> Any:
    """The value converted to a binding ``type`` (see the module docstring)."""
    if not type_name:
        return value
    if type_name not in TYPES:
        raise ExpressionError(
            f"unknown type {shown(type_name)}"
            + (_did_you_mean(str(type_name), TYPES) or "; use one of: " + ", ".join(TYPES))
        )
    if value is None:
        return None
    if type_name == "string":
        return _text(value)
    if type_name in ("integer", "number"):
        if isinstance(value, (list, dict)):
            raise _cannot(value, type_name, "it is not a number")
        return _to_number(value, type_name)
    if type_name == "boolean":
        return _to_boolean(value)
    if type_name == "array":
        return _to_array(value)
    return _to_object(value)


# --- property paths -----------------------------------------------------------------


def _segments(path: str) -> list[str]:
    segments = path.split(".")
    if "" in segments:
        raise ExpressionError(f"property path {shown(path)} has an empty segment")
    return segments


def _index(segment: str) -> int | None:
    return int(segment) if segment.isascii() and segment.isdigit() else None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else shown(value)


def _place(segments: list[str]) -> str:
    return repr(".".join(segments)) if segments else "the top level"


def _store(container: Any, segments: list[str], depth: int, value: Any, path: str) -> None:
    segment = segments[depth]
    index = _index(segment)
    if isinstance(container, dict):
        container[segment] = value
    elif isinstance(container, list) and index is not None:
        if index > _MAX_INDEX:
            raise ExpressionError(f"cannot set {shown(path)}: index {index} is above {_MAX_INDEX}")
        container.extend([None] * (index + 1 - len(container)))
        container[index] = value
    else:
        raise ExpressionError(
            f"cannot set {shown(path)}: {_place(segments[:depth])} is {_kind(container)}, "
            f"which has no item {shown(segment)}"
        )


def _fetch(container: Any, segment: str) -> Any:
    if isinstance(container, dict):
        return container.get(segment)
    index = _index(segment)
    if isinstance(container, list) and index is not None and index < len(container):
        return container[index]
    return None


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at a dotted path, creating lists (digit segments) and objects."""
    segments = _segments(path)
    current: Any = target
    for depth in range(len(segments) - 1):
        child = _fetch(current, segments[depth])
        if child is None:
            child = [] if _index(segments[depth + 1]) is not None else {}
            _store(current, segments, depth, child, path)
        current = child
    _store(current, segments, len(segments) - 1, value, path)


def get_path(data: Any, path: str) -> Any:
    """The value at a dotted path; ExpressionError naming the path when it is missing."""
    if path == "":
        return data
    current = data
    segments = _segments(path)
    for depth, segment in enumerate(segments):
        place, index = _place(segments[:depth]), _index(segment)
        if isinstance(current, dict):
            if segment in current:
                current = current[segment]
                continue
            if index is not None and index in current:
                current = current[index]
                continue
            keys = ", ".join(sorted(map(str, current))) or "none"
            raise ExpressionError(
                f"cannot find {shown(path)}: {place} has no key {shown(segment)} (keys: {keys})"
            )
        if isinstance(current, list) and index is not None:
            if index >= len(current):
                raise ExpressionError(
                    f"cannot find {shown(path)}: {place} has {len(current)} item(s), "
                    f"no item {index}"
                )
            current = current[index]
            continue
        raise ExpressionError(
            f"cannot find {shown(path)}: {place} is {_kind(current)}, "
            f"which has no item {shown(segment)}"
        )
    return current

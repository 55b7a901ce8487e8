"""Edge expressions: filters, operators, templates, coercion and property paths."""

from __future__ import annotations

from typing import Any

import pytest

from trek_tasks.errors import BadInput
from trek_tasks.expr import (
    OPERATORS,
    ExpressionError,
    check_filters,
    check_template,
    coerce,
    decide_filter,
    evaluate_filter,
    filter_node_ids,
    get_path,
    iter_conditions,
    references,
    render,
    set_path,
)

FAIL_HOST = {"id": "h1", "ip": "10.0.0.1", "name": "redis-1"}
CONTEXT: dict[str, Any] = {
    "0": {"tag_name": "redis:unreachable"},
    "2": {"fail_hosts_count": 1, "fail_hosts": [FAIL_HOST], "result": "Good"},
}


def holds(prop: str, operator: str, value: Any, context: dict[str, Any] = CONTEXT) -> bool:
    return evaluate_filter({"property": prop, "operator": operator, "value": value}, context)


def message(excinfo: pytest.ExceptionInfo[ExpressionError]) -> str:
    return str(excinfo.value)


# --- the documented truth table (SPEC 6.3) -------------------------------------------


@pytest.mark.parametrize(
    ("prop", "operator", "value", "expected"),
    [
        ("fail_hosts_count", "==", 0, False),
        ("fail_hosts_count", "!=", 0, True),
        ("fail_hosts_count", ">", 0, True),
        ("fail_hosts_count", ">=", 0, True),
        ("fail_hosts_count", "<", 0, False),
        ("fail_hosts_count", "<=", 0, False),
        ("fail_hosts", "sizeEquals", 1, True),
        ("fail_hosts", "sizeNotEquals", 1, False),
        ("fail_hosts", "sizeLessThan", 5, True),
        ("fail_hosts", "sizeLessThanEquals", 1, True),
        ("fail_hosts", "sizeGreaterThan", 5, False),
        ("fail_hosts", "sizeGreaterThanEquals", 5, False),
        ("result", "lengthEquals", "Good morning", False),
        ("result", "lengthNotEquals", "Good morning", True),
        ("result", "lengthLessThan", "Good morning", True),
        ("result", "lengthLessThanEquals", "Good morning", True),
        ("result", "lengthGreaterThan", "Good morning", False),
        ("result", "lengthGreaterThanEquals", "Good morning", False),
        ("result", "have", "Good morning", True),
        ("result", "notHave", "Good morning", False),
        ("result", "regEx", "[A-Za-z]+", True),
    ],
)
def test_documented_truth_table(prop: str, operator: str, value: Any, expected: bool) -> None:
    assert holds(f"nodes.2.{prop}", operator, value) is expected


def test_every_operator_of_the_spec_exists() -> None:
    suffixes = ["Equals", "NotEquals", "LessThan", "LessThanEquals", "GreaterThan"]
    suffixes.append("GreaterThanEquals")
    assert sorted(OPERATORS) == sorted(
        ["==", "!=", ">", ">=", "<", "<="]
        + [f"size{s}" for s in suffixes]
        + [f"length{s}" for s in suffixes]
        + ["have", "notHave", "regEx", "ipAddress", "notIpAddress", "containObjectAll"]
    )


# --- operators on loose data ---------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "prop", "value", "expected"),
    [
        ("==", "1", 1, True),
        ("==", "007", 7, True),
        ("==", " 2.5 ", 2.5, True),
        ("==", 1.0, 1, True),
        ("==", "1e3", 1000, True),
        (">", "10", "9", True),
        (">", "10", 9.5, True),
        ("<", "abc", "abd", True),
        ("==", "Abc", "abc", False),
        ("==", True, "TRUE", True),
        ("==", False, "false", True),
        ("==", "true", True, True),
        ("==", True, 1, True),
        ("==", True, "1", True),
        ("==", False, 0, True),
        ("==", True, 2, False),
        ("==", True, "yes", False),
        ("!=", True, "yes", True),
        (">", True, False, True),
        ("==", None, None, True),
        ("==", None, 0, False),
        ("!=", None, 0, True),
        ("==", [1, 2], [1, 2], True),
        ("==", {"a": 1}, {"a": 1}, True),
        ("==", "abc", 1, False),
        ("==", "nan", "nan", True),
        (">", "abc", 1, False),
        ("<", "abc", 1, False),
        ("<", "nan", 1, False),
        (">", None, 0, False),
        ("<=", None, 0, False),
        ("<=", [1], [2], False),
        (">", {"a": 1}, 0, False),
        (">=", True, "maybe", False),
        ("sizeEquals", "abc", 3, True),
        ("sizeEquals", {"a": 1}, "1", True),
        ("sizeLessThan", [], 1, True),
        ("sizeEquals", 5, 1, False),
        ("sizeGreaterThanEquals", None, 0, False),
        ("sizeNotEquals", None, 0, True),
        ("sizeNotEquals", 5, 1, True),
        ("lengthEquals", None, "", True),
        ("lengthEquals", True, "true", True),
        ("lengthEquals", 12, "ab", True),
        ("lengthEquals", [1, 2], "[1,2]", True),
        ("have", "Good", "Good morning", True),
        ("have", "Good morning", "Good", False),
        ("have", 5, "a5b", True),
        ("have", "a", ["a", "b"], True),
        ("have", "1", [1, 2], True),
        ("have", "c", ["a", "b"], False),
        ("have", ["a", "b"], "b", True),
        ("have", ["a", "b"], "c", False),
        ("have", ["a", "c"], ["a", "b", "c"], True),
        ("have", ["a", "d"], ["a", "b"], False),
        ("have", "k", {"k": 1}, True),
        ("have", {"k": 1}, "k", True),
        ("have", {"k": 1}, "v", False),
        ("have", None, "x", False),
        ("notHave", None, "x", True),
        ("notHave", "c", ["a", "b"], True),
        ("regEx", "Good", "^G", True),
        ("regEx", "abc", "^b", False),
        ("regEx", 12345, r"^\d+$", True),
        ("regEx", None, ".*", False),
        ("ipAddress", "10.0.0.1", None, True),
        ("ipAddress", "10.0.0.1", "", True),
        ("ipAddress", "::1", None, True),
        ("ipAddress", "10.0.0.1", "10.0.0.0/8", True),
        ("ipAddress", "10.0.0.5", "10.0.0.1/24", True),
        ("ipAddress", "10.0.0.1", "10.0.0.1", True),
        ("ipAddress", "10.0.0.1", "192.168.0.0/16", False),
        ("ipAddress", "10.0.0.1", ["192.168.0.0/16", "10.0.0.0/8"], True),
        ("ipAddress", "::1", "::/0", True),
        ("ipAddress", "10.0.0.1", "::/0", False),
        ("ipAddress", "300.0.0.1", None, False),
        ("ipAddress", "redis-1", None, False),
        ("ipAddress", None, None, False),
        ("ipAddress", 167772161, None, False),
        ("notIpAddress", "redis-1", None, True),
        ("notIpAddress", "10.0.0.1", "192.168.0.0/16", True),
        ("notIpAddress", "10.0.0.1", "10.0.0.0/8", False),
    ],
)
def test_operator_on_loose_data(operator: str, prop: Any, value: Any, expected: bool) -> None:
    assert OPERATORS[operator](prop, value) is expected


HOSTS = [{"id": "h1", "ip": "10.0.0.1"}, {"id": "h2", "ip": "10.0.0.2", "port": 6379}]


@pytest.mark.parametrize(
    ("prop", "value", "expected"),
    [
        (HOSTS, {"id": "h1"}, True),
        (HOSTS, [{"id": "h1"}, {"ip": "10.0.0.2", "port": "6379"}], True),
        (HOSTS, [{"id": "h1", "ip": "10.0.0.2"}], False),
        (HOSTS, {"id": "h3"}, False),
        (HOSTS, {"id": "h1", "port": 6379}, False),
        (HOSTS, [], True),
        ({"id": 1}, {"id": "1"}, True),
        (["h1", {"id": "h1"}], {"id": "h1"}, True),
        ("h1", {"id": "h1"}, False),
        (None, {"id": "h1"}, False),
    ],
)
def test_contain_object_all(prop: Any, value: Any, expected: bool) -> None:
    assert OPERATORS["containObjectAll"](prop, value) is expected


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("sizeEquals", "many", "sizeEquals compares a size with a number, but the value is 'many'"),
        ("sizeLessThan", None, "sizeLessThan compares a size with a number, but the value is null"),
        (
            "regEx",
            "[a-z",
            "regEx value '[a-z' is not a valid regular expression "
            "(unterminated character set at position 0)",
        ),
        ("regEx", 5, "regEx needs a regular expression string, not 5"),
        (
            "ipAddress",
            "10.0.0.0/33",
            "ipAddress value '10.0.0.0/33' is not an IP address or network like '10.0.0.0/8'",
        ),
        (
            "notIpAddress",
            ["10.0.0.0/8", "lan"],
            "notIpAddress value 'lan' is not an IP address or network like '10.0.0.0/8'",
        ),
        (
            "containObjectAll",
            "h1",
            "containObjectAll value must be an object or a list of objects, not 'h1'",
        ),
    ],
)
def test_operator_rejects_a_bad_value(operator: str, value: Any, expected: str) -> None:
    with pytest.raises(ExpressionError) as excinfo:
        OPERATORS[operator]("10.0.0.1", value)
    assert message(excinfo) == expected
    assert isinstance(excinfo.value, BadInput)


# --- evaluate_filter ------------------------------------------------------------------

TRUE = {"property": "nodes.2.fail_hosts_count", "operator": ">", "value": 0}
FALSE = {"property": "nodes.2.fail_hosts_count", "operator": "<=", "value": 0}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"and": [TRUE, TRUE]}, True),
        ({"and": [TRUE, FALSE]}, False),
        ({"or": [FALSE, TRUE]}, True),
        ({"or": [FALSE, FALSE]}, False),
        ({"or": [{"and": [TRUE, FALSE]}, {"and": [TRUE, {"or": [FALSE, TRUE]}]}]}, True),
        ({"and": [TRUE, {"or": [FALSE, {"and": [TRUE, FALSE]}]}]}, False),
        ({}, True),
    ],
)
def test_nested_and_or(filters: dict[str, Any], expected: bool) -> None:
    assert evaluate_filter(filters, CONTEXT) is expected


CALM = {"property": "nodes.2.result", "operator": "==", "value": "Bad"}


@pytest.mark.parametrize(
    ("filters", "holds", "why"),
    [
        (TRUE, True, "nodes.2.fail_hosts_count (1) > 0 is true"),
        (FALSE, False, "nodes.2.fail_hosts_count (1) <= 0 is false"),
        ({"and": [TRUE, FALSE, CALM]}, False, "nodes.2.fail_hosts_count (1) <= 0 is false"),
        (
            {"or": [FALSE, CALM]},
            False,
            "nodes.2.fail_hosts_count (1) <= 0 is false and "
            "nodes.2.result ('Good') == 'Bad' is false",
        ),
        ({"or": [FALSE, TRUE, CALM]}, True, "nodes.2.fail_hosts_count (1) > 0 is true"),
        (
            {"or": [{"and": [TRUE, FALSE]}, {"or": [CALM, FALSE]}]},
            False,
            "nodes.2.fail_hosts_count (1) <= 0 is false and "
            "(nodes.2.result ('Good') == 'Bad' is false and "
            "nodes.2.fail_hosts_count (1) <= 0 is false)",
        ),
        (
            {"property": "nodes.2.fail_hosts[].id", "operator": "have", "value": "h9"},
            False,
            "nodes.2.fail_hosts[].id ([\"h1\"]) have 'h9' is false",
        ),
        ({}, True, "no condition"),
    ],
)
def test_a_decision_names_the_conditions_that_made_it_with_their_values(
    filters: dict[str, Any], holds: bool, why: str
) -> None:
    decision = decide_filter(filters, CONTEXT)
    assert (decision.holds, decision.why) == (holds, why)
    assert evaluate_filter(filters, CONTEXT) is holds


def test_selector_filters_name_the_selector_itself() -> None:
    context = {"4": {"status": "success", "fail_hosts": [FAIL_HOST]}}
    assert holds("nodes.4.status", "==", "success", context)
    assert holds("nodes.4.fail_hosts[0].ip", "ipAddress", "10.0.0.0/8", context)
    assert not holds("nodes.4.status", "==", "failure", context)


@pytest.mark.parametrize(
    ("prop", "operator", "value", "expected"),
    [
        ("nodes.2.fail_hosts.0.id", "==", "h1", True),
        ("nodes.2.fail_hosts[0].id", "==", "h1", True),
        ("nodes.2.fail_hosts.0.id", "==", "h2", False),
        ("nodes.2.fail_hosts[?ip=='10.0.0.1'].name | [0]", "==", "redis-1", True),
        ("nodes.2.fail_hosts[].id", "have", "h1", True),
        ("nodes.2.length(fail_hosts)", "==", 1, True),
        ("nodes.2.nothing", "==", None, True),
        ("nodes.2.nothing", "sizeLessThan", 1_000, False),
        ("nodes.2.fail_hosts.5.id", "==", None, True),
    ],
)
def test_filter_paths_are_jmespath(prop: str, operator: str, value: Any, expected: bool) -> None:
    assert holds(prop, operator, value) is expected


def test_dotted_index_leaves_quoted_text_alone() -> None:
    context = {"2": {"hosts": {"10.0.0.1": "up"}, "0": "zero"}}
    assert holds('nodes.2.hosts."10.0.0.1"', "==", "up", context)
    assert holds('nodes.2."0"', "==", "zero", context)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            {"property": "nodes.9.status", "operator": "==", "value": 1},
            "filters.property: property 'nodes.9.status' refers to node '9', which has no "
            "outputs here (nodes with outputs: 0, 2)",
        ),
        (
            {"and": [TRUE, {"property": "nodes.2.result", "operator": "sizeEqual", "value": 1}]},
            "filters.and[1].operator: unknown operator 'sizeEqual'; did you mean "
            "'sizeEquals', 'sizeNotEquals' or 'sizeLessThanEquals'?",
        ),
        (
            {"or": [FALSE, {"property": "nodes.2.result", "operator": "regEx", "value": "("}]},
            "filters.or[1].value: regEx value '(' is not a valid regular expression "
            "(missing ), unterminated subpattern at position 0)",
        ),
        (
            {"property": "nodes.2.length(fail_hosts_count)", "operator": "==", "value": 1},
            "filters.property: cannot evaluate 'length(fail_hosts_count)': In function "
            "length(), invalid type for value: 1, expected one of: "
            "['string', 'array', 'object'], received: \"number\"",
        ),
        (
            {"and": [TRUE, {"property": "nodes.2.result"}]},
            "filters.and[1]: condition has no 'operator'; a condition is "
            "{property: nodes.<id>.<path>, operator: <operator>, value: ...}",
        ),
        (
            {"or": "fail"},
            "filters.or: 'or' must be a list of conditions, not 'fail'",
        ),
    ],
)
def test_evaluate_filter_errors_say_where(filters: dict[str, Any], expected: str) -> None:
    with pytest.raises(ExpressionError) as excinfo:
        evaluate_filter(filters, CONTEXT)
    assert message(excinfo) == expected


def test_unknown_operator_without_a_close_match_lists_all() -> None:
    with pytest.raises(ExpressionError) as excinfo:
        holds("nodes.2.result", "~", "x")
    assert message(excinfo) == "filters.operator: unknown operator '~'; use one of: " + ", ".join(
        OPERATORS
    )


# --- check_filters, iter_conditions, filter_node_ids ----------------------------------


def test_example_filters_are_valid() -> None:
    for filters in (TRUE, FALSE, {"and": [TRUE, {"or": [FALSE, TRUE]}]}, {}):
        assert check_filters(filters) == []


def test_check_filters_reports_every_problem_with_its_path() -> None:
    filters = {
        "and": [
            {"propery": "nodes.2.x", "operator": "sizeEqual"},
            {"or": "x"},
            {},
            5,
            {"property": "nodes.2.a[", "operator": "regEx", "value": "["},
            {"property": "node.2.a", "operator": "ipAddress", "value": "lan"},
            {"property": "nodes.2.foo(a)", "operatr": ">", "value": 1},
            {"and": [], "or": [TRUE], "property": "nodes.2.x"},
            {"property": 7, "operator": 5},
        ]
    }
    hint = "a condition is {property: nodes.<id>.<path>, operator: <operator>, value: ...}"
    assert check_filters(filters) == [
        (("and", 0), "condition has no 'property'; rename 'propery' to 'property'"),
        (
            ("and", 0, "operator"),
            "unknown operator 'sizeEqual'; did you mean 'sizeEquals', 'sizeNotEquals' "
            "or 'sizeLessThanEquals'?",
        ),
        (("and", 1, "or"), "'or' must be a list of conditions, not 'x'"),
        (("and", 2), f"empty condition; {hint}"),
        (
            ("and", 3),
            f"expected a condition or an and/or group, not 5; {hint}, "
            "a group is {and: [...]} or {or: [...]}",
        ),
        (
            ("and", 4, "property"),
            "property 'nodes.2.a[': invalid JMESPath expression 'a[': it ends too early",
        ),
        (
            ("and", 4, "value"),
            "regEx value '[' is not a valid regular expression "
            "(unterminated character set at position 0)",
        ),
        (("and", 5, "property"), "property 'node.2.a' must look like 'nodes.<id>.<path>'"),
        (
            ("and", 5, "value"),
            "ipAddress value 'lan' is not an IP address or network like '10.0.0.0/8'",
        ),
        (
            ("and", 6, "property"),
            "property 'nodes.2.foo(a)': invalid JMESPath expression 'foo(a)': "
            "unknown function foo(); did you mean 'floor'?",
        ),
        (("and", 6), "condition has no 'operator'; rename 'operatr' to 'operator'"),
        (
            ("and", 7),
            "a mapping holds either 'and' or 'or', not both; nest one inside the other",
        ),
        (
            ("and", 7),
            "a mapping holds either 'and' or a condition, not both; "
            "move the condition into the 'and' list",
        ),
        (("and", 7, "and"), "'and' has no conditions; add some or remove it"),
        (("and", 8, "property"), "property 7 must look like 'nodes.<id>.<path>'"),
        (("and", 8, "operator"), "unknown operator 5; use one of: " + ", ".join(OPERATORS)),
    ]


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        ("nodes.2", "property 'nodes.2' must look like 'nodes.<id>.<path>'"),
        ("nodes.2.", "property 'nodes.2.': invalid JMESPath expression '': it is empty"),
        (
            "nodes.2.a ~ b",
            "property 'nodes.2.a ~ b': invalid JMESPath expression 'a ~ b': Unknown token ~ at '~'",
        ),
        (
            "nodes.2.a[?b=='x]",
            'property "nodes.2.a[?b==\'x]": invalid JMESPath expression "a[?b==\'x]": '
            "Unclosed ' delimiter at \"'x]\"",
        ),
        (
            "nodes.2.a.`1`",
            "property 'nodes.2.a.`1`': invalid JMESPath expression 'a.`1`': unexpected 1",
        ),
        (
            "nodes.2.length(a, b)",
            "property 'nodes.2.length(a, b)': invalid JMESPath expression 'length(a, b)': "
            "length() takes 1 argument(s), not 2",
        ),
        (
            "nodes.2.merge()",
            "property 'nodes.2.merge()': invalid JMESPath expression 'merge()': "
            "merge() takes at least 1 argument(s), not 0",
        ),
    ],
)
def test_check_filters_property_messages(prop: str, expected: str) -> None:
    filters = {"property": prop, "operator": "==", "value": 1}
    assert check_filters(filters) == [(("property",), expected)]


def test_iter_conditions_and_node_ids() -> None:
    inner = {"property": "nodes.3.status", "operator": "==", "value": "success"}
    bad = {"property": "node.5.x", "operator": "==", "value": 1}
    filters = {"and": [TRUE, {"or": [inner, bad, "junk", {}]}]}
    assert list(iter_conditions(filters)) == [
        (("and", 0), TRUE),
        (("and", 1, "or", 0), inner),
        (("and", 1, "or", 1), bad),
    ]
    assert list(iter_conditions(TRUE)) == [((), TRUE)]
    assert filter_node_ids(filters) == {"2", "3"}


# --- templates ------------------------------------------------------------------------


def test_a_single_template_keeps_the_type() -> None:
    assert render("{{ 2.fail_hosts[].id }}", CONTEXT) == ["h1"]
    assert render("{{2.fail_hosts_count}}", CONTEXT) == 1
    assert render("  {{ 2.fail_hosts.0 }}\n", CONTEXT) == FAIL_HOST
    assert render("{{ 2 }}", CONTEXT) == CONTEXT["2"]
    assert render("{{ 2.missing }}", CONTEXT) is None


def test_embedded_templates_interpolate() -> None:
    assert render("The following host redis connection fail: {{ 2.fail_hosts }}", CONTEXT) == (
        'The following host redis connection fail: [{"id":"h1","ip":"10.0.0.1","name":"redis-1"}]'
    )
    assert render("{{ 2.result }}, {{ 2.fail_hosts_count }} host(s)", CONTEXT) == "Good, 1 host(s)"
    assert render("[{{ 2.missing }}]", CONTEXT) == "[]"
    assert render("ok={{ 2.fail_hosts_count == `1` }}", CONTEXT) == "ok=true"
    context = {"3": {"name": "Zoë", "n": 2.5}}
    assert render("{{ 3 }}!", context) == '{"name":"Zoë","n":2.5}!'


def test_render_recurses_and_passes_other_values() -> None:
    value = {"ids": ["{{ 2.fail_hosts[].id }}", "x"], "{{ 2.result }}": "{{ 2.result }}"}
    assert render(value, CONTEXT) == {"ids": [["h1"], "x"], "{{ 2.result }}": "Good"}
    for literal in (True, 3, 2.5, None, "redis:unreachable", '{"a": {"b": 1}}', "a }} b"):
        assert render(literal, CONTEXT) == literal


def test_rendered_values_are_copies() -> None:
    rendered = render("{{ 2.fail_hosts }}", CONTEXT)
    rendered[0]["id"] = "changed"
    rendered.append("more")
    assert CONTEXT["2"]["fail_hosts"] == [FAIL_HOST]
    assert FAIL_HOST["id"] == "h1"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "{{ 7.fail_hosts }}",
            "template '{{ 7.fail_hosts }}' refers to node '7', which has no outputs here "
            "(nodes with outputs: 0, 2)",
        ),
        (
            "{{ 2.fail_hosts[ }}",
            "template '{{ 2.fail_hosts[ }}': invalid JMESPath expression 'fail_hosts[': "
            "it ends too early",
        ),
        (
            "hosts: {{ 2.length(fail_hosts_count) }}",
            "template '{{ 2.length(fail_hosts_count) }}': cannot evaluate "
            "'length(fail_hosts_count)': In function length(), invalid type for value: 1, "
            "expected one of: ['string', 'array', 'object'], received: \"number\"",
        ),
        ("{{ 2.x", "'{{ 2.x' opens a template but never closes it; end it with '}}'"),
    ],
)
def test_render_errors(template: str, expected: str) -> None:
    with pytest.raises(ExpressionError) as excinfo:
        render(template, CONTEXT)
    assert message(excinfo) == expected


def test_references() -> None:
    value = {
        "a": "{{ 2.fail_hosts[].id }} and {{3}}",
        "b": ["{{ 4[0] }}", 5, "{{ 2.fail_hosts.0.ip }}", "{{ broken", "{{ }}"],
    }
    assert references(value) == [
        ("2", "fail_hosts[].id"),
        ("3", ""),
        ("4", "[0]"),
        ("2", "fail_hosts.0.ip"),
    ]
    assert references("no templates {here}") == []
    assert references(True) == []


def test_check_template_messages() -> None:
    assert check_template(["{{ 2.fail_hosts[].id }}", "{{2}}", '{"a": {"b": 1}}', 3]) == []
    value = [
        "{{ }}",
        "{{ .fail_hosts }}",
        "{{ 2.fail_hosts[ }}",
        "tail {{ 2.x",
        "{{ nodes.2.x }}",
        "{{ 2.foo(@) }}",
        "{{ 2 x }}",
        {"deep": "{{ 2. }}"},
        "{{ a {{ 2.x }}",
    ]
    assert check_template(value) == [
        "template '{{ }}' has no node id; write '{{ <nodeId>.<path> }}'",
        "template '{{ .fail_hosts }}' has no node id; write '{{ <nodeId>.<path> }}'",
        "template '{{ 2.fail_hosts[ }}': invalid JMESPath expression 'fail_hosts[': "
        "it ends too early",
        "'{{ 2.x' opens a template but never closes it; end it with '}}'",
        "template '{{ nodes.2.x }}': write '{{ <nodeId>.<path> }}' without 'nodes.'",
        "template '{{ 2.foo(@) }}': invalid JMESPath expression 'foo(@)': "
        "unknown function foo(); did you mean 'floor'?",
        "template '{{ 2 x }}': expected '.' or '[' after the node id '2'",
        "template '{{ 2. }}': invalid JMESPath expression '': it is empty",
        "template '{{ a {{ 2.x }}' contains '{{'; close each template with '}}'",
    ]


# --- coerce ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_name", "expected"),
    [
        ("x", None, "x"),
        ("1", "", "1"),
        (None, "integer", None),
        ("redis:unreachable", "string", "redis:unreachable"),
        (True, "string", "true"),
        (3, "string", "3"),
        (2.5, "string", "2.5"),
        (["h1", "h2"], "string", '["h1","h2"]'),
        ({"a": "é"}, "string", '{"a":"é"}'),
        ("3", "integer", 3),
        (" -3 ", "integer", -3),
        ("3.0", "integer", 3),
        ("1e3", "integer", 1000),
        (4.0, "integer", 4),
        (True, "integer", 1),
        ("3", "number", 3),
        ("2.5", "number", 2.5),
        ("3.0", "number", 3.0),
        (False, "number", 0),
        (7, "number", 7),
        (True, "boolean", True),
        ("true", "boolean", True),
        ("False", "boolean", False),
        (" YES ", "boolean", True),
        ("no", "boolean", False),
        ("1", "boolean", True),
        ("0", "boolean", False),
        (1, "boolean", True),
        (0, "boolean", False),
        (["h1"], "array", ["h1"]),
        ('["h1", 2]', "array", ["h1", 2]),
        ("h1", "array", ["h1"]),
        (5, "array", [5]),
        ({"id": "h1"}, "array", [{"id": "h1"}]),
        ({"a": 1}, "object", {"a": 1}),
        ('{"a": [1]}', "object", {"a": [1]}),
    ],
)
def test_coerce(value: Any, type_name: str | None, expected: Any) -> None:
    result = coerce(value, type_name)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "type_name", "expected"),
    [
        ("abc", "integer", "cannot convert 'abc' to integer: it is not a number"),
        ("2.5", "integer", "cannot convert '2.5' to integer: it has a fraction"),
        ("inf", "number", "cannot convert 'inf' to number: it is not a number"),
        ([1], "number", "cannot convert [1] to number: it is not a number"),
        ("true", "integer", "cannot convert 'true' to integer: it is not a number"),
        ("maybe", "boolean", "cannot convert 'maybe' to boolean: use true/false, yes/no or 1/0"),
        (2, "boolean", "cannot convert 2 to boolean: use true/false, yes/no or 1/0"),
        (
            "[1,",
            "array",
            "cannot convert '[1,' to array: invalid JSON (Expecting value at column 4)",
        ),
        (
            "x",
            "object",
            "cannot convert 'x' to object: it is neither an object nor a JSON object string",
        ),
        (
            "{bad",
            "object",
            "cannot convert '{bad' to object: invalid JSON "
            "(Expecting property name enclosed in double quotes at column 2)",
        ),
        (
            "[1]",
            "object",
            "cannot convert '[1]' to object: it is neither an object nor a JSON object string",
        ),
        ("strng", "strng", "unknown type 'strng'; did you mean 'string'?"),
        (
            None,
            "float",
            "unknown type 'float'; use one of: string, integer, number, boolean, array, object",
        ),
    ],
)
def test_coerce_failures(value: Any, type_name: str, expected: str) -> None:
    with pytest.raises(ExpressionError) as excinfo:
        coerce(value, type_name)
    assert message(excinfo) == expected


def test_coerce_a_json_array_that_is_not_an_array() -> None:
    with pytest.raises(ExpressionError) as excinfo:
        coerce('[1] "x"', "array")
    assert message(excinfo) == (
        "cannot convert '[1] \"x\"' to array: invalid JSON (Extra data at column 5)"
    )


# --- set_path / get_path --------------------------------------------------------------


def test_set_path_builds_lists_and_objects() -> None:
    inputs: dict[str, Any] = {"name": "redis:unreachable"}
    set_path(inputs, "bot_infos.0", "chatbot-1")
    set_path(inputs, "a.b", 1)
    set_path(inputs, "a.c", 2)
    set_path(inputs, "rows.2.k", True)
    set_path(inputs, "bot_infos.1", "chatbot-2")
    set_path(inputs, "name", "tag")
    assert inputs == {
        "name": "tag",
        "bot_infos": ["chatbot-1", "chatbot-2"],
        "a": {"b": 1, "c": 2},
        "rows": [None, None, {"k": True}],
    }


def test_set_path_uses_digit_keys_in_existing_objects() -> None:
    inputs: dict[str, Any] = {"codes": {"1": "x"}}
    set_path(inputs, "codes.0", "y")
    assert inputs == {"codes": {"1": "x", "0": "y"}}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("name.first", "cannot set 'name.first': 'name' is a string, which has no item 'first'"),
        ("ids.x", "cannot set 'ids.x': 'ids' is a list, which has no item 'x'"),
        ("ids.-1", "cannot set 'ids.-1': 'ids' is a list, which has no item '-1'"),
        ("ids.20000", "cannot set 'ids.20000': index 20000 is above 10000"),
        ("a..b", "property path 'a..b' has an empty segment"),
        ("", "property path '' has an empty segment"),
    ],
)
def test_set_path_failures(path: str, expected: str) -> None:
    inputs: dict[str, Any] = {"name": "tag", "ids": []}
    with pytest.raises(ExpressionError) as excinfo:
        set_path(inputs, path, 1)
    assert message(excinfo) == expected
    assert inputs == {"name": "tag", "ids": []}


DATA: dict[Any, Any] = {
    "4-5": {"bot_infos.0": {"type": "string", "value": "chatbot"}},
    "hosts": [{"id": "h1"}, None],
    "by_code": {0: "zero"},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("hosts.0.id", "h1"),
        ("hosts.1", None),
        ("by_code.0", "zero"),
        ("4-5", DATA["4-5"]),
        ("", DATA),
    ],
)
def test_get_path(path: str, expected: Any) -> None:
    assert get_path(DATA, path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("4-6", "cannot find '4-6': the top level has no key '4-6' (keys: 4-5, by_code, hosts)"),
        ("hosts.2", "cannot find 'hosts.2': 'hosts' has 2 item(s), no item 2"),
        ("hosts.first", "cannot find 'hosts.first': 'hosts' is a list, which has no item 'first'"),
        ("hosts.1.id", "cannot find 'hosts.1.id': 'hosts.1' is null, which has no item 'id'"),
        (
            "hosts.0.id.x",
            "cannot find 'hosts.0.id.x': 'hosts.0.id' is a string, which has no item 'x'",
        ),
        ("a..b", "property path 'a..b' has an empty segment"),
    ],
)
def test_get_path_failures(path: str, expected: str) -> None:
    with pytest.raises(ExpressionError) as excinfo:
        get_path(DATA, path)
    assert message(excinfo) == expected


def test_set_path_then_get_path_round_trip() -> None:
    inputs: dict[str, Any] = {}
    for path, value in [("bot_infos.0", "c1"), ("params.service.name", "hosts"), ("n", 0)]:
        set_path(inputs, path, value)
        assert get_path(inputs, path) == value

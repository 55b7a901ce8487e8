"""Cross-checks of a schema-valid graph.yml against scripts, paras and data.yml."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from trek_tasks.files import Document, PathKey, shown
from trek_tasks.graph import Edge, Node, Workflow
from trek_tasks.kinds import default_kind
from trek_tasks.names import reserved_problem
from trek_tasks.paratypes import resolve_field
from trek_tasks.project import Project
from trek_tasks.validate.para import Para, sub_field, value_problem
from trek_tasks.validate.schema import Report, did_you_mean, get_at, listed, with_article

_LEADING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


# --- the workflow -------------------------------------------------------------------


class InputSpec(NamedTuple):
    """An input field a value is bound to, and its name for messages."""

    field: Mapping[str, Any]
    what: str


def graph_subject(data: Any, path: PathKey) -> tuple[str, int]:
    if len(path) < 3 or path[0] != "graph" or path[1] not in ("nodes", "edges"):
        return "", 0
    if not isinstance(path[2], int):
        return "", 0
    item = get_at(data, path[:3])
    if path[1] == "nodes":
        node_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(node_id, (str, int)) and not isinstance(node_id, bool):
            return f"node {shown(node_id, quoted=False)}", 3
        return f"item {path[2] + 1} of 'nodes'", 3
    if isinstance(item, dict):
        ends = (shown(item.get(end), quoted=False) for end in ("source", "target"))
        label = "edge {}->{}".format(*ends)
    else:
        label = f"item {path[2] + 1} of 'edges'"
    if len(path) >= 6 and path[3:5] == ("metadata", "binding") and isinstance(path[5], int):
        binding = get_at(data, path[:6])
        prop = binding.get("property") if isinstance(binding, dict) else None
        name = shown(prop) if isinstance(prop, str) else str(path[5] + 1)
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
                            f"unknown key {shown(key)} in a condition; "
                            "a condition has property, operator and value"
                        ),
                    )
        return
    for key in node:
        if key not in ("and", "or", "property", "operator"):
            yield path + (key,), f"unknown key {shown(key)} in an '{group}' group"
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
    if zone not in zone_names():
        hint = did_you_mean(zone, zone_names())
        return f"unknown timezone {shown(zone)}{hint or '; use an IANA name such as Asia/Taipei'}"
    return ""


@functools.cache
def zone_names() -> frozenset[str]:
    """The IANA zone names, from the ``tzdata`` package (a dependency) rather than the
    host's zone files, so a project validates the same on every machine."""
    from importlib.resources import files

    return frozenset(files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())


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
class GraphChecks:
    """Cross-checks of a schema-valid graph against the scripts, paras and data.yml."""

    report: Report
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
        """``Workflow.upstream``, each node's made once from its sources' (a node's upstream
        is its sources and theirs): a search per node would be quadratic in a chain."""
        known = self._upstream
        stack, entered = [node_id], set()
        while stack:
            current = stack[-1]
            if current in known:
                stack.pop()
                continue
            sources = [edge.source for edge in self.workflow.incoming(current)]
            pending = [source for source in sources if source not in known]
            if pending and current not in entered:
                entered.add(current)
                stack.extend(pending)
                continue
            if pending:  # a source is still being made: they are on a cycle
                known[current] = self.workflow.upstream(current)
            else:
                known[current] = set(sources).union(*(known[source] for source in sources))
            stack.pop()
        return known[node_id]

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
        meta = get_at(self.doc.data, ("graph", "nodes", node.index, "metadata"))
        if node.type == "action" and not node.script_id:
            self.report.error(
                self.node_at(node, "metadata"),
                f"node {node.id} is an action and needs 'script: {{id: <script id>}}'",
            )
        if node.type != "action" and "script" in meta:
            self.report.error(
                self.node_at(node, "metadata", "script", key=True),
                f"node {node.id} is {with_article(node.type)} and runs no script; remove 'script'",
            )
        if node.type != "trigger" and "sources" in meta:
            self.report.error(
                self.node_at(node, "metadata", "sources", key=True),
                f"node {node.id} is {with_article(node.type)}; only the trigger has 'sources'",
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
        where = self.node_at(node, "metadata", "script", "id")
        reserved = reserved_problem(script_id)
        if reserved:
            self.report.error(where, f"node {node.id}: {reserved}")
            return
        if script_id in project.scripts:
            return
        if script_id in project.packages:
            self.report.error(
                where,
                f"node {node.id}: script {shown(script_id)} is not installed; run `trek install`",
            )
            return
        close = difflib.get_close_matches(script_id, [*project.scripts, *project.packages], n=1)
        hint = f" (did you mean {shown(close[0])}?)" if close else ""
        bare = shown(script_id, quoted=False)
        self.report.error(
            where,
            f"node {node.id}: unknown script {shown(script_id)}{hint}; "
            f"create it with `trek create{default_kind().name} {bare}` "
            f"or install it with `trek install {bare}`",
        )

    # edges and the shape of the graph

    def check_edges(self) -> list[Edge]:
        """Report bad edges; return the ones joining existing nodes (each pair once)."""
        good: list[Edge] = []
        seen: dict[tuple[str, str], Edge] = {}
        known = listed(n.id for n in self.workflow.nodes)
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
        targets: dict[str, list[str]] = {}
        for edge in edges:
            targets.setdefault(edge.source, []).append(edge.target)
        reached, stack = {self.trigger.id}, [self.trigger.id]
        while stack:
            for target in targets.get(stack.pop(), ()):
                if target not in reached:
                    reached.add(target)
                    stack.append(target)
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
                        loop = " -> ".join([cycle[0].source] + [e.target for e in cycle])
                        self.report.error(
                            self.edge_at(edge, "target"),
                            f"edges {loop} form a cycle; a workflow may not loop, "
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
            return f"node {shown(node_id)} does not exist", True
        if node_id not in allowed:
            usable = ", ".join(sorted(allowed, key=int)) or "none"
            return f"node {node_id} has not run {when} (usable: {usable})", True
        para = self.para_of(self.workflow.node(node_id))
        name = _LEADING_NAME.match(expression)
        if para is None or not para.outputs or name is None or name.group() in para.outputs:
            return "", False
        hint = did_you_mean(name.group(), para.outputs) or (
            f"; its outputs: {listed(para.outputs)}"
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
        problem = value_problem(converted, spec.field, spec.what)
        if problem:
            self.report.error(where, f"{label}: {problem}")

    def check_property(self, label: str, where: str, prop: str, target: Node) -> InputSpec | None:
        """The input field a property path sets (None when there is none to check)."""
        para = self.para_of(target)
        if para is None:
            return None
        head = prop.split(".")[0]
        if head not in para.inputs:
            hint = did_you_mean(head, para.inputs) or (
                f"; its inputs: {listed(para.inputs)}" if para.inputs else "; it has no inputs"
            )
            self.report.error(
                where, f"{label} binds {shown(head)}, but {para.id} has no such input{hint}"
            )
            return None
        found, problem = sub_field(para.inputs[head], prop)
        if problem:
            self.report.error(where, f"{label} binds {shown(prop)}, but {problem}")
            return None
        return InputSpec(found, f"{para.id} input {shown(prop)}")

    def check_bindings(self, edge: Edge) -> None:
        target = self.workflow.node(edge.target)
        if target is None:
            return
        label, bound = f"edge {edge.source}->{edge.target}", set()
        for j, binding in enumerate(edge.binding):
            prop, path = binding["property"], ("metadata", "binding", j)
            where = self.edge_at(edge, *path, "property")
            if prop in bound:
                self.report.error(where, f"{label} binds {shown(prop)} twice")
            bound.add(prop)
            spec = self.check_property(label, where, prop, target)
            value_at = self.edge_at(edge, *path, "value")
            self.check_value(f"{label} binding {shown(prop)}", value_at, binding, target, spec)

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
                    message = f"{label}: filter property {shown(prop)}: {problem}"
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
                    f"node {node.id} ({para.id}): required input {shown(name)} is not bound; "
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
                hint = did_you_mean(key, edges) or f"; edges: {listed(edges) or 'none'}"
                self.report.error(
                    doc.where((key,), key=True),
                    f"edge {shown(key, quoted=False)} does not exist in {self.doc.shown}{hint}",
                )
                continue
            target = self.workflow.node(edge.target)
            if target is None:
                continue
            for prop, entry in entries.items():
                where = doc.where((key, prop), key=True)
                spec = self.check_property(f"edge {edge.key}", where, str(prop), target)
                label = f"edge {edge.key} property {shown(prop)}"
                self.check_value(label, doc.where((key, prop, "value")), entry, target, spec)

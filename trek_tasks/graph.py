"""The workflow model (nodes, edges) and its pictures (DOT text, PNG/SVG via Graphviz)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from trek_tasks.errors import StepFailed
from trek_tasks.files import SHOWN_MAX, display, shown, write_atomic

SHAPES = {"trigger": "oval", "terminator": "oval", "action": "box", "selector": "diamond"}
# A node's fill by its status in a run: ``trek graph --status`` and the portal's page
# (its live updates too: ``portal.model.status_css``).
STATUS_COLOURS = {
    "done": "#99ee99",
    "failed": "#ff8888",
    "skipped": "#dddddd",
    "reused": "#99ccff",
    "running": "#ffdd66",
    "interrupted": "#ffaa66",
    "not run": "#ffffff",
}
LEGEND = ("done", "failed", "skipped", "reused", "not run")  # always in the legend
IMAGE_FORMATS = ("png", "svg")
DOT_TIMEOUT = 30.0  # seconds Graphviz may take for all images (or the layout) of one graph
_BARE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|-?(\.[0-9]+|[0-9]+(\.[0-9]*)?)")
_DOT_KEYWORDS = {"node", "edge", "graph", "digraph", "subgraph", "strict"}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _fields(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    title: str = ""
    script_id: str = ""
    index: int = 0

    @property
    def label(self) -> str:
        return self.script_id if self.type == "action" and self.script_id else self.type


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    binding: tuple[dict[str, Any], ...] = ()
    filters: dict[str, Any] | None = None
    index: int = 0

    @property
    def key(self) -> str:
        """The ``"<source>-<target>"`` name used in labels and inputs/data.yml."""
        return f"{self.source}-{self.target}"


@dataclass
class _Index:
    nodes: dict[str, Node] = field(default_factory=dict)
    incoming: dict[str, list[Edge]] = field(default_factory=dict)
    outgoing: dict[str, list[Edge]] = field(default_factory=dict)


@dataclass(frozen=True)
class Workflow:
    """A tolerant reading of ``graph.yml``: odd shapes become empty values, and
    ``validate`` is the place that says what is wrong with them."""

    template_id: str = ""
    version: str = ""
    title: str = ""
    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()
    raw: Any = field(default=None, compare=False)

    @classmethod
    def from_data(cls, raw: Any) -> Workflow:
        graph = raw.get("graph") if isinstance(raw, dict) else None
        if not isinstance(graph, dict):
            return cls(raw=raw)
        meta = _fields(graph.get("metadata"))
        nodes = []
        for i, item in enumerate(_items(graph.get("nodes"))):
            if not isinstance(item, dict):
                continue
            nmeta = _fields(item.get("metadata"))
            script = _fields(nmeta.get("script"))
            nodes.append(
                Node(
                    id=_text(item.get("id")),
                    type=_text(nmeta.get("type")),
                    title=_text(nmeta.get("title")),
                    script_id=_text(script.get("id")),
                    index=i,
                )
            )
        edges = []
        for i, item in enumerate(_items(graph.get("edges"))):
            if not isinstance(item, dict):
                continue
            emeta = _fields(item.get("metadata"))
            binding = _items(emeta.get("binding"))
            filters = emeta.get("filters") if isinstance(emeta.get("filters"), dict) else None
            edges.append(
                Edge(
                    source=_text(item.get("source")),
                    target=_text(item.get("target")),
                    binding=tuple(b for b in binding if isinstance(b, dict)),
                    filters=filters,
                    index=i,
                )
            )
        return cls(
            template_id=_text(meta.get("templateId")),
            version=_text(meta.get("version")),
            title=_text(meta.get("title")),
            nodes=tuple(nodes),
            edges=tuple(edges),
            raw=raw,
        )

    @functools.cached_property
    def _index(self) -> _Index:
        """Nodes by id (the first of a repeated id) and edges by target and by source, in
        file order: a lookup per node must not scan the graph (the engine and ``validate``
        make several per node)."""
        index = _Index()
        for node in self.nodes:
            index.nodes.setdefault(node.id, node)
        for edge in self.edges:
            index.incoming.setdefault(edge.target, []).append(edge)
            index.outgoing.setdefault(edge.source, []).append(edge)
        return index

    def node(self, node_id: str) -> Node | None:
        return self._index.nodes.get(node_id)

    def incoming(self, node_id: str) -> list[Edge]:
        return list(self._index.incoming.get(node_id, ()))

    def outgoing(self, node_id: str) -> list[Edge]:
        return list(self._index.outgoing.get(node_id, ()))

    def upstream(self, node_id: str) -> set[str]:
        """Every node with a path to ``node_id`` (not including itself unless on a cycle)."""
        seen: set[str] = set()
        stack = [node_id]
        while stack:
            for edge in self.incoming(stack.pop()):
                if edge.source not in seen:
                    seen.add(edge.source)
                    stack.append(edge.source)
        return seen


def quoted(value: str) -> str:
    """A double-quoted DOT string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote(value: str) -> str:
    """A DOT id: bare when DOT allows it, quoted otherwise."""
    if _BARE_ID.fullmatch(value) and value.lower() not in _DOT_KEYWORDS:
        return value
    return quoted(value)


def status_colour(status: str) -> str:
    """The fill of a node of ``status`` (an unknown status: as not run)."""
    return STATUS_COLOURS.get(status, STATUS_COLOURS["not run"])


def _legend(statuses: Mapping[str, str], run_id: str) -> str:
    """The graph label saying what each fill means: a row of coloured cells (no node, so
    the picture's nodes stay the graph's own)."""
    shown_statuses = [*LEGEND, *(s for s in dict.fromkeys(statuses.values()) if s not in LEGEND)]
    cells = "".join(
        f'<td bgcolor="{status_colour(s)}" border="1">{escape(s)}</td>' for s in shown_statuses
    )
    title = f"<td>run {escape(run_id)}:</td>" if run_id else ""
    return f'<<table border="0" cellspacing="4"><tr>{title}{cells}</tr></table>>'


def to_dot(
    workflow: Workflow,
    name: str,
    statuses: Mapping[str, str] | None = None,
    run_id: str = "",
) -> str:
    """DOT text in Trek's form: labels are script ids, shapes by node type. With
    ``statuses`` (node id -> its status in run ``run_id``; a node missing: not run) each
    node is filled by its status and a legend under the graph says what the fills mean."""
    lines = [f"digraph {quote(name)} {{", '\tdpi=150 rankdir=LR size="8,5"']
    if statuses is not None:
        lines.append(f"\tlabel={_legend(statuses, run_id)} labelloc=b")
    for node in workflow.nodes:
        shape = SHAPES.get(node.type, "box")
        label = node.label  # a script id dot cannot take (16 KB, a NUL) is shown cut
        label = label if label.isprintable() and len(label) <= SHOWN_MAX else shown(label)
        fill = ""
        if statuses is not None:
            fill = f' style=filled fillcolor="{status_colour(statuses.get(node.id, "not run"))}"'
        lines.append(f"\t{quote(node.id)} [label={quote(label)} shape={shape}{fill}]")
    for edge in workflow.edges:
        lines.append(f"\t{quote(edge.source)} -> {quote(edge.target)} [label={quoted(edge.key)}]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def image_paths(dot_path: Path) -> list[Path]:
    """The images ``render_images`` will write next to ``dot_path``: none when Graphviz's
    ``dot`` program is not on the PATH (then only the DOT file is written)."""
    import shutil

    if shutil.which("dot") is None:
        return []
    return [dot_path.with_suffix(f".{fmt}") for fmt in IMAGE_FORMATS]


def _run_dot(source: bytes, fmt: str, timeout: float, options: tuple[str, ...] = ()) -> bytes:
    """``dot -T<fmt> OPTIONS`` over ``source``. ``FileNotFoundError`` when Graphviz is not
    installed; ``subprocess.TimeoutExpired`` when dot ran past ``timeout`` (it is killed)."""
    import shutil
    import subprocess

    program = shutil.which("dot")
    if program is None:
        raise FileNotFoundError("dot")
    done = subprocess.run(
        [program, f"-T{fmt}", *options],
        input=source,
        capture_output=True,
        timeout=max(timeout, 0.01),
    )
    if done.returncode != 0:
        raise StepFailed(f"dot failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


# An SVG is drawn at 72 dpi: it is in points, and Graphviz (2.43) crops one drawn at the
# DOT's 150 dpi (the drawing is scaled up inside a view box of the 72 dpi size).
FORMAT_OPTIONS: dict[str, tuple[str, ...]] = {"svg": ("-Gdpi=72",)}


def render_images(dot_path: Path, formats: tuple[str, ...] = IMAGE_FORMATS) -> list[Path]:
    """Render ``dot_path`` next to itself with Graphviz's ``dot`` program, all images
    within ``DOT_TIMEOUT`` seconds; the images are written only when all were made."""
    import subprocess
    import time

    source = dot_path.read_bytes()
    deadline = time.monotonic() + DOT_TIMEOUT
    images = {}
    try:
        for fmt in formats:
            images[dot_path.with_suffix(f".{fmt}")] = _run_dot(
                source, fmt, deadline - time.monotonic(), FORMAT_OPTIONS.get(fmt, ())
            )
    except FileNotFoundError:
        raise StepFailed(
            "Graphviz's `dot` program is not installed, so no image was made "
            "(the DOT file was written); install Graphviz (e.g. `apt-get install graphviz`)",
            display(dot_path),
        ) from None
    except subprocess.TimeoutExpired:
        raise StepFailed(
            f"dot did not finish drawing the graph within {DOT_TIMEOUT:g} s, so no image was "
            f"made (the DOT file was written); draw it without a limit with "
            f"`dot -Tsvg -O {display(dot_path)}`",
            display(dot_path),
        ) from None
    for path, data in images.items():
        write_atomic(path, data)
    return list(images)


def render_svg(
    workflow: Workflow, name: str, statuses: Mapping[str, str] | None = None, run_id: str = ""
) -> str:
    """The SVG Graphviz draws from ``to_dot``'s DOT (the DOT ``trek graph`` writes; with
    ``statuses``, the one ``trek graph --status`` writes)."""
    import subprocess

    source = to_dot(workflow, name, statuses, run_id).encode()
    try:
        return _run_dot(source, "svg", DOT_TIMEOUT, FORMAT_OPTIONS["svg"]).decode()
    except FileNotFoundError:
        raise StepFailed(
            "Graphviz's `dot` program is not installed, so the graph cannot be drawn; "
            "install Graphviz (e.g. `apt-get install graphviz`)"
        ) from None
    except subprocess.TimeoutExpired:
        raise StepFailed(f"dot did not finish drawing the graph within {DOT_TIMEOUT:g} s") from None


def layout_positions(workflow: Workflow, name: str) -> dict[str, dict[str, float]]:
    """Node positions (points, origin top-left) from a Graphviz ``dot`` layout."""
    import json
    import subprocess

    try:
        data = json.loads(_run_dot(to_dot(workflow, name).encode(), "json", DOT_TIMEOUT))
    except FileNotFoundError:
        raise StepFailed(
            "--auto-pos needs Graphviz's `dot` program; install Graphviz "
            "(e.g. `apt-get install graphviz`)"
        ) from None
    except subprocess.TimeoutExpired:
        raise StepFailed(
            f"--auto-pos: dot did not lay the graph out within {DOT_TIMEOUT:g} s; "
            "pack without --auto-pos"
        ) from None
    height = float(data["bb"].split(",")[3])
    positions = {}
    for obj in data.get("objects", []):
        if "pos" in obj:
            x, y = (float(v) for v in obj["pos"].split(","))
            positions[obj["name"]] = {"x": round(x, 1), "y": round(height - y, 1)}
    return positions

"""The workflow model (nodes, edges) and its pictures (DOT text, PNG/SVG via Graphviz)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trek_tasks.errors import StepFailed
from trek_tasks.files import SHOWN_MAX, display, shown, write_atomic

SHAPES = {"trigger": "oval", "terminator": "oval", "action": "box", "selector": "diamond"}
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

    def node(self, node_id: str) -> Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def incoming(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.target == node_id]

    def outgoing(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.source == node_id]

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


def to_dot(workflow: Workflow, name: str) -> str:
    """DOT text in Trek's form: labels are script ids, shapes by node type."""
    lines = [f"digraph {quote(name)} {{", '\tdpi=150 rankdir=LR size="8,5"']
    for node in workflow.nodes:
        shape = SHAPES.get(node.type, "box")
        label = node.label  # a script id dot cannot take (16 KB, a NUL) is shown cut
        label = label if label.isprintable() and len(label) <= SHOWN_MAX else shown(label)
        lines.append(f"\t{quote(node.id)} [label={quote(label)} shape={shape}]")
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


def _run_dot(source: bytes, fmt: str, timeout: float) -> bytes:
    """``dot -T<fmt>`` over ``source``. ``FileNotFoundError`` when Graphviz is not
    installed; ``subprocess.TimeoutExpired`` when dot ran past ``timeout`` (it is killed)."""
    import shutil
    import subprocess

    program = shutil.which("dot")
    if program is None:
        raise FileNotFoundError("dot")
    done = subprocess.run(
        [program, f"-T{fmt}"], input=source, capture_output=True, timeout=max(timeout, 0.01)
    )
    if done.returncode != 0:
        raise StepFailed(f"dot failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


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
                source, fmt, deadline - time.monotonic()
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

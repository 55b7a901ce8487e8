"""The workflow graph: DOT text in Trek's form, quoting, images, and a missing `dot`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, build_reference, require_tool

from trek_tasks.cli import main
from trek_tasks.graph import Workflow, layout_positions, quote, to_dot

REFERENCE_DOT = """\
digraph "host.detect.redis" {
\tdpi=150 rankdir=LR size="8,5"
\t0 [label=trigger shape=oval]
\t1 [label=terminator shape=oval]
\t2 [label=detectredis shape=box]
\t3 [label=blckssettags shape=box]
\t4 [label=selector shape=diamond]
\t5 [label=notification shape=box]
\t0 -> 2 [label="0-2"]
\t2 -> 3 [label="2-3"]
\t3 -> 4 [label="3-4"]
\t4 -> 5 [label="4-5"]
\t4 -> 1 [label="4-1"]
\t5 -> 1 [label="5-1"]
}
"""
MISSING_DOT = (
    "trek: error: .trek/graph.gv: Graphviz's `dot` program is not installed, so no image "
    "was made (the DOT file was written); install Graphviz (e.g. `apt-get install graphviz`)\n"
)


@pytest.fixture
def ref(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = build_reference(tmp_path / "host.detect.redis")
    monkeypatch.chdir(root)
    return root


def odd_workflow() -> Workflow:
    return Workflow.from_data(
        {
            "graph": {
                "nodes": [
                    {"id": 'a"b', "metadata": {"type": "trigger"}},
                    {"id": "node", "metadata": {"type": "action", "script": {"id": "x y"}}},
                    {"id": "1x", "metadata": {"type": "mystery"}},
                    {"id": "back\\slash", "metadata": {"type": "terminator"}},
                ],
                "edges": [
                    {"source": 'a"b', "target": "node"},
                    {"source": "node", "target": "1x"},
                    {"source": "1x", "target": "back\\slash"},
                ],
            }
        }
    )


def test_graph_show_prints_the_reference_dot_and_writes_images(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("dot")
    assert main(["graph", "--show"]) == 0
    out, err = capsys.readouterr()
    assert out == "Graph written: .trek/graph.gv (png, svg)\n" + REFERENCE_DOT
    assert err == ""
    assert main(["graph", "--show"]) == 0  # up to date: nothing redrawn, the DOT still shown
    assert capsys.readouterr().out == "graph is up to date: .trek/graph.gv\n" + REFERENCE_DOT
    state = ref / ".trek"
    assert (state / "graph.gv").read_text() == REFERENCE_DOT
    assert (state / "graph.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = (state / "graph.svg").read_text()
    assert "<svg" in svg and ">detectredis</text>" in svg and ">4&#45;5</text>" in svg
    # The whole drawing shows: the size is the view box's (drawn at the DOT's dpi, the
    # drawing was scaled up inside a view box of the smaller size, its right part cut off).
    width = re.search(r'<svg width="([\d.]+)pt"', svg)
    box = re.search(r'viewBox="[\d.]+ [\d.]+ ([\d.]+) ', svg)
    assert width and box and abs(float(width.group(1)) - float(box.group(1))) < 1


def test_graph_without_show_prints_only_the_summary(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("dot")
    assert main(["graph"]) == 0
    assert capsys.readouterr() == ("Graph written: .trek/graph.gv (png, svg)\n", "")
    assert main(["graph"]) == 0
    assert capsys.readouterr() == ("graph is up to date: .trek/graph.gv\n", "")


def test_graph_with_path_from_elsewhere(
    ref: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("dot")
    monkeypatch.chdir(ref.parent)
    assert main(["graph", "-p", ref.name]) == 0
    assert capsys.readouterr().out == (
        "Graph written: host.detect.redis/.trek/graph.gv (png, svg)\n"
    )
    assert (ref / ".trek" / "graph.gv").read_text() == REFERENCE_DOT


def test_missing_dot_still_writes_the_dot_file_and_says_what_is_needed(ref: Path) -> None:
    empty_bin = ref.parent / "empty-bin"
    empty_bin.mkdir()
    env = {**os.environ, "PATH": str(empty_bin), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "trek_tasks", "graph", "--show"],
        cwd=ref,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, REFERENCE_DOT, MISSING_DOT)
    assert (ref / ".trek" / "graph.gv").read_text() == REFERENCE_DOT
    assert not (ref / ".trek" / "graph.png").exists()
    assert not (ref / ".trek" / "graph.svg").exists()


def big_graph(root: Path, size: int = 300, extra: int = 79) -> None:
    """A valid graph.yml of ``size`` nodes in a chain plus ``extra`` forward edges: a
    second for validate, minutes for dot's layout."""
    import random

    import yaml

    chooser = random.Random(1)
    nodes = [
        {"id": "0", "metadata": {"type": "trigger", "title": "start"}},
        {"id": "1", "metadata": {"type": "terminator", "title": "end"}},
        *(
            {"id": str(i), "metadata": {"type": "selector", "title": f"s{i}"}}
            for i in range(2, size)
        ),
    ]
    chain = ["0", *(str(i) for i in range(2, size)), "1"]
    edges = [{"source": a, "target": b} for a, b in zip(chain, chain[1:], strict=False)]
    for _ in range(extra):
        a = chooser.randrange(2, size - 2)
        edges.append({"source": str(a), "target": str(chooser.randrange(a + 2, size))})
    path = root / "src" / "graph.yml"
    doc = yaml.safe_load(path.read_text())
    doc["graph"]["nodes"], doc["graph"]["edges"] = nodes, edges
    path.write_text(yaml.safe_dump(doc))


def test_dot_past_its_timeout_is_stopped_and_the_dot_file_kept(
    ref: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("dot")
    from trek_tasks import graph
    from trek_tasks.project import Project

    monkeypatch.setattr(graph, "DOT_TIMEOUT", 2.0)
    big_graph(ref)
    started = time.monotonic()
    assert main(["graph"]) == 1
    took = time.monotonic() - started
    assert capsys.readouterr() == (
        "",
        "trek: error: .trek/graph.gv: dot did not finish drawing the graph within 2 s, so no "
        "image was made (the DOT file was written); draw it without a limit with "
        "`dot -Tsvg -O .trek/graph.gv`\n",
    )
    assert took < 8
    project = Project.load(ref)
    assert (ref / ".trek" / "graph.gv").read_text() == to_dot(project.workflow, project.name)
    assert not (ref / ".trek" / "graph.png").exists()
    assert not (ref / ".trek" / "graph.svg").exists()


def test_bad_graph_file_names_the_line(ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ref / "src" / "graph.yml").write_text("graph:\n  nodes: [\n")
    assert main(["graph"]) == 2
    assert capsys.readouterr() == (
        "",
        "trek: error: src/graph.yml:3:1: invalid YAML: did not find expected node content\n",
    )
    assert not (ref / ".trek" / "graph.gv").exists()


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0", "0"),
        ("12", "12"),
        ("-1.5", "-1.5"),
        ("detectredis", "detectredis"),
        ("_x9", "_x9"),
        ("1x", '"1x"'),
        ("a b", '"a b"'),
        ("host.detect.redis", '"host.detect.redis"'),
        ('a"b', '"a\\"b"'),
        ("back\\slash", '"back\\\\slash"'),
        ("node", '"node"'),
        ("Graph", '"Graph"'),
        ("", '""'),
        ("café", '"café"'),
    ],
)
def test_quote(value: str, shown: str) -> None:
    assert quote(value) == shown


def test_odd_ids_are_quoted_everywhere() -> None:
    assert to_dot(odd_workflow(), "demo") == (
        "digraph demo {\n"
        '\tdpi=150 rankdir=LR size="8,5"\n'
        '\t"a\\"b" [label=trigger shape=oval]\n'
        '\t"node" [label="x y" shape=box]\n'
        '\t"1x" [label=mystery shape=box]\n'
        '\t"back\\\\slash" [label=terminator shape=oval]\n'
        '\t"a\\"b" -> "node" [label="a\\"b-node"]\n'
        '\t"node" -> "1x" [label="node-1x"]\n'
        '\t"1x" -> "back\\\\slash" [label="1x-back\\\\slash"]\n'
        "}\n"
    )


def test_graphviz_reads_odd_ids_back_unchanged(tmp_path: Path) -> None:
    dot = require_tool("dot")
    proc = subprocess.run(
        [dot, "-Tplain"],
        input=to_dot(odd_workflow(), "my graph"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = proc.stdout.splitlines()
    nodes = {line.split()[1] for line in lines if line.startswith("node ")}
    assert nodes == {'"a\\"b"', '"node"', '"1x"', '"back\\\\slash"'}
    edge_labels = [line.split()[-5] for line in lines if line.startswith("edge ")]
    assert edge_labels == ['"a\\"b-node"', '"node-1x"', '"1x-back\\\\slash"']


def test_tolerant_reading_of_odd_graph_documents() -> None:
    assert (
        to_dot(Workflow.from_data(None), "x") == 'digraph x {\n\tdpi=150 rankdir=LR size="8,5"\n}\n'
    )
    odd = Workflow.from_data(
        {"graph": {"nodes": ["text", {"id": 7}], "edges": [3, {"source": 7, "target": None}]}}
    )
    assert [(n.id, n.type, n.label) for n in odd.nodes] == [("7", "", "")]
    assert [e.key for e in odd.edges] == ["7-"]


def test_layout_positions_cover_every_node_left_to_right(ref: Path) -> None:
    require_tool("dot")
    from trek_tasks.project import Project

    project = Project.load(ref)
    positions = layout_positions(project.workflow, project.name)
    assert set(positions) == {"0", "1", "2", "3", "4", "5"}
    xs = [positions[n]["x"] for n in ("0", "2", "3", "4", "5", "1")]
    assert xs == sorted(xs) and len(set(xs)) == 6
    assert all(p["y"] >= 0 for p in positions.values())


# --- trek graph --status ------------------------------------------------------------

STATUS_DOT = """\
digraph "host.detect.redis" {
\tdpi=150 rankdir=LR size="8,5"
\tlabel=<<table border="0" cellspacing="4"><tr><td>run RUN:</td>\
<td bgcolor="#99ee99" border="1">done</td><td bgcolor="#ff8888" border="1">failed</td>\
<td bgcolor="#dddddd" border="1">skipped</td><td bgcolor="#99ccff" border="1">reused</td>\
<td bgcolor="#ffffff" border="1">not run</td>EXTRA</tr></table>> labelloc=b
\t0 [label=trigger shape=oval style=filled fillcolor="#99ee99"]
\t1 [label=terminator shape=oval style=filled fillcolor="F1"]
\t2 [label=detectredis shape=box style=filled fillcolor="F2"]
\t3 [label=blckssettags shape=box style=filled fillcolor="F3"]
\t4 [label=selector shape=diamond style=filled fillcolor="F4"]
\t5 [label=notification shape=box style=filled fillcolor="F5"]
"""


def write_record(root: Path, run_id: str, statuses: dict[str, str], last: bool) -> None:
    """A run record as ``trek run`` saves it (the fields the picture reads)."""
    import json

    nodes = [{"id": node_id, "status": status} for node_id, status in statuses.items()]
    record = {"workflow": "host.detect.redis", "run_id": run_id, "status": "done", "nodes": nodes}
    runs = root / ".trek" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{run_id}.json").write_text(json.dumps(record))
    if last:
        (runs / "last.json").write_text(json.dumps(record))


def status_dot(run_id: str, fills: list[str], extra: str = "") -> str:
    text = STATUS_DOT.replace("RUN", run_id).replace("EXTRA", extra)
    for n, fill in zip("12345", fills, strict=True):
        text = text.replace(f'"F{n}"', f'"{fill}"')
    return text + REFERENCE_DOT[REFERENCE_DOT.index("\t0 -> 2") :]


def test_graph_status_colours_nodes_by_the_last_or_a_given_run(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("dot")
    assert main(["graph"]) == 0
    older = {"0": "done", "2": "done", "3": "failed", "4": "not run", "5": "interrupted"}
    write_record(ref, "20260101-000000-aaaaaa", older, last=False)
    newer = {"0": "done", "2": "reused", "3": "done", "4": "done", "5": "skipped", "1": "done"}
    write_record(ref, "20260102-000000-bbbbbb", newer, last=True)
    capsys.readouterr()

    assert main(["graph", "--status", "--show"]) == 0
    out, err = capsys.readouterr()
    green, blue, grey = "#99ee99", "#99ccff", "#dddddd"
    assert out == "Graph written: .trek/graph-status.gv (png, svg)\n" + status_dot(
        "20260102-000000-bbbbbb", [green, blue, green, green, grey]
    )
    assert err == ""
    state = ref / ".trek"
    assert (state / "graph-status.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = (state / "graph-status.svg").read_text()
    reused = svg[svg.index("<title>2</title>") : svg.index("<title>3</title>")]
    assert 'fill="#99ccff"' in reused and ">detectredis</text>" in reused
    assert ">reused</text>" in svg  # the legend

    assert main(["graph", "--status", "20260101-000000-aaaaaa", "--show"]) == 0
    assert capsys.readouterr().out.split("\n", 1)[1] == status_dot(
        "20260101-000000-aaaaaa",
        ["#ffffff", green, "#ff8888", "#ffffff", "#ffaa66"],  # 1 is not in the record
        extra='<td bgcolor="#ffaa66" border="1">interrupted</td>',
    )
    # the plain picture is unchanged, and up to date
    assert main(["graph", "--show"]) == 0
    assert capsys.readouterr().out == "graph is up to date: .trek/graph.gv\n" + REFERENCE_DOT
    assert (state / "graph.gv").read_text() == REFERENCE_DOT


def test_graph_status_of_an_unknown_run_lists_the_known_ones(ref: Path) -> None:
    def trek(*args: str) -> tuple[int, str, str]:
        done = subprocess.run(
            [sys.executable, "-m", "trek_tasks", *args],
            cwd=ref,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.returncode, done.stdout, done.stderr

    assert trek("graph", "--status") == (
        2,
        "",
        "trek: error: no run 'last': no run is recorded yet; run `trek run` first\n",
    )
    for day in range(1, 13):
        write_record(ref, f"202601{day:02}-000000-aaaaaa", {"0": "done"}, last=day == 12)
    assert trek("graph", "--status", "20250101-nope") == (
        2,
        "",
        "trek: error: no run '20250101-nope'; known runs (newest first): last, "
        + ", ".join(f"202601{day:02}-000000-aaaaaa" for day in range(12, 2, -1))
        + " and 2 older\n",
    )
    assert trek("graph", "--status", "../../etc/passwd")[2] == (
        "trek: error: no run '../../etc/passwd'; known runs (newest first): last, "
        + ", ".join(f"202601{day:02}-000000-aaaaaa" for day in range(12, 2, -1))
        + " and 2 older\n"
    )
    assert not (ref / ".trek" / "graph-status.gv").exists()

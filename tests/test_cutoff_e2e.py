"""Early cutoff under ``trek run --reuse``, through the real CLI on a 3-script chain."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import trek_process

HANDLER = """from blcks import blcks

FAAS_METHOD_NAME = "{name}"


@blcks
def main(event, context):
    pass


@blcks.script(FAAS_METHOD_NAME)
def process(value=0):
    return {{"value": value + {step}}}
"""


def write_script(root: Path, name: str, para_extra: str = "") -> None:
    folder = root / "src" / "blcks" / name
    (folder / "handler").mkdir(parents=True)
    (folder / f"{name}.para").write_text(
        f"id: {name}\nschemaVersion: '0.2'\nname: {name}\ntitle: {name}\nversion: '0.1.0'\n"
        f"description: chain\nnamespace: chain\nassets: [SCRIPT]\n{para_extra}"
        "inputs:\n  value: {type: integer, title: value}\n"
        "outputs:\n  value: {type: integer, title: value}\n"
    )
    (folder / "handler" / "__init__.py").write_text("")
    (folder / "handler" / "requirements.txt").write_text("")
    (folder / "handler" / "handler.py").write_text(HANDLER.format(name=name, step=1))
    (folder / "openfaas.yml").write_text(
        f"provider: {{name: faas}}\nfunctions:\n  {name}:\n    lang: python3_blcks_flask\n"
        f"    handler: ./handler\n    image: localhost:5000/{name}:0.1.0\n"
    )


def chain_project(root: Path, last_para: str = "") -> Path:
    """trigger 0 -> 2 (s0) -> 3 (s1) -> 4 (s2) -> end 1; each adds to the value it gets."""
    (root / ".trek").mkdir(parents=True)
    (root / ".trek" / "config.json").write_text(json.dumps({"router_port": 0}) + "\n")
    (root / "manifest.json").write_text('{"entry": "src/graph.yml"}\n')
    (root / "packages.json").write_text('{"packages": {}}\n')
    (root / "inputs").mkdir()
    (root / "inputs" / "event.yml").write_text("{}\n")
    for name in ("s0", "s1"):
        write_script(root, name)
    write_script(root, "s2", last_para)
    nodes = [
        "{id: '0', metadata: {type: trigger, title: trigger, sources: []}}",
        "{id: '1', metadata: {type: terminator, title: end}}",
    ]
    edges = []
    previous, value = "0", "0"
    for n, name in enumerate(("s0", "s1", "s2")):
        node = str(n + 2)
        nodes.append(
            f"{{id: '{node}', metadata: {{type: action, title: {name}, script: {{id: {name}}}}}}}"
        )
        edges.append(
            f"{{source: '{previous}', target: '{node}', metadata: {{binding: "
            f"[{{property: value, value: {value}, type: integer}}]}}}}"
        )
        previous, value = node, f"'{{{{ {node}.value }}}}'"
    edges.append(f"{{source: '{previous}', target: '1'}}")
    (root / "src" / "graph.yml").write_text(
        "graph:\n  metadata: {version: 0.1.0, title: chain, templateId: chain, "
        "description: '', tags: [], author: chain}\n  nodes:\n"
        + "".join(f"    - {n}\n" for n in nodes)
        + "  edges:\n"
        + "".join(f"    - {e}\n" for e in edges)
    )
    return root


def summary(out: str) -> list[str]:
    """The run summary's node lines, durations left out, spaces squeezed."""
    lines = out[out.index("Summary:\n") :].splitlines()[1:]
    return [" ".join(re.sub(r"\d+\.\d ms", "", line).split()) for line in lines]


def run(root: Path, *args: str) -> list[str]:
    done = trek_process("run", *args, "-p", str(root), cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    return summary(done.stdout)


def record(root: Path) -> dict[str, dict]:
    data = json.loads((root / ".trek" / "runs" / "last.json").read_text())
    return {n["id"]: n for n in data["nodes"]}


def edit_s1(root: Path, step: int) -> None:
    handler = root / "src" / "blcks" / "s1" / "handler" / "handler.py"
    handler.write_text(HANDLER.format(name="s1", step=step) + f"\n# edited to add {step}\n")


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Path]:
    root = chain_project(tmp_path / "chain")
    yield root
    trek_process("shutdownenv", "-a", "-p", str(root), cwd=root)


def test_an_edit_that_keeps_the_output_reuses_what_follows(chain: Path) -> None:
    assert run(chain) == [
        "0 trigger done",
        "2 s0 done",
        "3 s1 done",
        "4 s2 done",
        "1 terminator done",
    ]
    edit_s1(chain, 1)  # a comment: the code changed, its output did not
    assert run(chain, "--reuse") == [
        "0 trigger done",
        "2 s0 reused",
        "3 s1 done",
        "4 s2 reused same inputs after node 3 (s1) re-ran",
        "1 terminator done",
    ]
    nodes = record(chain)
    assert (nodes["4"]["status"], nodes["4"]["cutoff"]) == ("reused", ["3"])
    assert nodes["4"]["reason"] == "same inputs after node 3 (s1) re-ran"
    assert nodes["4"]["outputs"] == {"value": 3}
    shown = trek_process("graph", "--status", "--show", "-p", str(chain), cwd=chain)
    assert shown.returncode == 0, shown.stderr
    assert '\t3 [label=s1 shape=box style=filled fillcolor="#99ee99"]' in shown.stdout  # done
    assert '\t4 [label=s2 shape=box style=filled fillcolor="#99ccff"]' in shown.stdout  # reused

    edit_s1(chain, 5)  # now its output changes: what follows runs again
    assert run(chain, "--reuse") == [
        "0 trigger done",
        "2 s0 reused",
        "3 s1 done",
        "4 s2 done",
        "1 terminator done",
    ]
    assert record(chain)["4"]["outputs"] == {"value": 7}
    assert record(chain)["4"]["cutoff"] == []


def test_a_side_effecting_script_runs_whenever_it_is_reached(tmp_path: Path) -> None:
    root = chain_project(tmp_path / "chain", last_para="sideEffects: true\n")
    try:
        run(root)
        assert run(root, "--reuse") == [
            "0 trigger done",
            "2 s0 reused",
            "3 s1 reused",
            "4 s2 done",
            "1 terminator done",
        ]
    finally:
        trek_process("shutdownenv", "-a", "-p", str(root), cwd=root)

"""Start-up cost of the foundation: `trek --help`, `doit list` and a no-op `doit pack`.

Builds a synthetic project (50 blcks scripts, a 200-node graph: trigger -> parallel chains
of actions bound output-to-input -> terminator) in a temp dir, then prints ONE JSON object
with the median wall time (seconds) of each command over ``--repeat`` runs, plus counts.
Figures only; nothing here asserts a timing.

    python bench/bench_foundation.py [--repeat 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = 50
NODES = 200
CHAINS = 6

PARA = """\
id: {name}
schemaVersion: '0.2'
name: {name}
title: {name}
version: '0.1.0'
description: Synthetic script for the foundation benchmark.
namespace: bench
assets: [SCRIPT]
inputs:
  value: {{type: string, title: Value}}
required: [value]
outputs:
  value: {{type: string, title: Value}}
"""
HANDLER = '''\
from blcks import blcks

FAAS_METHOD_NAME = "{name}"


@blcks
def main(event, context):
    """Entry called by the runtime; blcks dispatches to the script named by event['action']."""


@blcks.script(FAAS_METHOD_NAME)
def process(value):
    return {{"value": value}}
'''
OPENFAAS = """\
provider: {{name: faas, gateway: 'http://127.0.0.1:31112'}}
functions:
  {name}:
    lang: python3_blcks_flask
    handler: ./handler
    image: localhost:5000/{name}:0.1.0
"""
DODO = "from trek_tasks.tasks import namespace\n\nglobals().update(namespace(__file__))\n"


def write_script(folder: Path, name: str) -> None:
    handler = folder / "handler"
    handler.mkdir(parents=True)
    (folder / f"{name}.para").write_text(PARA.format(name=name))
    (folder / "openfaas.yml").write_text(OPENFAAS.format(name=name))
    (handler / "__init__.py").write_text("")
    (handler / "handler.py").write_text(HANDLER.format(name=name))
    (handler / "requirements.txt").write_text("")


def graph_text(nodes: int, scripts: int, chains: int) -> tuple[str, int]:
    """The graph YAML and its edge count: ``nodes - 2`` actions spread over ``chains``."""
    actions = nodes - 2
    lines = [
        "graph:",
        "  metadata:",
        "    version: 0.1.0",
        "    title: Foundation benchmark",
        "    templateId: bench.foundation",
        "    description: Synthetic workflow",
        "    tags: []",
        "    author: bench",
        "  nodes:",
        "    - {id: '0', metadata: {type: trigger, title: trigger, sources: []}}",
        "    - {id: '1', metadata: {type: terminator, title: terminator}}",
    ]
    for i in range(actions):
        script = f"s{i % scripts:02d}"
        lines.append(
            f"    - {{id: '{i + 2}', metadata: {{type: action, title: 'step {i}', "
            f"script: {{id: {script}}}}}}}"
        )
    lines.append("  edges:")
    edges = 0
    size = -(-actions // chains)
    for start in range(0, actions, size):
        previous = "0"
        for i in range(start, min(start + size, actions)):
            node = str(i + 2)
            value = "start" if previous == "0" else f"'{{{{ {previous}.value }}}}'"
            lines.append(
                f"    - {{source: '{previous}', target: '{node}', metadata: {{binding: "
                f"[{{property: value, value: {value}, type: string}}]}}}}"
            )
            previous = node
            edges += 1
        lines.append(f"    - {{source: '{previous}', target: '1'}}")
        edges += 1
    return "\n".join(lines) + "\n", edges


def build_project(root: Path, scripts: int = SCRIPTS, nodes: int = NODES) -> int:
    """Write the synthetic project at ``root``; returns the number of edges."""
    (root / ".trek").mkdir(parents=True)
    (root / ".trek" / "config.json").write_text('{"router_port": 5000}\n')
    (root / "manifest.json").write_text('{"entry": "src/graph.yml"}\n')
    (root / "packages.json").write_text('{"packages": {}}\n')
    (root / "inputs").mkdir()
    (root / "inputs" / "event.yml").write_text("{}\n")
    (root / "inputs" / "data.yml").write_text("{}\n")
    (root / "dodo.py").write_text(DODO)
    for i in range(scripts):
        write_script(root / "src" / "blcks" / f"s{i:02d}", f"s{i:02d}")
    text, edges = graph_text(nodes, scripts, CHAINS)
    (root / "src" / "graph.yml").write_text(text)
    return edges


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    return proc


def median_seconds(argv: list[str], cwd: Path, env: dict[str, str], repeat: int) -> float:
    """Median wall time over ``repeat`` runs, after one untimed run (bytecode caches warm)."""
    run(argv, cwd, env)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run(argv, cwd, env)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 4)


def ran_tasks(out: str) -> list[str]:
    return [line[3:] for line in out.splitlines() if line.startswith(".  ")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median)")
    parser.add_argument(
        "--keep", type=Path, default=None, help="build the project here and keep it (for profiling)"
    )
    args = parser.parse_args()
    if args.keep is not None and args.keep.exists():
        raise SystemExit(f"{args.keep} exists; --keep takes a new folder")

    python = sys.executable
    trek = [python, "-m", "trek_tasks"]
    doit = [python, "-m", "doit"]
    with tempfile.TemporaryDirectory(prefix="trek-bench-") as tmp:
        root = args.keep.resolve() if args.keep else Path(tmp) / "bench.foundation"
        edges = build_project(root)
        # Users' Pythons cache bytecode; without it every start recompiles every module.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPATH"] = str(REPO)
        env["TREK_GLOBAL_CONFIG"] = str(Path(tmp) / "global-config.json")
        warm = run([*doit, "pack"], root, env)
        noop = run([*doit, "pack"], root, env)
        if ran_tasks(noop.stdout):
            raise SystemExit(f"the second `doit pack` was not a no-op:\n{noop.stdout}")
        listed = run([*doit, "list", "--all"], root, env).stdout.splitlines()
        figures = {
            "python_startup": median_seconds([python, "-c", "pass"], root, env, args.repeat),
            "trek_help": median_seconds([*trek, "--help"], root, env, args.repeat),
            "doit_list": median_seconds([*doit, "list"], root, env, args.repeat),
            "doit_pack_noop": median_seconds([*doit, "pack"], root, env, args.repeat),
            "trek_pack_noop": median_seconds([*trek, "pack", "-a"], root, env, args.repeat),
        }
        result = {
            "seconds": figures,
            "repeat": args.repeat,
            "scripts": SCRIPTS,
            "nodes": NODES,
            "edges": edges,
            "tasks": len(listed),
            "pack_tasks": sum(1 for line in listed if line.startswith("pack:")),
            "tasks_run_by_first_pack": len(ran_tasks(warm.stdout)),
            "python": sys.version.split()[0],
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

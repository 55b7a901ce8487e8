"""Synthetic projects for the benchmarks: N echo-like blcks scripts in a chain."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from trek_tasks.project import copy_sources

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example" / "host.detect.redis"

HANDLER = '''from blcks import blcks

FAAS_METHOD_NAME = "{name}"


@blcks
def main(event, context):
    """Entry called by the runtime."""


@blcks.script(FAAS_METHOD_NAME)
def process(value=0):
    return {{"value": value + 1, "version": {version}}}
'''


def write_script(folder: Path, name: str, version: int = 1) -> None:
    (folder / "handler").mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.para").write_text(
        f"id: {name}\nschemaVersion: '0.2'\nname: {name}\ntitle: {name}\nversion: '0.1.0'\n"
        "description: bench\nnamespace: bench\nassets: [SCRIPT]\n"
        "inputs:\n  value: {type: integer, title: value}\n"
        "outputs:\n  value: {type: integer, title: value}\n  version: {type: integer, title: v}\n"
    )
    (folder / "handler" / "__init__.py").write_text("")
    (folder / "handler" / "requirements.txt").write_text("")
    (folder / "handler" / "handler.py").write_text(HANDLER.format(name=name, version=version))
    (folder / "openfaas.yml").write_text(
        f"provider: {{name: faas}}\nfunctions:\n  {name}:\n    lang: python3_blcks_flask\n"
        f"    handler: ./handler\n    image: localhost:5000/{name}:0.1.0\n"
    )


def chain_project(root: Path, scripts: int, nodes: int | None = None) -> Path:
    """A project whose graph is trigger -> ``nodes`` actions (cycling over ``scripts``) -> end."""
    nodes = nodes or scripts
    root.mkdir(parents=True)
    (root / ".trek").mkdir()
    (root / ".trek" / "config.json").write_text(json.dumps({"router_port": 0}) + "\n")
    (root / "manifest.json").write_text('{"entry": "src/graph.yml"}\n')
    (root / "packages.json").write_text('{"packages": {}}\n')
    (root / "inputs").mkdir()
    (root / "inputs" / "event.yml").write_text("{}\n")
    (root / "dodo.py").write_text(
        "from trek_tasks.tasks import namespace\n\nglobals().update(namespace(__file__))\n"
    )
    for i in range(scripts):
        write_script(root / "src" / "blcks" / f"s{i}", f"s{i}")
    lines = [
        "graph:",
        "  metadata: {version: 0.1.0, title: bench, templateId: bench, description: '', "
        "tags: [], author: bench}",
        "  nodes:",
        "    - {id: '0', metadata: {type: trigger, title: trigger, sources: []}}",
        "    - {id: '1', metadata: {type: terminator, title: end}}",
    ]
    for n in range(nodes):
        script = f"s{n % scripts}"
        meta = f"{{type: action, title: n{n}, script: {{id: {script}}}}}"
        lines.append(f"    - {{id: '{n + 2}', metadata: {meta}}}")
    lines.append("  edges:")
    previous = "0"
    for n in range(nodes):
        node = str(n + 2)
        value = "0" if previous == "0" else f"'{{{{ {previous}.value }}}}'"
        lines.append(
            f"    - {{source: '{previous}', target: '{node}', metadata: {{binding: "
            f"[{{property: value, value: {value}, type: integer}}]}}}}"
        )
        previous = node
    lines.append(f"    - {{source: '{previous}', target: '1'}}")
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "graph.yml").write_text("\n".join(lines) + "\n")
    return root


def copy_example(dest: Path) -> Path:
    """The example project without any state a run in the checkout left behind."""
    return copy_sources(EXAMPLE, dest)


def user_env() -> dict[str, str]:
    """The environment as a user's: with bytecode caching (some shells turn it off)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def module(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m name args`` in ``cwd`` as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", name, *args], cwd=cwd, capture_output=True, text=True, env=user_env()
    )


def trek(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return module("trek_tasks", *args, cwd=cwd)


def doit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return module("doit", *args, cwd=cwd)


def checked(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(map(str, result.args))} failed:\n{result.stdout}{result.stderr}"
        )
    return result


def seconds(
    action: Callable[[], object], repeat: int = 5, before: Callable[[], object] | None = None
) -> float:
    """Median wall time of ``action`` over ``repeat`` runs (``before`` runs untimed first)."""
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 4)

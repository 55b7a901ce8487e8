"""Engine and runtime figures (issue 4), printed as one JSON object.

- ``engine_ms_per_node``: a 500-node chain whose actions all call one warm echo
  script (HTTP call included), total run time / nodes; ``..._with_state_probe``: the
  same with the local Marvin's state digest asked at each action node (as ``trek run``
  does, for ``--reuse``), the Marvin served from a thread of this process;
- ``restart_to_ready_s``: ``Environment.up`` on a running script (stop, start, ready);
- ``initenv_example_s``: ``trek initenv`` of the example with no process running and
  the environment store warm; ``initenv_example_cold_store_s``: the same with an empty
  store (virtualenvs rebuilt, package cache warm).

Run: ``python bench/bench_engine.py``
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _projects import chain_project, checked, copy_example, seconds, trek  # noqa: E402

from trek_tasks.engine import Engine, RunSettings  # noqa: E402
from trek_tasks.environment import Environment  # noqa: E402
from trek_tasks.invoker import HttpInvoker  # noqa: E402
from trek_tasks.marvin.client import StateProbe  # noqa: E402
from trek_tasks.marvin.inventory import Inventory  # noqa: E402
from trek_tasks.marvin.server import local_marvin  # noqa: E402
from trek_tasks.project import Project  # noqa: E402
from trek_tasks.reporter import Terminal  # noqa: E402

NODES = 500


def engine_per_node(tmp: Path) -> tuple[float, float, float]:
    project = Project.load(chain_project(tmp / "chain500", scripts=1, nodes=NODES))
    env = Environment(project)
    script = project.used_scripts()[0]
    handle = env.up(script)
    invoker = HttpInvoker({script.id: handle.url})
    printer = Terminal(out=lambda _: None)  # the terminal's work, without the terminal

    def per_node(settings: RunSettings) -> float:
        Engine(project.workflow, settings, invoker, [printer]).run()  # warm
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            result = Engine(project.workflow, settings, invoker, [printer]).run()
            runs.append(time.perf_counter() - start)
            assert result.status == "done", result.error
        return round(min(runs) / (NODES + 2) * 1000, 3)

    try:
        plain = per_node(RunSettings("bench", "r", {}, {}, {}, timeout=30))
        with local_marvin(Inventory(), tmp / "marvin") as marvin:
            probe = StateProbe(marvin.url, marvin.token)
            try:
                settings = RunSettings("bench", "r", {}, {}, {}, timeout=30, state_probe=probe)
                probed = per_node(settings)
            finally:
                probe.close()
        restart = seconds(lambda: env.up(script), repeat=5)
    finally:
        invoker.close()
        env.shutdown_all()
    return plain, probed, restart


def initenv_example(tmp: Path, name: str) -> float:
    project = copy_example(tmp / name)
    checked(trek("install", cwd=project))
    checked(trek("config", "router_port", "0", cwd=project))
    try:
        start = time.perf_counter()
        checked(trek("initenv", cwd=project))
        return round(time.perf_counter() - start, 3)
    finally:
        trek("shutdownenv", "-a", cwd=project)


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        per_node, probed, restart = engine_per_node(tmp)
        initenv_example(tmp, "warmup")
        warm = initenv_example(tmp, "example")
        os.environ["TREK_HOME"] = str(tmp / "empty-store")
        cold_store = initenv_example(tmp, "example-cold")
    print(
        json.dumps(
            {
                "engine_ms_per_node": per_node,
                "engine_ms_per_node_with_state_probe": probed,
                "engine_nodes": NODES + 2,
                "restart_to_ready_s": restart,
                "initenv_example_s": warm,
                "initenv_example_cold_store_s": cold_store,
                "python": sys.version.split()[0],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

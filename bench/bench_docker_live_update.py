"""Docker live update figures (issue 11), printed as one JSON object.

On a copy of the example, after a handler edit (a new comment line each time), until the
workflow's result, for detectredis:
- ``live_update``: the docker runtime as trek runs it: files copied into the running
  container, the server re-executed in place (``up_s``), then the workflow (``workflow_s``);
  ``doit_run_s`` is the whole ``execute`` task in process (validate, env, up, run: what
  ``trek run`` does, without the interpreter start);
- ``rebuild_recreate``: Trek's behaviour: the image rebuilt (``build_s``: only the code
  layer, requirements from cache), the container removed and a new one started
  (``recreate_s``), then the workflow;
- ``local``: the same edit on the local runtime (a new process, ``up_s``), then the workflow.
Each figure is the median of ``--repeat`` runs (default 5). ``speedup_vs_rebuild`` is
rebuild+recreate / live update (totals), ``ratio_to_local`` live update / local.

Needs a Docker daemon (``DOCKER_HOST``), the base image ``TREK_BASE_IMAGE`` (default
trek-base/python:3.11) and ``redis-server``; the reachable host's redis listens on the
bridge gateway (containers and the host both reach it). Images are tagged under
``<TREK_TEST_REGISTRY or localhost:5000>/trek-bench`` and removed at the end; nothing is
pushed. Run: ``python bench/bench_docker_live_update.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _projects import copy_example  # noqa: E402

from trek_tasks.environment import Environment  # noqa: E402
from trek_tasks.localrun import run_workflow, up_script  # noqa: E402
from trek_tasks.options import TaskOptions  # noqa: E402
from trek_tasks.project import Project  # noqa: E402
from trek_tasks.runner import run_tasks  # noqa: E402
from trek_tasks.runtimes.docker import LABEL_PROJECT  # noqa: E402

HANDLER = Path("src/blcks/detectredis/handler/handler.py")
SCRIPT = "detectredis"


@contextlib.contextmanager
def gateway_redis(client: Any) -> Iterator[tuple[str, int]]:
    """redis-server on the docker bridge gateway address (never 0.0.0.0)."""
    bridge = client.networks.get("bridge").attrs["IPAM"]["Config"]
    address = next(c["Gateway"] for c in bridge if c.get("Gateway"))
    with socket.socket() as sock:
        sock.bind((address, 0))
        port = sock.getsockname()[1]
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    args = [binary, "--port", str(port), "--bind", address, "--protected-mode", "no"]
    proc = subprocess.Popen(
        [*args, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                socket.create_connection((address, port), timeout=0.2).close()
                break
            time.sleep(0.05)
        yield address, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def prepare(root: Path, registry: str, redis: tuple[str, int]) -> Path:
    project = copy_example(root / "example")
    config_path = project / ".trek" / "config.json"
    config = json.loads(config_path.read_text())
    base = os.environ.get("TREK_BASE_IMAGE", "trek-base/python:3.11")
    config.update(blcks_base_image=base, docker_registry=registry, router_port=0)
    config_path.write_text(json.dumps(config))
    inventory = project / "inputs" / "inventory.yml"
    data = yaml.safe_load(inventory.read_text())
    for host in data["hosts"]:
        if host["id"] == "S-redis-local":
            host["ip"], host["port"] = redis
    inventory.write_text(yaml.safe_dump(data))
    return project


class Cycle:
    """One edit-to-result cycle, timed phase by phase."""

    def __init__(self, project: Path, runtime: str) -> None:
        self.root = project
        self.runtime = runtime
        self.edits = 0
        self.images: set[str] = set()  # the images its containers ran (removed at the end)

    def project(self) -> Project:
        return Project.load(self.root).with_runtime(self.runtime)

    def edit(self) -> None:
        self.edits += 1
        with open(self.root / HANDLER, "a") as out:
            out.write(f"# {self.runtime} edit {self.edits}\n")

    def workflow(self) -> float:
        start = time.perf_counter()
        result = run_workflow(self.project())
        assert result.nodes["2"].outputs["fail_hosts_count"] == 1, result.nodes["2"]
        return time.perf_counter() - start

    def live(self) -> dict[str, float]:
        """The runtime's own way: live update (docker) or a new process (local)."""
        self.edit()
        start = time.perf_counter()
        env = Environment(self.project())
        reason = up_script(env, env.project.scripts[SCRIPT])
        up = time.perf_counter() - start
        if self.runtime == "docker":  # the figure is only meaningful if it was one
            assert reason is not None and reason.endswith("(live update)"), reason
        return {"up_s": up, "workflow_s": self.workflow()}

    def rebuild_recreate(self) -> dict[str, float]:
        """Trek's way: build the image for the edit, replace the container."""
        self.edit()
        env = Environment(self.project())
        script = env.project.scripts[SCRIPT]
        start = time.perf_counter()
        env.runtime.install_env(script)  # the image with the edit (code layer rebuilt)
        built = time.perf_counter()
        env.down(SCRIPT)
        handle = env.up(script)  # a new container from that image
        recreated = time.perf_counter()
        self.images.add(str(handle.state["image"]))
        return {
            "build_s": built - start,
            "recreate_s": recreated - built,
            "workflow_s": self.workflow(),
        }

    def doit_run(self) -> float:
        self.edit()
        start = time.perf_counter()
        options = TaskOptions(always_run=True, runtime=self.runtime)
        run_tasks(self.project(), ["execute"], options)
        return time.perf_counter() - start


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    figures = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    figures["total_s"] = statistics.median(sum(run.values()) for run in runs)
    return {key: round(value, 4) for key, value in figures.items()}


def repeated(action: Callable[[], dict[str, float]], repeat: int) -> dict[str, float]:
    return medians([action() for _ in range(repeat)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat

    from docker.errors import APIError

    from trek_tasks.containers.client import connect

    client = connect()
    registry = os.environ.get("TREK_TEST_REGISTRY", "localhost:5000") + "/trek-bench"
    # What trek reports while it works goes to stderr: stdout is the JSON.
    with (
        tempfile.TemporaryDirectory() as name,
        gateway_redis(client) as redis,
        contextlib.redirect_stdout(sys.stderr),
    ):
        tmp = Path(name)
        os.environ["TREK_HOME"] = str(tmp / "store")
        os.environ["TREK_GLOBAL_CONFIG"] = str(tmp / "global.json")
        project = prepare(tmp, registry, redis)
        docker, local = Cycle(project, "docker"), Cycle(project, "local")
        results: dict[str, Any] = {
            "storage_driver": client.info().get("Driver"),
            "repeat": repeat,
        }
        try:
            run_tasks(docker.project(), ["execute"], TaskOptions(runtime="docker"))  # cold
            ours = client.containers.list(filters={"label": f"{LABEL_PROJECT}={project}"})
            docker.images.update(container.image.id for container in ours)
            results["live_update"] = repeated(docker.live, repeat)
            results["live_update"]["doit_run_s"] = round(
                statistics.median(docker.doit_run() for _ in range(repeat)), 4
            )
            results["rebuild_recreate"] = repeated(docker.rebuild_recreate, repeat)
            Environment(docker.project()).shutdown_all()
            run_tasks(local.project(), ["execute"], TaskOptions(runtime="local"))
            results["local"] = repeated(local.live, repeat)
            results["local"]["doit_run_s"] = round(
                statistics.median(local.doit_run() for _ in range(repeat)), 4
            )
        finally:
            for runtime in ("docker", "local"):
                Environment(Cycle(project, runtime).project()).shutdown_all()
            for image in client.images.list():
                for tag in image.tags:
                    if tag.startswith(registry + "/"):
                        docker.images.add(image.id)
                        client.images.remove(tag)
            for image_id in docker.images:  # untagged by a later build; kept if used elsewhere
                with contextlib.suppress(APIError):
                    client.images.remove(image_id)
    live = results["live_update"]["total_s"]
    results["speedup_vs_rebuild"] = round(results["rebuild_recreate"]["total_s"] / live, 1)
    results["ratio_to_local"] = round(live / results["local"]["total_s"], 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

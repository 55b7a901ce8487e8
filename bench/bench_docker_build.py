"""Image build figures (issue 11), printed as one JSON object.

On a copy of the example (three blcks scripts: detectredis with ``redis>=5``, two installed
ones without requirements), against the daemon at ``DOCKER_HOST``:
- ``cold``: ``trek build`` with an empty store and a base image no build has used yet (the
  base is re-labelled for the bench, so no layer of the daemon's cache applies), with its
  phases: ``wheelhouse_s`` (asking the image's Python + resolving and downloading the
  wheels) and ``build_s`` per script (the Docker build itself);
- ``noop_doit_build_s``: ``doit build`` with everything up to date (median of 5);
- ``edit``: a handler edit, then ``doit build:detectredis`` (median of 3), and the phases
  of one such rebuild made in-process.
Tags go under ``<registry>/bench-<hex>`` (registry: ``TREK_TEST_REGISTRY``, else
``localhost:5000``; nothing is pushed); base ``TREK_BASE_IMAGE``, else python:3.11-slim.
Everything the bench made in the daemon is removed at the end.

Run: ``python bench/bench_docker_build.py``
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _projects import checked, copy_example, doit, seconds, trek  # noqa: E402

REPEAT = 5
EDIT_REPEAT = 3
HANDLER = Path("src") / "blcks" / "detectredis" / "handler" / "handler.py"


class Phases:
    """Times the events of a build: wheelhouse and Docker build, per script."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.figures: dict[str, dict[str, float]] = {}

    def __call__(self, event: object) -> None:
        name = type(event).__name__
        script_id = getattr(event, "script_id", "")
        now = time.perf_counter()
        if name == "ImageBuilding":
            self.started[script_id] = now
            self.figures[script_id] = {"wheelhouse_s": 0.0}
        elif name == "WheelhouseReady":
            self.figures[script_id]["wheelhouse_s"] = round(getattr(event, "seconds", 0.0), 3)
        elif name == "ImageBuilt":
            total = now - self.started[script_id]
            wheelhouse = self.figures[script_id]["wheelhouse_s"]
            self.figures[script_id]["build_s"] = round(total - wheelhouse, 3)


def in_process(project: Path, *argv: str) -> tuple[float, dict[str, dict[str, float]]]:
    """Run ``trek argv`` in this process (its output dropped); wall time and phases."""
    from trek_tasks import events
    from trek_tasks.cli import main

    phases = Phases()
    with events.attached(phases), contextlib.redirect_stdout(io.StringIO()) as out:
        start = time.perf_counter()
        code = main([*argv, "-p", str(project)])
        wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"trek {' '.join(argv)} failed:\n{out.getvalue()}")
    return round(wall, 3), phases.figures


def bench_base(client: Any, base: str, label: str) -> str:
    """``base`` with a label of its own: an image id no cached layer was built on."""
    tag = f"trek-bench-base:{label}"
    dockerfile = f"FROM {base}\nLABEL trek.bench={label}\n".encode()
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, network_mode="none", rm=True)
    return tag


def remove_made(client: Any, prefix: str, ids: set[str], base: str) -> None:
    import docker

    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(prefix + "/"):
                ids.add(image.id)
                client.images.remove(tag)
    for name in [*ids, base]:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(name)


def main() -> None:
    from trek_tasks.containers.client import connect
    from trek_tasks.containers.images import recorded
    from trek_tasks.state import StateLayout

    client = connect()
    label = secrets.token_hex(4)
    registry = os.environ.get("TREK_TEST_REGISTRY") or "localhost:5000"
    prefix = f"{registry}/bench-{label}"
    base = bench_base(client, os.environ.get("TREK_BASE_IMAGE") or "python:3.11-slim", label)
    made: set[str] = set()
    info = client.info()
    results: dict[str, Any] = {
        "storage_driver": info.get("Driver"),
        "docker": info.get("ServerVersion"),
        "cpus": os.cpu_count(),
    }
    try:
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            os.environ["TREK_HOME"] = str(tmp / "store")  # an empty store: a cold wheelhouse
            project = copy_example(tmp / "example")
            state = StateLayout.for_project(project)
            for key, value in (("blcks_base_image", base), ("docker_registry", prefix)):
                checked(trek("config", key, value, cwd=project))
            checked(trek("config", "router_port", "0", cwd=project))
            checked(trek("install", cwd=project))

            wall, phases = in_process(project, "build")
            results["cold"] = {"trek_build_s": wall, "scripts": phases}
            made.update(str(getattr(recorded(state, sid), "id", "")) for sid in phases)

            results["noop_doit_build_s"] = seconds(
                lambda: checked(doit("build", cwd=project)), REPEAT
            )
            count = 0

            def edit() -> None:
                nonlocal count
                count += 1
                with open(project / HANDLER, "a") as out:
                    out.write(f"# bench edit {count}\n")

            def rebuild() -> None:
                checked(doit("build:detectredis", cwd=project))
                made.add(str(getattr(recorded(state, "detectredis"), "id", "")))

            edited = seconds(rebuild, EDIT_REPEAT, before=edit)
            edit()
            wall, phases = in_process(project, "build")
            made.add(str(getattr(recorded(state, "detectredis"), "id", "")))
            results["edit"] = {
                "doit_build_detectredis_s": edited,
                "trek_build_s": wall,
                "scripts": phases,
            }
    finally:
        remove_made(client, prefix, made - {""}, base)
        client.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

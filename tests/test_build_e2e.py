"""`trek build`, `trek buildblcks` and `doit build:<id>` on a copy of the example, against
the real Docker daemon: every blcks script the workflow runs gets an image (own and
installed), a second build does nothing, a handler edit rebuilds only that script with its
requirements layer from the cache, and a missing daemon is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, Registry, set_config
from images_made import Made

from trek_tasks.cli import main
from trek_tasks.containers.images import recorded
from trek_tasks.install import in_sync
from trek_tasks.state import StateLayout

DETECTREDIS = Path("src") / "blcks" / "detectredis"
SCRIPTS = {  # id -> (folder, version), in the workflow's node order
    "detectredis": (DETECTREDIS, "0.1.0"),
    "blckssettags": (Path("trek_packages") / "blckssettags", "0.3.0"),
    "notification": (Path("trek_packages") / "notification", "0.5.0"),
}
FINISHED = "Finish building. [detectredis, blckssettags, notification]"


@pytest.fixture(scope="module")
def made(docker_client: Any, registry: Registry) -> Iterator[Made]:
    record = Made.under(registry.address)
    yield record
    record.remove(docker_client)


@pytest.fixture
def proj(docker_project: Path, made: Made) -> Path:
    set_config(docker_project, docker_registry=made.prefix)
    return docker_project


def trek(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def doit(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "doit", *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def pip_layer(client: Any, image_id: str) -> str:
    (entry,) = [h for h in client.api.history(image_id) if "pip install" in h["CreatedBy"]]
    return str(entry["Id"])


def test_build_then_nothing_then_only_the_edited_script(
    proj: Path,
    docker_client: Any,
    made: Made,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(proj)
    handler = proj / DETECTREDIS / "handler" / "handler.py"
    handler.write_text(handler.read_text() + f"\n# {made.prefix}\n")  # content no one built

    code, out, err = trek(capsys, "build", "-p", str(proj))
    assert code == 0, err
    state = StateLayout.for_project(proj)
    images = {script_id: recorded(state, script_id) for script_id in SCRIPTS}
    for script_id, (folder, version) in SCRIPTS.items():
        image = images[script_id]
        assert image is not None
        made.note(image)
        tag = f"{made.prefix}/{script_id}:{version}"
        assert image.tag == tag
        start = out.index(f"Build blcks: {script_id}")
        assert out[start + 1] == f"Path: {folder / 'handler'}"
        done = next(
            i for i, line in enumerate(out) if line.startswith(f"Successfully tagged {tag}")
        )
        assert done > start and out[done + 1] == "Blcks image complete."
        assert docker_client.images.get(tag).id == image.id
    assert any(line.startswith("  Step ") and "RUN python -m pip" in line for line in out)
    assert out[-1] == FINISHED
    stack = yaml.safe_load((proj / DETECTREDIS / "openfaas.yml").read_text())
    assert stack["provider"] == {"name": "faas", "gateway": "http://127.0.0.1:31112"}
    assert stack["functions"]["detectredis"] == {
        "lang": "python3_blcks_flask",
        "handler": "./handler",
        "image": images["detectredis"].tag,  # type: ignore[union-attr]
    }
    assert in_sync(proj)  # installed folders keep their archive's exact files

    code, out, err = trek(capsys, "build", "-p", str(proj))
    assert code == 0, err
    assert out == [
        *(f"{sid}: {images[sid].tag} is up to date" for sid in SCRIPTS),  # type: ignore[union-attr]
        FINISHED,
    ]

    before = pip_layer(docker_client, images["detectredis"].id)  # type: ignore[union-attr]
    handler.write_text(handler.read_text() + "# edited\n")
    proc = doit(proj, "build:detectredis")
    assert ".  build:detectredis" in proc.stdout.splitlines()
    assert "Build blcks: detectredis" in proc.stdout
    assert "Build blcks: blckssettags" not in proc.stdout
    after = made.note(recorded(state, "detectredis"))  # type: ignore[arg-type]
    assert after.id != images["detectredis"].id  # type: ignore[union-attr]
    assert pip_layer(docker_client, after.id) == before

    proc = doit(proj, "build")
    ran = {line[3:] for line in proc.stdout.splitlines() if line.startswith(".  ")}
    assert not {name for name in ran if name.startswith("build:")}, proc.stdout
    assert {sid: recorded(state, sid) for sid in ("blckssettags", "notification")} == {
        sid: images[sid] for sid in ("blckssettags", "notification")
    }

    code, out, err = trek(capsys, "buildblcks", "-p", str(proj / DETECTREDIS))
    assert (code, out) == (
        0,
        [f"detectredis: {after.tag} is up to date", "Finish building. [detectredis]"],
    )


def test_build_without_a_daemon_is_one_line(
    proj: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    where = f"unix://{proj}/no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", where)
    code, out, err = trek(capsys, "build", "-p", str(proj))
    assert code == 1
    assert [line for line in err.splitlines() if not line.startswith("trek: warning:")] == [
        f"trek: error: docker: no Docker daemon at {where} (No such file or directory); "
        "start Docker or use the local runtime: `trek config runtime local`"
    ]
    code, out, err = trek(capsys, "buildblcks", "-p", str(proj / DETECTREDIS))
    assert code == 1 and len(err.splitlines()) == 1 and where in err

"""`trek build` then `trek push` on the example against the real daemon and registry: the
pushed tags pull, a second `doit push` runs nothing, refusals and an unreachable registry
are one line without the password. Everything pushed is deleted afterwards."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Registry, free_port, set_config
from test_registry import delete_tag

from trek_tasks.cli import main
from trek_tasks.containers.registry import parse_reference

SCRIPTS = ["detectredis", "blckssettags", "notification"]  # the example's, in node order
VERSIONS = {"detectredis": "0.1.0", "blckssettags": "0.3.0", "notification": "0.5.0"}


@dataclass
class Pushing:
    project: Path
    tags: dict[str, str]  # script id -> the tag it is pushed as
    registries: list[str]  # docker_registry values used: their tags are removed after


@pytest.fixture
def pushing(
    docker_project: Path, registry: Registry, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pushing]:
    """The example set to push under a repository path of its own, with the registry's
    credentials in its config. Removes its tags from the registry and the daemon after."""
    monkeypatch.chdir(docker_project)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)  # no Docker credentials: only config's
    where = f"{registry.address}/trek-e2e-{uuid.uuid4().hex[:8]}"
    set_config(
        docker_project,
        docker_registry=where,
        docker_username=registry.user,
        docker_password=registry.password,
    )
    tags = {script: f"{where}/{script}:{VERSIONS[script]}" for script in SCRIPTS}
    state = Pushing(docker_project, tags, [where])
    yield state
    for tag in tags.values():
        ref = parse_reference(tag)
        delete_tag(registry, ref.name, ref.tag)
    for image in docker_client.images.list():
        for tag in image.tags:
            if any(tag.startswith(f"{prefix}/") for prefix in state.registries):
                docker_client.images.remove(tag)


def trek(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run trek; its exit code, stdout and stderr without validate's warnings (the
    example's installed blckssettags has some)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    kept = [line for line in err.splitlines(keepends=True) if not line.startswith("trek: warning:")]
    return code, out, "".join(kept)


def test_build_push_pull_and_push_again(
    pushing: Pushing, registry: Registry, docker_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    project, tags = pushing.project, pushing.tags
    assert trek(capsys, "build")[0] == 0
    code, out, err = trek(capsys, "push")
    assert code == 0, err
    for script, tag in tags.items():
        assert f"Push blcks: {script}\nPush image: {tag}\n" in out
        assert f"Pushed {tag} (sha256:" in out
    assert out.endswith(f"Finish pushing. [{', '.join(SCRIPTS)}]\n")
    assert registry.password not in out + err

    # The pushed tag pulls, and it is the image built here.
    auth = {"username": registry.user, "password": registry.password}
    ref = parse_reference(tags["detectredis"])
    pulled = docker_client.images.pull(ref.repository, tag=ref.tag, auth_config=auth)
    assert pulled.id == docker_client.images.get(tags["detectredis"]).id

    # A second push asks the registry and runs nothing: trek says so, doit too.
    code, out, _ = trek(capsys, "push")
    assert code == 0 and "Push blcks" not in out
    assert all(f"push:{script} is up to date" in out for script in SCRIPTS)
    done = subprocess.run(
        [sys.executable, "-m", "doit", "push"], cwd=project, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "Push blcks" not in done.stdout and ".  push:" not in done.stdout
    assert all(f"-- push:{script}" in done.stdout for script in SCRIPTS)

    # pushblcks on one script folder: built and in the registry already.
    code, out, _ = trek(capsys, "pushblcks", "-p", "src/blcks/detectredis")
    assert code == 0 and "Push blcks" not in out
    assert out.endswith(
        f"{tags['detectredis']} is in the registry already\nFinish pushing. [detectredis]\n"
    )


def test_refusals_and_an_unreachable_registry_are_one_line(
    pushing: Pushing, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    project = pushing.project
    set_config(project, docker_password="wrong-e2e-password")
    code, out, err = trek(capsys, "push")
    assert code == 1
    assert err == (
        f"trek: error: registry {registry.address} refused the credentials from "
        ".trek/config.json: HTTP 401: authentication required\n"
    )
    assert "wrong-e2e-password" not in out + err and registry.password not in out + err

    set_config(project, docker_username="", docker_password="")
    code, out, err = trek(capsys, "push")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"trek: error: registry {registry.address} wants credentials")

    unreachable = f"127.0.0.1:{free_port()}"
    pushing.registries.append(unreachable)
    set_config(project, docker_registry=unreachable)
    code, out, err = trek(capsys, "push")
    assert code == 1
    # The first push doit gets to (their order is doit's) is the one line.
    manifests = "|".join(f"{script}/manifests/{VERSIONS[script]}" for script in SCRIPTS)
    url = re.escape(f"http://{unreachable}/v2/") + f"({manifests})"
    said = re.escape(f"trek: error: registry {unreachable}: GET ")
    assert re.fullmatch(f"{said}{url}: cannot connect: Connection refused\n", err), err

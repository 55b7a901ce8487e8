"""The docker runtime against the real daemon: the example end to end with
``--runtime docker``, live update, replacement, fallback, shutdown, and its faults.

One project for the module (three containers, a few more where a test needs a new one):
the tests run in file order, each starting from what the one before left running.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from conftest import EXAMPLE, Registry, require_tool, set_config
from test_run_example import last_run, marvin_get
from test_runtimes import echo_script

from trek_tasks.cli import main
from trek_tasks.environment import Environment, load_runtime
from trek_tasks.project import Project, copy_sources
from trek_tasks.runtimes import process
from trek_tasks.runtimes.docker import LABEL_PROJECT, LABEL_ROLE, LABEL_TOKEN, bridge_gateway

HANDLER = Path("src/blcks/detectredis/handler/handler.py")
REQUIREMENTS = Path("src/blcks/detectredis/handler/requirements.txt")
NAMESPACE = "trek-docker-runtime"  # the registry path of this module's images
MADE: set[str] = set()  # ids of the images this module's containers ran (removed at the end)


@pytest.fixture(scope="module")
def gateway_redis(docker_client: Any) -> Iterator[tuple[str, int]]:
    """A redis-server containers reach: on the bridge gateway address (never 0.0.0.0);
    protected mode off, since its callers are not on loopback."""
    binary = require_tool("redis-server")
    address = bridge_gateway(docker_client)
    with socket.socket() as sock:
        sock.bind((address, 0))
        port = int(sock.getsockname()[1])
    args = [binary, "--port", str(port), "--bind", address, "--protected-mode", "no"]
    proc = subprocess.Popen(
        [*args, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((address, port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield address, port
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def example(
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: Any,
    base_image: str,
    registry: Registry,
    gateway_redis: tuple[str, int],
) -> Iterator[Path]:
    """The example on the docker runtime's images, its reachable host on the gateway."""
    project = copy_sources(EXAMPLE, tmp_path_factory.mktemp("docker") / EXAMPLE.name)
    images = f"{registry.address}/{NAMESPACE}"
    set_config(project, blcks_base_image=base_image, docker_registry=images, router_port=0)
    inventory = project / "inputs" / "inventory.yml"
    data = yaml.safe_load(inventory.read_text())
    for host in data["hosts"]:
        if host["id"] == "S-redis-local":
            host["ip"], host["port"] = gateway_redis
    inventory.write_text(yaml.safe_dump(data))
    yield project
    main(["shutdownenv", "-a", "-p", str(project)])
    assert ours(docker_client, project) == []
    for image in docker_client.images.list():
        for tag in image.tags:
            if tag.startswith(images + "/"):
                docker_client.images.remove(tag)
    for image_id in MADE:  # a rebuild left them untagged; an image used elsewhere stays
        with contextlib.suppress(docker.errors.APIError):
            docker_client.images.remove(image_id)


def ours(client: Any, project: Path) -> list[Any]:
    """The containers labelled with exactly this project's identity."""
    return client.containers.list(all=True, filters={"label": f"{LABEL_PROJECT}={project}"})


def container_of(client: Any, project: Path, script_id: str) -> Any:
    (found,) = [c for c in ours(client, project) if c.labels[LABEL_ROLE] == f"script:{script_id}"]
    return found


def run(project: Path, capsys: pytest.CaptureFixture[str], client: Any) -> str:
    code = main(["run", "--runtime", "docker", "-p", str(project)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    MADE.update(container.image.id for container in ours(client, project))
    return out


def test_the_example_runs_in_containers_one_host_down(
    example: Path, docker_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(example, capsys, docker_client)
    nodes = last_run(example)
    assert nodes["2"]["outputs"] == {
        "fail_hosts_count": 1,
        "fail_hosts": [{"id": "S-redis-down", "ip": "127.0.0.1", "name": "redis-down"}],
    }
    tagged = marvin_get(example, "/api/v1/hosts?search=tag:redis:unreachable")
    assert [host["id"] for host in tagged] == ["S-redis-down"]
    messages = marvin_get(example, "/api/v1/messages")
    assert len(messages) == 1 and "S-redis-down" in messages[0]["message"]
    assert "Messages sent:\n  [ops] The following host redis connection fail: " in out
    containers = ours(docker_client, example)
    assert sorted(c.labels[LABEL_ROLE] for c in containers) == [
        "script:blckssettags",
        "script:detectredis",
        "script:notification",
    ]
    for container in containers:
        assert container.name.startswith("trek-host.detect.redis-")
        assert container.name.endswith("-" + container.labels[LABEL_ROLE].split(":")[1])
        published = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"]
        assert {binding["HostIp"] for binding in published} == {"127.0.0.1"}
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        assert env[process.TOKEN_VAR] == container.labels[LABEL_TOKEN]
        assert process.PROJECT_VAR not in env  # the labels say it; no local stray look-alike
        assert env["BLCKS_DEBUG_LOG_MODE"] == "table"  # the config envs
    assert load_runtime("local").leftovers(str(example)) == []  # not local processes of ours
    marvin = json.loads((example / ".trek" / "env" / "marvin.json").read_text())
    assert marvin["listen"] == [bridge_gateway(docker_client)]  # how containers reach it
    local = Environment(Project.load(example))  # the config's runtime: local
    assert local.marvin_stale_reason() == "the local runtime needs it on 127.0.0.1"


def test_a_handler_edit_is_a_live_update_in_the_same_container(
    example: Path, docker_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = container_of(docker_client, example, "detectredis").id
    handler = example / HANDLER
    handler.write_text(handler.read_text() + '\nprint("handler edited", flush=True)\n')
    out = run(example, capsys, docker_client)
    assert "restart detectredis: handler/handler.py changed (live update)" in out.splitlines()
    assert "Build blcks: detectredis" not in out  # no image build
    assert container_of(docker_client, example, "detectredis").id == before
    assert last_run(example)["2"]["outputs"]["fail_hosts_count"] == 1
    assert main(["logs", "detectredis", "-p", str(example)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines.count("blcks detectredis listening on http://0.0.0.0:8080") == 2  # restarted
    assert "handler edited" in lines  # with the edited handler
    assert "restart detectredis" not in run(example, capsys, docker_client)  # up to date now


def test_a_live_update_into_a_dead_container_starts_a_new_one_and_says_so(
    example: Path, docker_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = container_of(docker_client, example, "detectredis")
    dead.kill()
    handler = example / HANDLER
    handler.write_text(handler.read_text().replace("handler edited", "handler edited again"))
    out = run(example, capsys, docker_client)
    said = "live update of detectredis impossible: its container exited with code 137; "
    assert said + "starting it anew" in out.splitlines()
    assert container_of(docker_client, example, "detectredis").id != dead.id  # the dead one gone
    assert last_run(example)["2"]["outputs"]["fail_hosts_count"] == 1


def test_a_requirements_edit_rebuilds_the_image_and_replaces_the_container(
    example: Path, docker_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = container_of(docker_client, example, "detectredis").id
    (example / REQUIREMENTS).write_text("redis>=5.0\n")
    out = run(example, capsys, docker_client)
    assert "restart detectredis: handler/requirements.txt changed" in out.splitlines()
    assert "Build blcks: detectredis" in out
    assert container_of(docker_client, example, "detectredis").id != before
    assert last_run(example)["2"]["outputs"]["fail_hosts_count"] == 1


def test_shutdownenv_all_removes_every_container_of_the_project_and_nothing_else(
    example: Path, docker_client: Any, base_image: str
) -> None:
    copy = f"{example}-copy"  # another project's identity, sharing this one as a prefix
    labels = {LABEL_PROJECT: copy, LABEL_ROLE: "script:detectredis", LABEL_TOKEN: "other"}
    other = docker_client.containers.run(
        base_image, ["sleep", "300"], detach=True, labels=labels, network_mode="none"
    )
    try:
        assert len(ours(docker_client, example)) == 3
        assert main(["shutdownenv", "-a", "-p", str(example)]) == 0
        assert ours(docker_client, example) == []
        assert Environment(Project.load(example)).leftovers() == []
        other.reload()
        assert other.status == "running"
    finally:
        other.remove(force=True)


def test_an_unreachable_daemon_is_one_line_naming_the_socket(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    socket_path = tmp_path / "no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket_path}")
    assert main(["initenv", "--runtime", "docker", "-p", str(project)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("trek:")]
    assert errors == [
        f"trek: error: docker: no Docker daemon at unix://{socket_path} (No such file or "
        "directory); start Docker or use the local runtime: `trek config runtime local`"
    ]


def test_a_container_that_exits_at_start_shows_its_last_log_lines(
    tmp_path: Path,
    isolated_home: Path,
    docker_client: Any,
    base_image: str,
    registry: Registry,
) -> None:
    images = f"{registry.address}/{NAMESPACE}-broken"
    config = isolated_home / ".trek" / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"blcks_base_image": base_image, "docker_registry": images}))
    script = echo_script(tmp_path)
    (script.path / "handler" / "handler.py").write_text("raise RuntimeError('boom at import')\n")
    runtime = load_runtime("docker")
    project = str(tmp_path / "broken")
    try:
        with pytest.raises(process.Exited) as raised:
            runtime.start(script, 0, {}, tmp_path / "echo.log", project)
        assert raised.value.message == "echo did not start: its handler failed to import"
        assert raised.value.code == 3
        assert "RuntimeError: boom at import" in raised.value.detail.splitlines()[-1]
        assert runtime.leftovers(project) == []  # the exited container is removed
        assert "boom at import" in (tmp_path / "echo.log").read_text()  # its log is kept
    finally:
        for image in docker_client.images.list(name=f"{images}/echo"):
            for tag in image.tags:
                docker_client.images.remove(tag)

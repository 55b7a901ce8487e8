"""Every runtime in RUNTIMES passes one conformance test (pre-commit's ``run_language``);
the local runtime's process identity is checked on its own."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from unittest.mock import ANY

import pytest

from blcks.testing import make_event
from trek_tasks.environment import load_runtime
from trek_tasks.errors import StepFailed
from trek_tasks.project import Script
from trek_tasks.runtimes import RUNTIMES, process
from trek_tasks.runtimes.base import Handle, Runtime

HANDLER = """\
from blcks import blcks

FAAS_METHOD_NAME = "echo"


@blcks
def main(event, context):
    pass


@blcks.script("echo")
def process(word):
    blcks.logger.info("echo called with %s", word)
    return {"said": word}
"""


def echo_script(folder: Path) -> Script:
    path = folder / "echo"
    (path / "handler").mkdir(parents=True)
    (path / "echo.para").write_text(
        "id: echo\nversion: '0.1.0'\ninputs:\n  word: {type: string}\noutputs: {}\n"
    )
    (path / "handler" / "__init__.py").write_text("")
    (path / "handler" / "handler.py").write_text(HANDLER)
    script = Script.load(path, installed=False)
    assert script is not None
    return script


def invoke(handle: Handle, inputs: dict[str, str]) -> dict[str, str]:
    body = json.dumps(make_event(inputs, action="echo")).encode()
    request = urllib.request.Request(handle.url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, str] = json.loads(response.read())
    return answer


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty environment store, so ``env_problem`` starts with a reason."""
    monkeypatch.setenv("TREK_HOME", str(tmp_path / "store"))
    return tmp_path / "store"


def needs(name: str, request: pytest.FixtureRequest, isolated_home: Path) -> Iterator[None]:
    """What runtime ``name`` needs beyond a store: for docker the daemon and base image
    (the global config names them; the echo image is removed afterwards)."""
    if name != "docker":
        yield
        return
    base_image = request.getfixturevalue("base_image")
    client = request.getfixturevalue("docker_client")
    registry = f"{request.getfixturevalue('registry').address}/trek-conformance"
    config = isolated_home / ".trek" / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"blcks_base_image": base_image, "docker_registry": registry}))
    yield
    for image in client.images.list(name=f"{registry}/echo"):
        for tag in image.tags:  # untagged, the image goes unless someone else tagged it
            client.images.remove(tag)


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_runtime_conformance(
    name: str,
    tmp_path: Path,
    store: Path,
    request: pytest.FixtureRequest,
    isolated_home: Path,
) -> None:
    with contextlib.contextmanager(needs)(name, request, isolated_home):
        conformance(name, tmp_path)


def conformance(name: str, tmp_path: Path) -> None:
    runtime: Runtime = load_runtime(name)
    assert runtime.name == name
    script = echo_script(tmp_path)
    assert isinstance(runtime.env_problem(script), str)
    runtime.install_env(script)
    assert runtime.env_problem(script) is None
    assert runtime.marvin_url_for_script("http://127.0.0.1:5000").endswith(":5000")

    project = str(tmp_path / "proj2")
    handle = runtime.start(script, 0, {}, tmp_path / "echo.log", project)
    try:
        assert (handle.script_id, handle.runtime) == ("echo", name)
        assert Handle.load(write(tmp_path / "echo.json", handle)) == handle
        assert runtime.healthy(handle)
        assert invoke(handle, {"word": "hello"}) == {"said": "hello"}
        assert any("echo called with hello" in line for line in runtime.logs(handle, False, None))
        assert len(list(runtime.logs(handle, False, 1))) == 1
        assert [h.script_id for h in runtime.leftovers(project)] == ["echo"]
        assert runtime.leftovers(str(tmp_path / "proj")) == []  # exact, not a path prefix
        copied = replace(handle, project=str(tmp_path / "proj2-copy"))  # `cp -r` of proj2
        assert not runtime.healthy(copied)
        runtime.stop(copied)  # the copy's handle names proj2's process: left running
        assert runtime.healthy(handle)
    finally:
        runtime.stop(handle)
    assert not runtime.healthy(handle)
    assert runtime.leftovers(project) == []
    runtime.stop(handle)  # already gone: a no-op


def write(path: Path, handle: Handle) -> Path:
    path.write_text(handle.dump())
    return path


def test_local_identity_is_the_token_not_the_pid(tmp_path: Path, store: Path) -> None:
    runtime = load_runtime("local")
    handle = runtime.start(echo_script(tmp_path), 0, {}, tmp_path / "echo.log", str(tmp_path))
    try:
        forged = replace(handle, state={**handle.state, "token": "forged"})
        assert not runtime.healthy(forged)
        runtime.stop(forged)  # not ours by that token: left running
        assert runtime.healthy(handle)
        found = process.ours(int(handle.ref))
        assert found is not None
        assert (found.project, found.role) == (str(tmp_path), "script:echo")
    finally:
        runtime.stop(handle)
    assert not process.pid_alive(int(handle.ref))


def test_a_local_script_serves_only_while_it_runs_and_holds_its_own_port(
    tmp_path: Path, store: Path
) -> None:
    """The local runtime asks the kernel, not the server: a stopped process, or a port
    another process listens on, is not serving."""
    runtime = load_runtime("local")
    handle = runtime.start(echo_script(tmp_path), 0, {}, tmp_path / "echo.log", str(tmp_path))
    other_script = echo_script(tmp_path / "other")
    other = runtime.start(other_script, 0, {}, tmp_path / "other.log", str(tmp_path))
    pid = int(handle.ref)
    try:
        assert runtime.healthy(handle)
        assert handle.state["socket"] == {"port": handle.state["port"], "inode": ANY}
        earlier = {key: value for key, value in handle.state.items() if key != "socket"}
        assert runtime.healthy(replace(handle, state=earlier))  # asked over HTTP then
        moved = replace(handle, state={**handle.state, "port": other.state["port"]})
        assert not runtime.healthy(moved)  # ours and listening, but not on that port
        os.kill(pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 5
            while not process.stopped(pid) and time.monotonic() < deadline:
                time.sleep(0.001)  # the signal is delivered in its own time
            assert not runtime.healthy(handle)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert runtime.healthy(handle)
    finally:
        runtime.stop(handle)
        runtime.stop(other)
    assert not runtime.healthy(handle)


def test_a_process_that_is_not_ours_is_never_stopped() -> None:
    import os

    assert process.ours(os.getpid()) is None
    assert not process.stop(os.getpid(), "any", "/any/project", wait=False)


def test_a_cold_build_says_which_script_which_requirements_and_how_long(
    tmp_path: Path, store: Path
) -> None:
    from trek_tasks.events import attached
    from trek_tasks.progress import EnvBuilding, EnvBuilt
    from trek_tasks.reporter import Terminal

    runtime = load_runtime("local")
    script = echo_script(tmp_path)
    lines: list[str] = []
    seen: list[object] = []
    with attached(Terminal(lines.append)), attached(seen.append):
        runtime.install_env(script)
        runtime.install_env(script)  # warm: nothing to build, nothing said
    assert [type(event) for event in seen] == [EnvBuilding, EnvBuilt]
    assert lines[0] == "building environment for echo (no requirements)..."
    assert lines[1].startswith("environment for echo built in ") and lines[1].endswith(" s")
    assert len(lines) == 2


def test_a_package_command_works_in_the_environment_moved_into_the_store(
    tmp_path: Path, store: Path
) -> None:
    """The store builds an environment in a temp folder and renames it into place: a
    package's console script (``ansible-playbook`` ...) must not name the temp folder."""
    import subprocess

    from conftest import wheel

    from trek_tasks.runtimes.local import LocalRuntime

    package = wheel(
        tmp_path,
        "hellotool",
        "def main():\n    print('hello from the store')\n",
        console="hellotool",
    )
    script = echo_script(tmp_path)
    script.requirements.write_text(f"hellotool @ {package.as_uri()}\n")
    runtime = LocalRuntime()
    runtime.install_env(script)
    command = runtime.env_dir(script) / "bin" / "hellotool"
    done = subprocess.run([str(command)], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, "hello from the store\n"), done.stderr


def test_the_docker_runtime_refuses_a_kind_without_images_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from trek_tasks.cli import main
    from trek_tasks.errors import StepFailed
    from trek_tasks.runtimes.docker import DockerRuntime

    monkeypatch.chdir(tmp_path)
    assert main(["createshell", "s1", "-y"]) == 0
    script = Script.load(tmp_path / "s1", installed=False)
    assert script is not None and script.kind.name == "shell"
    with pytest.raises(StepFailed) as refused:
        DockerRuntime().install_env(script)  # said before the daemon is asked
    assert str(refused.value) == (
        "s1: shell script 's1' cannot run on the docker runtime: only blcks scripts have "
        "images; run it with `--runtime local`"
    )


def test_environments_are_built_with_the_uv_the_package_ships() -> None:
    import tomllib
    import uv
    from conftest import REPO

    from trek_tasks.runtimes.local import uv_binary

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert any(dep.split(">")[0] == "uv" for dep in project["dependencies"])
    assert uv_binary() == str(uv.find_uv_bin())


def test_the_listener_of_a_port_is_found_and_named_only_when_ours() -> None:
    import os
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        assert process.can_listen(busy.getsockname()[1]) is False  # bound: taken
        busy.listen()
        port = busy.getsockname()[1]
        assert process.listener(port) == os.getpid()
        assert process.holder(port) is None  # this test process is no server of ours
    assert process.listener(port) is None
    assert process.can_listen(port)


class FakeDocker:
    """What ``bridge_gateway`` reads of a Docker client: the bridge network's attributes."""

    def __init__(self, attrs: dict) -> None:
        self.networks = self
        self.attrs = attrs

    def get(self, name: str) -> FakeDocker:
        assert name == "bridge"
        return self


def test_the_docker_bridge_gateway_is_the_bridge_interface_when_ipam_names_none() -> None:
    from trek_tasks.runtimes.docker import bridge_gateway

    named = {"IPAM": {"Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]}}
    assert bridge_gateway(FakeDocker(named)) == "172.17.0.1"
    # A daemon that made the bridge at its start names no gateway: the interface's address.
    unnamed = {
        "IPAM": {"Config": [{"Subnet": "127.0.0.0/8"}]},
        "Options": {"com.docker.network.bridge.name": "lo"},
    }
    assert bridge_gateway(FakeDocker(unnamed)) == "127.0.0.1"
    missing = {**unnamed, "Options": {"com.docker.network.bridge.name": "no-such-if0"}}
    with pytest.raises(
        StepFailed, match="^docker: Docker's bridge network has no gateway address$"
    ):
        bridge_gateway(FakeDocker(missing))

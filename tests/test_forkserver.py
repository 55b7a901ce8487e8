"""Fork-server restarts (runtimes/forkserver.py, blcks/forkserver.py): scripts forked from a
warm per-environment parent, with their own identity, and every way the contract breaks."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import parent_of, set_config, wheel

from blcks.forkserver import claim_identity, distribution_name
from trek_tasks.cli import main
from trek_tasks.environment import Environment
from trek_tasks.kinds.base import Command
from trek_tasks.project import Project
from trek_tasks.runtimes import forkserver, process

PARA = """id: {name}
schemaVersion: '0.2'
name: {name}
title: {name}
version: '0.1.0'
description: fork server test
namespace: test
assets: [SCRIPT]
inputs:
  value: {{type: integer, title: value}}
outputs:
  value: {{type: integer, title: value}}
  seen: {{type: string, title: seen}}
"""

HANDLER = '''import os
{prelude}
from blcks import blcks

FAAS_METHOD_NAME = "{name}"


@blcks
def main(event, context):
    """Entry called by the runtime."""


@blcks.script(FAAS_METHOD_NAME)
def process(value=0):
    return {{"value": value + 1, "seen": os.environ.get("SET_BY_A", "")}}
'''


def write_script(root: Path, name: str, prelude: str = "", requirements: str = "") -> Path:
    folder = root / "src" / "blcks" / name
    (folder / "handler").mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.para").write_text(PARA.format(name=name))
    (folder / "handler" / "__init__.py").write_text("")
    (folder / "handler" / "requirements.txt").write_text(requirements)
    (folder / "handler" / "handler.py").write_text(HANDLER.format(name=name, prelude=prelude))
    (folder / "openfaas.yml").write_text(
        f"provider: {{name: faas}}\nfunctions:\n  {name}:\n    lang: python3_blcks_flask\n"
        f"    handler: ./handler\n    image: localhost:5000/{name}:0.1.0\n"
    )
    return folder


def make_project(root: Path, scripts: dict[str, str], requirements: str = "") -> Path:
    """A project whose graph runs ``scripts`` (name -> handler prelude) in a chain."""
    (root / ".trek").mkdir(parents=True)
    # fork_server set here: these tests are about it, also in a suite run with it off
    settings = {"router_port": 0, "fork_server": True}
    (root / ".trek" / "config.json").write_text(json.dumps(settings) + "\n")
    (root / "manifest.json").write_text('{"entry": "src/graph.yml"}\n')
    (root / "packages.json").write_text('{"packages": {}}\n')
    (root / "inputs").mkdir()
    (root / "inputs" / "event.yml").write_text("{}\n")
    for name, prelude in scripts.items():
        write_script(root, name, prelude, requirements)
    lines = [
        "graph:",
        "  metadata: {version: 0.1.0, title: fork, templateId: fork, description: '', "
        "tags: [], author: test}",
        "  nodes:",
        "    - {id: '0', metadata: {type: trigger, title: trigger, sources: []}}",
        "    - {id: '1', metadata: {type: terminator, title: end}}",
    ]
    for n, name in enumerate(scripts):
        meta = f"{{type: action, title: {name}, script: {{id: {name}}}}}"
        lines.append(f"    - {{id: '{n + 2}', metadata: {meta}}}")
    lines.append("  edges:")
    previous = "0"
    for n in range(len(scripts)):
        value = "0" if previous == "0" else f"'{{{{ {previous}.value }}}}'"
        lines.append(
            f"    - {{source: '{previous}', target: '{n + 2}', metadata: {{binding: "
            f"[{{property: value, value: {value}, type: integer}}]}}}}"
        )
        previous = str(n + 2)
    lines.append(f"    - {{source: '{previous}', target: '1'}}")
    (root / "src" / "graph.yml").write_text("\n".join(lines) + "\n")
    return root


def parent_of_or_0(pid: int) -> int:
    try:
        return parent_of(pid)
    except OSError:
        return 0


def handle_of(project: Path, script_id: str) -> dict:
    return json.loads((project / ".trek" / "env" / f"{script_id}.json").read_text())


def edit(project: Path, script_id: str, line: str = "# edited") -> None:
    with open(project / "src" / "blcks" / script_id / "handler" / "handler.py", "a") as out:
        out.write(f"\n{line}\n")


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Path]:
    root = make_project(tmp_path / "chain", {"a": 'os.environ["SET_BY_A"] = "a"', "b": ""})
    yield root
    main(["shutdownenv", "-a", "-p", str(root)])
    assert process.find(str(root)) == []


def fork_server_of(project: Path, script_id: str) -> forkserver.ForkServer:
    handle = handle_of(project, script_id)
    server = forkserver.load(str(project), handle["env_key"])
    assert server is not None
    return server


def test_scripts_are_children_of_their_environment_fork_server_and_known_exactly(
    chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-p", str(chain)]) == 0
    server = fork_server_of(chain, "a")
    first = handle_of(chain, "a")["state"]
    assert parent_of(first["pid"]) == server.pid == fork_server_of(chain, "b").pid
    found = process.ours(first["pid"])
    assert found is not None
    assert (found.token, found.project, found.role) == (first["token"], str(chain), "script:a")
    edit(chain, "a")
    capsys.readouterr()
    assert main(["run", "-p", str(chain)]) == 0
    assert "restart a: handler/handler.py changed" in capsys.readouterr().out
    again = handle_of(chain, "a")["state"]
    assert again["pid"] != first["pid"] and parent_of(again["pid"]) == server.pid
    assert again["fork_server"] == server.pid
    assert not process.pid_alive(first["pid"])  # the old child stopped once the new answered


def test_a_script_setting_variables_at_import_changes_only_its_own(
    chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-p", str(chain)]) == 0
    record = json.loads((chain / ".trek" / "runs" / "last.json").read_text())
    outputs = {node["id"]: node.get("outputs") for node in record["nodes"]}
    assert outputs["2"]["seen"] == "a" and outputs["3"]["seen"] == ""
    server = fork_server_of(chain, "a")
    assert "SET_BY_A" not in process.environ(server.pid)


def test_a_handler_that_fails_to_import_leaves_the_fork_server_serving(
    chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-p", str(chain)]) == 0
    server = fork_server_of(chain, "a")
    edit(chain, "b", "raise RuntimeError('broken on purpose')")
    capsys.readouterr()
    assert main(["run", "-p", str(chain)]) == 1
    captured = capsys.readouterr()
    assert "b did not start: its handler failed to import" in captured.err
    assert "RuntimeError: broken on purpose" in captured.err
    assert server.healthy()
    path = chain / "src" / "blcks" / "b" / "handler" / "handler.py"
    path.write_text(path.read_text().replace("raise RuntimeError('broken on purpose')", "# fixed"))
    assert main(["run", "-p", str(chain)]) == 0
    assert parent_of(handle_of(chain, "b")["state"]["pid"]) == server.pid


def test_a_killed_fork_server_is_started_anew_and_the_restart_says_so(
    chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-p", str(chain)]) == 0
    server = fork_server_of(chain, "a")
    os.kill(server.pid, signal.SIGKILL)
    edit(chain, "a")
    capsys.readouterr()
    assert main(["run", "-p", str(chain)]) == 0
    out = capsys.readouterr().out
    assert "restart a: handler/handler.py changed" in out
    assert f"fork server of {server.env_key} started anew: it had stopped or did not answer" in out
    fresh = fork_server_of(chain, "a")
    assert fresh.pid != server.pid
    assert parent_of(handle_of(chain, "a")["state"]["pid"]) == fresh.pid
    assert process.ours(handle_of(chain, "b")["state"]["pid"]) is not None  # b serves on


def test_a_fork_server_killed_mid_restart_leaves_no_half_started_child(
    chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-p", str(chain)]) == 0
    server = fork_server_of(chain, "a")
    edit(chain, "a", "import time; time.sleep(1.5)  # a slow import: the window to kill in")

    def kill_when_forking() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # Not asked of the server: it answers nothing while it waits for the new child.
            children = [pid for pid in process.pids() if parent_of_or_0(pid) == server.pid]
            if len(children) > 2:  # a, b and the new a, still importing
                os.kill(server.pid, signal.SIGKILL)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_when_forking)
    killer.start()
    capsys.readouterr()
    assert main(["run", "-p", str(chain)]) == 0
    killer.join()
    out = capsys.readouterr().out
    assert f"fork server of {server.env_key} started anew" in out
    ours = sorted(found.role for found in process.find(str(chain), "script:"))
    assert ours == ["script:a", "script:b"]  # the child the dead server forked died with it
    assert parent_of(handle_of(chain, "a")["state"]["pid"]) == fork_server_of(chain, "a").pid


def test_handlers_may_start_threads_when_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prelude = "import threading\nthreading.Thread(target=lambda: None, daemon=True).start()"
    root = make_project(tmp_path / "threads", {"t": prelude})
    try:
        assert main(["run", "-p", str(root)]) == 0
        assert parent_of(handle_of(root, "t")["state"]["pid"]) == fork_server_of(root, "t").pid
    finally:
        main(["shutdownenv", "-a", "-p", str(root)])


@pytest.mark.parametrize(
    ("source", "why"),
    [
        (
            "import threading, time\n"
            "threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n",
            "starts a thread when imported",
        ),
        ("import socket\nKEPT = socket.socket()\n", "opens a socket when imported"),
    ],
)
def test_a_package_unsafe_to_share_by_fork_is_imported_by_each_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, why: str
) -> None:
    package = wheel(tmp_path, "unsafepkg", source)
    root = make_project(
        tmp_path / "unsafe",
        {"u": "import unsafepkg"},
        requirements=f"unsafepkg @ {package.as_uri()}\n",
    )
    try:
        capsys.readouterr()
        assert main(["run", "-p", str(root)]) == 0
        out = capsys.readouterr().out
        server = fork_server_of(root, "u")
        assert (
            f"fork server of {server.env_key}: each script imports unsafepkg itself ({why})" in out
        )
        health = process.get_json(server.port, "/healthz")
        assert health is not None and "unsafepkg" not in health["preloaded"]
        assert health["preloaded"][:2] == ["blcks", "blcks.serve"]
        assert forkserver_threads(server.pid) == 1  # the server itself stayed single-threaded
        assert parent_of(handle_of(root, "u")["state"]["pid"]) == server.pid
    finally:
        main(["shutdownenv", "-a", "-p", str(root)])


def forkserver_threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def test_fork_server_false_starts_each_script_in_a_fresh_interpreter(chain: Path) -> None:
    set_config(chain, fork_server=False)
    assert main(["run", "-p", str(chain)]) == 0
    state = handle_of(chain, "a")["state"]
    assert "fork_server" not in state
    assert process.cmdline(state["pid"])[1:3] == ["-m", "blcks.serve"]
    assert process.find(str(chain), forkserver.ROLE) == []


def test_shutdown_stops_the_fork_servers_and_the_last_script_retires_its_own(chain: Path) -> None:
    assert main(["run", "-p", str(chain)]) == 0
    server = fork_server_of(chain, "a")
    assert main(["shutdownenv", "a", "-p", str(chain)]) == 0
    assert server.healthy()  # b still runs from it
    assert main(["shutdownenv", "b", "-p", str(chain)]) == 0
    assert not process.pid_alive(server.pid)
    assert not forkserver.state_path(str(chain), server.env_key).exists()


def test_forkable_says_why_a_command_is_started_afresh(tmp_path: Path) -> None:
    python = tmp_path / "bin" / "python"
    serve = Command([str(python), "-m", "blcks.serve", "--port", "1"], {})
    assert forkserver.forkable(serve, python, {"PYTHONDONTWRITEBYTECODE": "1"}, "script:x") is None
    other = Command([str(python), "-m", "other"], {})
    assert forkserver.forkable(other, python, {}, "script:x") == "its command is not blcks.serve"
    assert forkserver.forkable(serve, python, {"PYTHONPATH": "/x"}, "script:x") == (
        "its variables set PYTHONPATH, which only a new interpreter reads"
    )
    long_role = "script:" + "x" * forkserver.ROLE_WIDTH
    assert forkserver.forkable(serve, python, {}, long_role) == (
        "its id is too long to write over the fork server's role"
    )


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("redis==5.0.1", "redis"),
        ("requests[socks] >= 2", "requests"),
        ("pkg @ file:///tmp/pkg.whl", "pkg"),
        ("-r other.txt", None),
        ("git+https://example.com/x.git", None),
        ("/abs/path/to/pkg", None),
    ],
)
def test_distribution_name_of_a_requirement_line(line: str, name: str | None) -> None:
    assert distribution_name(line) == name


def test_an_identity_that_does_not_fit_is_refused() -> None:
    assert claim_identity("x" * 10_000, "script:x") is False


def test_environment_up_uses_the_fork_server_directly(chain: Path) -> None:
    project = Project.load(chain)
    env = Environment(project)
    first = env.up(project.scripts["a"])
    edit(chain, "a")
    second = env.up(Project.load(chain).scripts["a"])
    assert second.state["fork_server"] == first.state["fork_server"] != 0
    assert second.url != first.url


def test_a_requirements_change_moves_the_script_and_retires_the_old_fork_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path / "moved", {"m": ""})
    try:
        assert main(["run", "-p", str(root)]) == 0
        old = fork_server_of(root, "m")
        package = wheel(tmp_path, "extrapkg", "VALUE = 1\n")
        requirements = root / "src" / "blcks" / "m" / "handler" / "requirements.txt"
        requirements.write_text(f"extrapkg @ {package.as_uri()}\n")
        capsys.readouterr()
        assert main(["run", "-p", str(root)]) == 0
        assert "restart m: handler/requirements.txt changed" in capsys.readouterr().out
        new = fork_server_of(root, "m")
        assert (
            new.env_key != old.env_key
            and parent_of(handle_of(root, "m")["state"]["pid"]) == new.pid
        )
        health = process.get_json(new.port, "/healthz")
        assert health is not None and "extrapkg" in health["preloaded"]
        deadline = time.monotonic() + 5
        while process.pid_alive(old.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process.pid_alive(old.pid)  # nothing of the old environment runs on
        assert not forkserver.state_path(str(root), old.env_key).exists()
    finally:
        main(["shutdownenv", "-a", "-p", str(root)])

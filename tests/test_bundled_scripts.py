"""The bundled repository: its archives are a fresh pack of scripts/, and its scripts run.

The handlers are loaded from the shipped archives and called through `blcks.testing.call`
against a real local Marvin.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from blcks.testing import call
from blcks.tools.shell import ShellRunner
from trek_tasks.files import dump_json
from trek_tasks.hub import Repository, bundled_path, read_archive
from trek_tasks.install import extract
from trek_tasks.marvin.client import MarvinClient
from trek_tasks.marvin.inventory import Asset, Channel, Host, Inventory
from trek_tasks.marvin.server import local_marvin
from trek_tasks.pack import script_zip
from trek_tasks.project import Project
from trek_tasks.publish import SOURCES, build_index, bundled_sources, folder_script, rebuild_bundled
from trek_tasks.runtimes.local import LocalRuntime
from trek_tasks.validate import validate_para

SOURCE_IDS = [f"{folder.parent.name}-{folder.name}" for folder in bundled_sources()]


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_sources_are_in_the_checkout() -> None:
    assert SOURCES == REPO / "scripts"
    assert SOURCE_IDS == [
        "ansibleping-0.1.0",
        "blckssettags-0.3.0",
        "blckssettags-0.3.1",
        "callservice-0.1.0",
        "hostcommand-0.1.0",
        "notification-0.4.0",
        "notification-0.5.0",
        "notification-0.5.1",
    ]


@pytest.mark.parametrize("folder", bundled_sources(), ids=SOURCE_IDS)
def test_shipped_archive_equals_a_fresh_pack_of_its_source(folder: Path) -> None:
    shipped = bundled_path() / folder.parent.name / folder.name / "dist" / "script.zip"
    assert shipped.read_bytes() == script_zip(folder_script(folder))


def test_shipped_index_is_what_the_build_writes() -> None:
    index = bundled_path() / "index.json"
    assert index.read_text(encoding="utf-8") == dump_json(build_index(bundled_path()))


def test_rebuilding_gives_the_shipped_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rebuilt = rebuild_bundled(SOURCES, tmp_path / "repository")
    assert tree(rebuilt) == tree(bundled_path())


@pytest.mark.parametrize("folder", bundled_sources(), ids=SOURCE_IDS)
def test_shipped_paras_are_valid(tmp_path: Path, folder: Path) -> None:
    script_id, version = folder.parent.name, folder.name
    archive = bundled_path() / script_id / version / "dist" / "script.zip"
    extract(read_archive(archive.read_bytes(), str(archive)), tmp_path / script_id)
    errors, _ = validate_para(tmp_path / script_id / f"{script_id}.para")
    assert errors == []


@pytest.mark.parametrize("folder", bundled_sources(), ids=SOURCE_IDS)
def test_the_scripts_own_tests_pass(folder: Path) -> None:
    """As `doit test` runs them: the kind's test command with the environment the local
    runtime builds for the script (ansible-core in it for a playbook)."""
    script = folder_script(folder)
    runtime = LocalRuntime()
    runtime.install_env(script)
    command = script.kind.test_command(script.path, runtime.env_dir(script))
    done = subprocess.run(
        command.args,
        cwd=folder,
        env={**os.environ, **command.env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout.splitlines()[-1]


def test_the_shell_and_ansible_scripts_install_offline_and_run(tmp_path: Path) -> None:
    """`trek install` from the bundled repository (no network), then each installed
    script runs as a graph node runs it."""
    trek = [sys.executable, "-m", "trek_tasks"]
    assert subprocess.run([*trek, "createproject", "ops", "-y"], cwd=tmp_path).returncode == 0
    root = tmp_path / "ops"
    done = subprocess.run(
        [*trek, "install", "hostcommand", "ansibleping"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == [
        "hostcommand:0.1.0 installed",
        "ansibleping:0.1.0 installed",
    ]
    packages = root / "trek_packages"
    installed = Project.load(root, workflow=False).installed
    assert (installed["hostcommand"].kind.name, installed["ansibleping"].kind.name) == (
        "shell",
        "ansible",
    )
    assert os.access(packages / "hostcommand" / "hostcommand.sh", os.X_OK)
    event = {"body": json.dumps({"command": "echo up"}), "context": {"timeout": 30}}
    shell = ShellRunner().run(str(packages / "hostcommand"), "hostcommand", event, 30.0)
    assert shell == {"rc": 0, "stdout": "up", "stderr": ""}
    runtime = LocalRuntime()
    runtime.install_env(installed["ansibleping"])
    python = runtime.env_dir(installed["ansibleping"]) / "bin" / "python"
    code = (
        "import json, sys\n"
        "from blcks.tools.ansible import AnsibleRunner\n"
        "event = {'body': {'localhost': True, 'command': 'echo pong'}}\n"
        "print(json.dumps(AnsibleRunner().run(sys.argv[1], 'ansibleping', event, 120.0)))\n"
    )
    done = subprocess.run(
        [str(python), "-c", code, str(packages / "ansibleping")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)
    assert outputs["rc"] == 0, outputs["stdout"]
    assert json.loads(outputs["vars"]) == {"command_rc": 0, "command_stdout": "pong"}


# --- the shipped handlers, against a real local Marvin ------------------------------------

Main = Callable[..., Any]


def shipped_main(tmp_path: Path, script_id: str, version: str) -> Main:
    """Extract the shipped archive as `trek install` does and import its handler."""
    release = next(
        r for r in Repository().index().entry(script_id).releases if str(r.version) == version
    )
    archive = read_archive(Repository().fetch(release), release.path)
    folder = tmp_path / script_id
    folder.mkdir()
    extract(archive, folder)
    name = f"shipped_{script_id}_{version.replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(name, folder / "handler" / "handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.FAAS_METHOD_NAME == script_id
    main: Main = module.main
    return main


class Marvin(MarvinClient):
    def run(self, main: Main, action: str, **inputs: Any) -> Any:
        return call(main, inputs, action=action, marvin_url=self.url, token=self.token)

    def messages(self) -> list[tuple[str, str]]:
        return [(m["channel_id"], m["message"]) for m in self.get("/api/v1/messages")]


@pytest.fixture
def marvin(tmp_path: Path) -> Iterator[Marvin]:
    inventory = Inventory(
        hosts=(
            Host("S-web1", "web-1", "127.0.0.1", tags=("web",)),
            Host("S-redis1", "redis-1", "127.0.0.2", port=6379, tags=("redis",)),
        ),
        domains=(Asset("D-site", "example.test"),),
        channels=(Channel("C-ops", "ops"),),
    )
    with local_marvin(inventory, tmp_path) as client:
        yield Marvin(*client)


@pytest.mark.parametrize("version", ["0.4.0", "0.5.0"])
def test_notification_sends_to_the_channel(tmp_path: Path, marvin: Marvin, version: str) -> None:
    main = shipped_main(tmp_path, "notification", version)
    outputs = marvin.run(main, "notification", bot_infos=["C-ops"], str_message="redis-1 is down")
    assert outputs == {"status": "success"}
    assert marvin.messages() == [("C-ops", "redis-1 is down")]
    assert marvin.run(main, "notification", bot_infos=["C-ops"], str_message="") == {
        "status": "no data"
    }
    assert marvin.run(main, "notification", bot_infos=["C-x"], str_message="hi") == {
        "status": "failure"
    }
    assert marvin.messages() == [("C-ops", "redis-1 is down")]


def test_notification_050_fills_macros(tmp_path: Path, marvin: Marvin) -> None:
    main = shipped_main(tmp_path, "notification", "0.5.0")
    outputs = marvin.run(
        main,
        "notification",
        bot_infos=["C-ops"],
        str_title="[${env}]",
        str_message="${count} hosts down",
        macros={"env": "prod", "count": 2},
    )
    assert outputs == {"status": "success"}
    assert marvin.messages() == [("C-ops", "[prod]\n2 hosts down")]


def test_blckssettags_tags_and_untags_hosts(tmp_path: Path, marvin: Marvin) -> None:
    main = shipped_main(tmp_path, "blckssettags", "0.3.0")
    inputs = {"name": "redis:unreachable", "asset_type": "server", "ids": ["S-redis1"]}
    assert marvin.run(main, "blckssettags", tagged=True, **inputs) == {
        "result": "tag redis:unreachable added on 1 assets: S-redis1"
    }
    tagged = marvin.get("/api/v1/hosts?search=tag:redis:unreachable")
    assert [host["id"] for host in tagged] == ["S-redis1"]
    assert marvin.run(main, "blckssettags", tagged=0, **inputs) == {
        "result": "tag redis:unreachable removed on 1 assets: S-redis1"
    }
    assert marvin.get("/api/v1/hosts?search=tag:redis:unreachable") == []


def test_callservice_calls_an_sdk_service(tmp_path: Path, marvin: Marvin) -> None:
    main = shipped_main(tmp_path, "callservice", "0.1.0")
    outputs = marvin.run(
        main,
        "callservice",
        service_name="HostsManager",
        method_name="getHosts",
        params='{"search": "tag:web"}',
    )
    assert (outputs["code"], outputs["msg"]) == (200, "success")
    assert [host["id"] for host in outputs["result"]["data"]] == ["S-web1"]
    failed = marvin.run(main, "callservice", service_name="TagManager", method_name="dropAll")
    assert failed["code"] == 404 and failed["result"] == {}

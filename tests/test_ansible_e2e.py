"""Ansible scripts end to end through the real `trek` in a subprocess and a real
ansible-playbook (ansible-core from PyPI in the script's environment): createansible,
validate, packansible, runansible with its hosts and built-in variables, and each fault
of issue 15 for ansible as the one line a user reads."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import last_error, outputs_of, run_module, set_config
from conftest import trek_process as trek

from trek_tasks.kinds import load_kind
from trek_tasks.runtimes import process


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Path]:
    """A new project with the ansible script a1 (as `createansible a1 -y` makes it); its
    local Marvin is stopped afterwards."""
    assert trek("createproject", "flow", "-y", cwd=tmp_path).returncode == 0
    root = tmp_path / "flow"
    done = trek("createansible", "a1", "-y", cwd=root)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "Ansible [a1] creating...\nDone\n",
        "",
    )
    yield root
    trek("shutdownenv", "-p", str(root), cwd=root)


def folder(root: Path) -> Path:
    return root / "src" / "ansible" / "a1"


def write_playbook(root: Path, tasks: list[dict[str, object]]) -> None:
    play = {"hosts": "hosts", "gather_facts": False, "tasks": tasks}
    (folder(root) / "a1.yml").write_text(yaml.safe_dump([play], sort_keys=False))


def write_event(root: Path, **inputs: object) -> None:
    (folder(root) / "inputs" / "event.yml").write_text(yaml.safe_dump(inputs))


def runansible(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return trek("runansible", "-p", str(folder(root)), *args, cwd=root)


def test_the_kind_facts(tmp_path: Path) -> None:
    kind = load_kind("ansible")
    assert (kind.code_base_key, kind.zip_prefix, kind.script_type, kind.localhost) == (
        "ansible_code_base",
        "ansible.",
        "ansible",
        True,
    )
    assert kind.implicit_requirements == ("ansible-core>=2.16",)
    for name in ("a1.para", "a1.yml", "ansible.cfg", "roles/r/tasks/main.yml", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    assert kind.detect(tmp_path, "a1") and not kind.detect(tmp_path, "other")
    assert [p.relative_to(tmp_path).as_posix() for p in kind.files(tmp_path, "a1")] == [
        "a1.para",
        "a1.yml",
        "ansible.cfg",
        "roles/r/tasks/main.yml",
    ]


def test_createansible_validate_pack_and_runansible(flow: Path) -> None:
    here = folder(flow)
    assert sorted(p.relative_to(here).as_posix() for p in here.rglob("*") if p.is_file()) == [
        ".gitignore",
        ".trek/config.json",
        "README.md",
        "a1.para",
        "a1.yml",
        "inputs/event.yml",
        "tests/test_playbook.py",
    ]
    assert trek("validate", cwd=flow).stdout == "Valid. [flow]\n"
    done = trek("packansible", "-p", str(here), cwd=flow)
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(here / "bin" / "ansible.a1-0.1.0.zip") as archive:
        assert archive.namelist() == ["a1.para", "a1.yml"]
    done = runansible(flow)
    assert done.stdout.startswith("starting ansible a1...\n")
    outputs = outputs_of(done)
    assert sorted(outputs) == ["rc", "stderr", "stdout", "vars"]
    assert outputs["rc"] == 0
    assert "127.0.0.1                  : ok=2    changed=0    unreachable=0    failed=0" in str(
        outputs["stdout"]
    )
    assert json.loads(str(outputs["vars"])) == {"echoed": "Hello from Trek"}


def test_the_template_test_runs_as_doit_test(flow: Path) -> None:
    done = run_module("doit", "test", cwd=flow)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_inputs_and_built_ins_are_extra_vars(flow: Path) -> None:
    write_playbook(
        flow,
        [
            {
                "ansible.builtin.set_fact": {
                    "said": "{{ message }}",
                    "count_plus_one": "{{ count + 1 }}",
                    "marvin": "{{ baseUrlWebhook }}",
                    "task": "{{ pn_task_id }}",
                    "has_token": "{{ authorization | length > 0 }}",
                }
            }
        ],
    )
    write_event(flow, localhost=True, message='it\'s "quoted"', count=41)
    facts = json.loads(str(outputs_of(runansible(flow))["vars"]))
    marvin = facts.pop("marvin")
    assert marvin.startswith("http://127.0.0.1:")
    assert facts.pop("task")
    assert facts == {"said": 'it\'s "quoted"', "count_plus_one": 42, "has_token": True}


def test_localhost_option_and_no_hosts(flow: Path) -> None:
    write_event(flow, message="hi")
    done = runansible(flow)
    assert done.returncode == 1
    assert last_error(done) == (
        "trek: error: a1 failed with HTTP 400: ansible script 'a1': no hosts to run on; "
        "set resourceIds (host ids, or _local_ for the local_inventory_file) or localhost: true"
    )
    assert outputs_of(runansible(flow, "--localhost"))["rc"] == 0


def test_local_resolves_the_hosts_of_the_local_inventory(flow: Path) -> None:
    inventory = {"hosts": [{"id": "S-lab", "name": "lab box", "ip": "127.0.0.1", "port": 1}]}
    (flow / "inputs" / "inventory.yml").write_text(yaml.safe_dump(inventory))
    # No SSH server answers here: the host is found, then unreachable (a result, rc 4).
    (folder(flow) / "ansible.cfg").write_text("[ssh_connection]\nssh_args = -o ConnectTimeout=3\n")
    write_event(flow, resourceIds=["_local_"], message="hi")
    outputs = outputs_of(runansible(flow))
    assert outputs["rc"] == 4
    assert "lab-box                    : ok=0    changed=0    unreachable=1" in str(
        outputs["stdout"]
    )


def test_a_failed_task_is_a_result_with_rc_2(flow: Path) -> None:
    write_playbook(flow, [{"ansible.builtin.fail": {"msg": "disk full"}}])
    outputs = outputs_of(runansible(flow))
    assert outputs["rc"] == 2
    assert '"msg": "disk full"' in str(outputs["stdout"])


def test_a_playbook_with_a_syntax_error_is_one_line_in_validate_and_runansible(
    flow: Path,
) -> None:
    (folder(flow) / "a1.yml").write_text("- hosts: hosts\n  tasks:\n    - command: [echo\n")
    done = trek("validate", cwd=flow)
    assert done.returncode == 2
    assert last_error(done).startswith("trek: error: src/ansible/a1/a1.yml:4:1: invalid YAML: ")
    done = runansible(flow)
    assert done.returncode == 1
    assert last_error(done) == (
        "trek: error: a1 failed with HTTP 500: ansible script 'a1': src/ansible/a1/a1.yml:4:1: "
        "YAML parsing failed: While parsing a flow sequence did not find expected ',' or ']'."
    )


def test_a_play_without_hosts_is_a_validate_error(flow: Path) -> None:
    (folder(flow) / "a1.yml").write_text("- gather_facts: no\n  tasks: []\n")
    done = trek("validate", cwd=flow)
    assert done.returncode == 2
    assert last_error(done) == (
        "trek: error: src/ansible/a1/a1.yml:1:3: play 1 of a1.yml has no 'hosts'; use hosts: hosts"
    )


def test_a_run_past_action_timeout_stops_the_whole_process_group(flow: Path) -> None:
    pids = folder(flow) / "pids"
    shell = f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; sleep 60"
    write_playbook(flow, [{"ansible.builtin.shell": shell}])
    set_config(folder(flow), action_timeout=20)  # time for ansible to reach the task
    clock = time.monotonic()
    done = runansible(flow)
    assert done.returncode == 1
    assert last_error(done) == (
        "trek: error: a1 failed with HTTP 504: ansible script 'a1' ran past action_timeout "
        "(20 s): its process group was stopped"
    )
    assert time.monotonic() - clock < 60
    started = [int(line) for line in pids.read_text().split()]
    assert len(started) == 2
    assert not [pid for pid in started if process.pid_alive(pid)]


def test_without_ansible_playbook_the_run_is_one_line(tmp_path: Path) -> None:
    """Where neither the interpreter has ansible-core nor PATH an ansible-playbook."""
    if importlib.util.find_spec("ansible") is not None:
        pytest.skip("trek's own interpreter has ansible-core")
    script = tmp_path / "a1"
    script.mkdir()
    (script / "a1.yml").write_text("- hosts: hosts\n  tasks: []\n")
    code = (
        "from blcks.tools.ansible import AnsibleRunner\n"
        "from blcks.errors import ScriptError\n"
        "try:\n"
        f"    AnsibleRunner().run({str(script)!r}, 'a1', {{'body': {{'localhost': True}}}}, 30)\n"
        "except ScriptError as err:\n"
        "    print(err.code, err.msg)\n"
    )
    env = {"PATH": str(tmp_path), "HOME": os.environ["HOME"]}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout == "500 ansible script 'a1': 'ansible-playbook' was not found on PATH\n", (
        done.stderr
    )

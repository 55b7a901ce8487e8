"""Terraform scripts end to end through the real `trek` in a subprocess and the real
`terraform` binary (terraform_data only: no provider download): createterraform,
validate, packterraform, runterraform apply then destroy with the state carried over,
and each fault of issue 15 for terraform as the one line a user reads."""

from __future__ import annotations

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
from conftest import REPO, last_error, outputs_of, require_tool, run_module, set_config
from conftest import trek_process as trek

from trek_tasks.kinds import load_kind
from trek_tasks.runtimes import process


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Path]:
    """A new project with the terraform script t1 (as `createterraform t1 -y` makes it);
    its local Marvin is stopped afterwards."""
    require_tool("terraform")
    assert trek("createproject", "flow", "-y", cwd=tmp_path).returncode == 0
    root = tmp_path / "flow"
    done = trek("createterraform", "t1", "-y", cwd=root)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "Terraform [t1] creating...\nDone\n",
        "",
    )
    yield root
    trek("shutdownenv", "-p", str(root), cwd=root)


def folder(root: Path) -> Path:
    return root / "src" / "terraform" / "t1"


def write_event(root: Path, **inputs: object) -> None:
    (folder(root) / "inputs" / "event.yml").write_text(yaml.safe_dump(inputs))


def runterraform(root: Path) -> subprocess.CompletedProcess[str]:
    return trek("runterraform", "-p", str(folder(root)), cwd=root)


def test_the_kind_facts(tmp_path: Path) -> None:
    kind = load_kind("terraform")
    assert (kind.code_base_key, kind.zip_prefix, kind.script_type, kind.localhost) == (
        "terraform_code_base",
        "terraform.",
        "terraform",
        False,
    )
    assert kind.implicit_requirements == ()
    for name in ("t1.para", "t1.tf", "variables.tf", "terraform.tfstate", "notes.txt"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / ".terraform").mkdir()
    (tmp_path / ".terraform" / "x.tf").write_text("x\n")
    assert kind.detect(tmp_path, "t1") and not kind.detect(tmp_path, "other")
    assert [p.name for p in kind.files(tmp_path, "t1")] == ["t1.para", "t1.tf", "variables.tf"]


def test_createterraform_validate_pack_and_runterraform(flow: Path) -> None:
    here = folder(flow)
    assert sorted(p.relative_to(here).as_posix() for p in here.rglob("*") if p.is_file()) == [
        ".gitignore",
        ".trek/config.json",
        "README.md",
        "inputs/event.yml",
        "t1.para",
        "t1.tf",
        "tests/test_terraform.py",
        "variables.tf",
        "versions.tf",
    ]
    assert trek("validate", cwd=flow).stdout == "Valid. [flow]\n"
    done = trek("packterraform", "-p", str(here), cwd=flow)
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(here / "bin" / "terraform.t1-0.1.0.zip") as archive:
        assert archive.namelist() == ["t1.para", "t1.tf", "variables.tf", "versions.tf"]
    done = runterraform(flow)
    assert done.stdout.startswith("starting terraform t1...\n")
    outputs = outputs_of(done)
    assert sorted(outputs) == ["outputs", "stdout", "tfstate"]
    assert outputs["outputs"] == {"message": "Hello from Trek"}
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in outputs["stdout"]
    assert [r["type"] for r in outputs["tfstate"]["resources"]] == ["terraform_data"]
    assert not (here / "terraform.tfstate").exists()  # each run works in a temporary copy
    assert not (here / ".terraform").exists()


def test_the_template_test_runs_as_doit_test(flow: Path) -> None:
    done = run_module("doit", "test", cwd=flow)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_state_carries_over_from_apply_to_destroy(flow: Path) -> None:
    applied = outputs_of(runterraform(flow))
    write_event(flow, message="Changed", tfstate=applied["tfstate"])
    changed = outputs_of(runterraform(flow))
    assert "Resources: 0 added, 1 changed, 0 destroyed." in changed["stdout"]
    assert changed["outputs"] == {"message": "Changed"}
    write_event(flow, message="Changed", terraform_command="destroy", tfstate=changed["tfstate"])
    destroyed = outputs_of(runterraform(flow))
    assert "Destroy complete! Resources: 1 destroyed." in destroyed["stdout"]
    assert destroyed["tfstate"]["resources"] == []
    assert destroyed["outputs"] == {}


def test_an_unknown_command_is_bad_input(flow: Path) -> None:
    write_event(flow, message="hi", terraform_command="plan")
    done = runterraform(flow)
    assert done.returncode == 1
    assert last_error(done) == (
        "trek: error: t1 failed with HTTP 400: terraform script 't1': terraform_command "
        "must be apply or destroy, not 'plan'"
    )


def test_a_syntax_error_is_one_line_in_validate_and_runterraform(flow: Path) -> None:
    (folder(flow) / "t1.tf").write_text('resource "terraform_data" "x" {\n  input = \n}\n')
    done = trek("validate", cwd=flow)
    assert done.returncode == 2
    assert last_error(done) == "trek: error: src/terraform/t1/t1.tf:2: Invalid expression"
    done = runterraform(flow)
    assert done.returncode == 1
    assert last_error(done) == (
        "trek: error: t1 failed with HTTP 500: terraform script 't1': "
        "src/terraform/t1/t1.tf:2: Invalid expression"
    )


def test_an_error_terraform_finds_while_applying_names_the_file(flow: Path) -> None:
    (folder(flow) / "t1.tf").write_text('output "broken" {\n  value = var.missing\n}\n')
    assert trek("validate", cwd=flow).returncode == 0  # it parses
    done = runterraform(flow)
    assert done.returncode == 1
    assert last_error(done) == (
        "trek: error: t1 failed with HTTP 500: terraform script 't1': "
        "src/terraform/t1/t1.tf:2: Reference to undeclared input variable"
    )


def test_a_run_past_action_timeout_stops_the_whole_process_group(flow: Path) -> None:
    pids = folder(flow) / "pids"
    command = f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; sleep 60"
    (folder(flow) / "slow.tf").write_text(
        'resource "terraform_data" "slow" {\n'
        f'  provisioner "local-exec" {{\n    command = {json.dumps(command)}\n  }}\n}}\n'
    )
    set_config(folder(flow), action_timeout=10)
    clock = time.monotonic()
    done = runterraform(flow)
    assert done.returncode == 1
    assert last_error(done) == (
        "trek: error: t1 failed with HTTP 504: terraform script 't1' ran past action_timeout "
        "(10 s): its process group was stopped"
    )
    assert time.monotonic() - clock < 30
    started = [int(line) for line in pids.read_text().split()]
    assert len(started) == 2
    assert not [pid for pid in started if process.pid_alive(pid)]


def test_without_terraform_on_path_the_run_is_one_line(flow: Path) -> None:
    binary = Path(require_tool("terraform")).parent
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != binary)
    done = subprocess.run(
        [sys.executable, "-m", "trek_tasks", "runterraform", "-p", str(folder(flow))],
        cwd=flow,
        env={**os.environ, "PYTHONPATH": str(REPO), "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert last_error(done) == (
        "trek: error: t1 failed with HTTP 500: terraform script 't1': 'terraform' was not found "
        "on PATH; install it from https://developer.hashicorp.com/terraform/install"
    )

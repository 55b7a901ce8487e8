"""Shell scripts end to end through the real `trek` in a subprocess: createshell, validate,
pack -a, runshell and `trek run` of a graph with a shell node; inputs, outputs and every
fault of issue 15 for shell as the one line a user reads."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import last_error, outputs_of, run_module, set_config
from conftest import trek_process as trek

from trek_tasks.runtimes import process


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Path]:
    """A new project with the shell script s1 (as `createshell s1 -y` makes it); its
    local Marvin is stopped afterwards."""
    assert trek("createproject", "flow", "-y", cwd=tmp_path).returncode == 0
    root = tmp_path / "flow"
    done = trek("createshell", "s1", "-y", cwd=root)
    assert (done.returncode, done.stdout, done.stderr) == (0, "Shell [s1] creating...\nDone\n", "")
    yield root
    trek("shutdownenv", "-p", str(root), cwd=root)


def script_dir(root: Path) -> Path:
    return root / "src" / "shell" / "s1"


def write_script(root: Path, body: str, mode: int = 0o755) -> Path:
    path = script_dir(root) / "s1.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


def drop_outputs(root: Path) -> None:
    para = script_dir(root) / "s1.para"
    data = yaml.safe_load(para.read_text())
    del data["outputs"]
    para.write_text(yaml.safe_dump(data, sort_keys=False))


def runshell(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return trek("runshell", "-p", str(script_dir(root)), *args, cwd=root)


def test_createshell_validate_pack_and_runshell(flow: Path) -> None:
    folder = script_dir(flow)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        ".gitignore",
        ".trek/config.json",
        "README.md",
        "inputs/event.yml",
        "s1.para",
        "s1.sh",
        "tests/test_script.py",
    ]
    assert stat.S_IMODE((folder / "s1.sh").stat().st_mode) & 0o111
    done = trek("validate", cwd=flow)
    assert (done.returncode, done.stdout) == (0, "Valid. [flow]\n")
    done = trek("pack", "-a", cwd=flow)
    assert done.returncode == 0, done.stderr
    assert "Packing shell: src/shell/s1\n" in done.stdout
    assert sorted(p.name for p in (flow / "bin").iterdir()) == [
        "flow-0.1.0.zip",
        "shell.s1-0.1.0.zip",
    ]
    with zipfile.ZipFile(flow / "bin" / "shell.s1-0.1.0.zip") as packed:
        modes = {info.filename: info.external_attr >> 16 for info in packed.infolist()}
    assert modes == {"s1.para": 0o100644, "s1.sh": 0o100755}
    done = runshell(flow)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("starting shell s1...\n")
    assert outputs_of(done) == {"greeting": "Hello, Trek!"}


def test_the_template_test_runs_as_doit_test(flow: Path) -> None:
    done = run_module("doit", "test:s1", cwd=flow)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_inputs_arrive_as_variables_and_as_a_json_file(flow: Path) -> None:
    write_script(
        flow,
        'printf \'{"who": "%s", "count": "%s", "flags": %s, "path_kept": %s, "file": %s}\\n\' '
        '"$WHO" "$COUNT" "$FLAGS" "$([ "$PATH" != /nope ] && echo true || echo false)" '
        '"$(cat "$TREK_INPUTS")"\n',
    )
    inputs = {"who": "Ops", "count": 3, "flags": {"a": True}, "path": "/nope"}
    (script_dir(flow) / "inputs" / "event.yml").write_text(yaml.safe_dump(inputs))
    done = runshell(flow)
    assert done.returncode == 0, done.stderr
    assert outputs_of(done) == {
        "who": "Ops",
        "count": "3",
        "flags": {"a": True},
        "path_kept": True,
        "file": inputs,
    }


def test_localhost_sets_the_input(flow: Path) -> None:
    write_script(flow, 'printf \'{"localhost": "%s"}\\n\' "${LOCALHOST:-unset}"\n')
    assert outputs_of(runshell(flow)) == {"localhost": "unset"}
    assert outputs_of(runshell(flow, "--localhost")) == {"localhost": "true"}


def test_a_kind_without_localhost_refuses_it(flow: Path) -> None:
    assert trek("createblcks", "b1", "-y", cwd=flow).returncode == 0
    done = trek("runblcks", "-p", str(flow / "src" / "blcks" / "b1"), "--localhost", cwd=flow)
    assert done.returncode == 2
    assert last_error(done) == "trek: error: --localhost: blcks scripts have no --localhost"


def test_without_json_and_declared_outputs_the_outputs_are_rc_stdout_stderr(flow: Path) -> None:
    drop_outputs(flow)
    write_script(flow, "echo hello\necho careful >&2\n")
    done = runshell(flow)
    assert done.returncode == 0, done.stderr
    assert outputs_of(done) == {"rc": 0, "stdout": "hello\n", "stderr": "careful\n"}


FAULTS = {
    "not executable": (
        lambda root: write_script(root, 'echo "{}"\n', mode=0o644),
        "s1.sh: not executable; run `chmod +x s1.sh`",
    ),
    "CRLF": (
        lambda root: (script_dir(root) / "s1.sh").write_bytes(b"#!/bin/sh\r\necho '{}'\r\n"),
        "s1.sh:1: CRLF (Windows) line ends: the shell would read '\\r' as part of each "
        "command; convert them with `sed -i 's/\\r$//'`",
    ),
    "no #! line": (
        lambda root: (script_dir(root) / "s1.sh").write_text("echo '{}'\n"),
        "s1.sh:1: no '#!' line naming its shell; start it with #!/bin/sh",
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_script_that_cannot_run_is_one_line_in_validate_runshell_and_run(
    flow: Path, fault: str
) -> None:
    make, said = FAULTS[fault]
    make(flow)
    done = trek("validate", cwd=flow)
    assert done.returncode == 2
    assert last_error(done) == f"trek: error: src/shell/s1/{said}"
    done = runshell(flow)
    assert done.returncode == 1
    assert last_error(done) == f"trek: error: s1 failed with HTTP 500: {said}"


def test_stdout_without_json_when_outputs_are_declared(flow: Path) -> None:
    write_script(flow, "echo all good\n")
    done = runshell(flow)
    assert done.returncode == 1
    assert last_error(done) == (
        "trek: error: s1 failed with HTTP 500: s1.sh: its para declares outputs (greeting) "
        "but it wrote no JSON object on stdout: 'all good'"
    )


def test_a_non_zero_exit_fails_with_the_last_stderr_line(flow: Path) -> None:
    write_script(flow, "echo working >&2\necho boom >&2\nexit 3\n")
    done = runshell(flow)
    assert done.returncode == 1
    assert last_error(done) == (
        "trek: error: s1 failed with HTTP 500: s1.sh exited with status 3: boom"
    )


def test_a_run_past_action_timeout_stops_the_whole_process_group(flow: Path) -> None:
    pids = script_dir(flow) / "pids"
    write_script(flow, f"sleep 60 &\necho $! > {pids}\necho $$ >> {pids}\nsleep 60\n")
    set_config(script_dir(flow), action_timeout=3)
    clock = time.monotonic()
    done = runshell(flow)
    assert done.returncode == 1
    assert last_error(done) == (
        "trek: error: s1 failed with HTTP 504: s1.sh ran past action_timeout (3 s): "
        "its process group was stopped"
    )
    assert time.monotonic() - clock < 20
    started = [int(line) for line in pids.read_text().split()]
    assert len(started) == 2
    assert not [pid for pid in started if process.pid_alive(pid)]


def graph_with_shell_node(root: Path) -> None:
    graph_path = root / "src" / "graph.yml"
    graph = yaml.safe_load(graph_path.read_text())
    action = {"type": "action", "title": "greet", "description": "", "script": {"id": "s1"}}
    graph["graph"]["nodes"].insert(1, {"id": "2", "metadata": action})
    graph["graph"]["edges"] = [{"source": "0", "target": "2"}, {"source": "2", "target": "1"}]
    graph_path.write_text(yaml.safe_dump(graph, sort_keys=False))
    data = {"0-2": {"who": {"type": "string", "value": "Ops"}}}
    (root / "inputs" / "data.yml").write_text(yaml.safe_dump(data))


def test_a_graph_runs_a_shell_node(flow: Path) -> None:
    graph_with_shell_node(flow)
    done = trek("run", "--once", cwd=flow)
    assert done.returncode == 0, done.stderr
    assert "[FINISH] id: 2, type: action, scriptId: s1, scriptType: shell\n" in done.stdout
    record = json.loads((flow / ".trek" / "runs" / "last.json").read_text())
    node = next(n for n in record["nodes"] if n["id"] == "2")
    assert node["outputs"] == {"greeting": "Hello, Ops!"}


def test_a_failing_shell_node_names_the_node(flow: Path) -> None:
    graph_with_shell_node(flow)
    (script_dir(flow) / "s1.sh").chmod(0o644)
    done = trek("run", "--once", cwd=flow)  # validated before anything starts
    assert done.returncode == 2
    assert last_error(done) == (
        "trek: error: src/shell/s1/s1.sh: not executable; run `chmod +x s1.sh`"
    )
    write_script(flow, "echo boom >&2\nexit 3\n")
    done = trek("run", "--once", cwd=flow)
    assert done.returncode == 1
    assert last_error(done) == (
        "trek: error: Workflow [flow] failed at node 2 (s1): failed with HTTP 500: "
        "s1.sh exited with status 3: boom"
    )


def test_initshell_fits_an_existing_para(flow: Path, tmp_path: Path) -> None:
    folder = tmp_path / "probe"
    folder.mkdir()
    para = {
        "id": "probe",
        "version": "0.2.0",
        "inputs": {"host": {"type": "string", "examples": ["db1"]}},
        "required": ["host"],
        "outputs": {"up": {"type": "boolean"}, "detail": {"type": "string"}},
    }
    (folder / "probe.para").write_text(yaml.safe_dump(para))
    done = trek("initshell", "-p", str(folder), "-y", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "Shell [probe] initializing..."
    assert os.access(folder / "probe.sh", os.X_OK)
    assert yaml.safe_load((folder / "inputs" / "event.yml").read_text()) == {"host": "db1"}
    done = trek("runshell", "-p", str(folder), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert outputs_of(done) == {"up": False, "detail": ""}


def test_an_installed_shell_script_keeps_its_exec_bit(flow: Path, tmp_path: Path) -> None:
    assert trek("pack", "-a", cwd=flow).returncode == 0
    assert trek("createproject", "other", "-y", cwd=tmp_path).returncode == 0
    other = tmp_path / "other"
    done = trek("install", str(flow / "bin" / "shell.s1-0.1.0.zip"), cwd=other)
    assert done.returncode == 0, done.stderr
    installed = other / "trek_packages" / "s1"
    assert os.access(installed / "s1.sh", os.X_OK)
    assert not os.access(installed / "s1.para", os.X_OK)


def test_run_group_names_a_missing_program(tmp_path: Path) -> None:
    from blcks.errors import ScriptError
    from blcks.tools import run_group

    with pytest.raises(ScriptError) as caught:
        run_group(["trek-no-such-tool"], str(tmp_path), dict(os.environ), 5.0, "t1.tf")
    assert caught.value.msg == "t1.tf: 'trek-no-such-tool' was not found on PATH"


def test_serve_refuses_an_unknown_kind_in_one_line(tmp_path: Path) -> None:
    done = run_module(
        "blcks.serve", "--script-dir", str(tmp_path), "--port", "0", "--kind", "perl", cwd=tmp_path
    )
    assert done.returncode == 3
    assert done.stderr.splitlines()[0] == (
        f"blcks.serve: cannot import handler from {tmp_path}: ValueError: unknown script kind "
        "'perl'; known: blcks, shell, ansible, terraform"
    )

"""The `trek` command line: version, help, validate, errors as one line with exit codes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import REPO, build_reference

from trek_tasks import __version__
from trek_tasks.cli import SCRIPT_KINDS, main

NOT_A_PROJECT = (
    "not a Trek project (no manifest.json here or above); "
    "run `trek createproject NAME` or `trek init`"
)


@pytest.fixture
def ref(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = build_reference(tmp_path / "host.detect.redis")
    monkeypatch.chdir(root)
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "version") == (0, f"trek-tasks {__version__}\n", "")
    assert run(capsys, "--version") == (0, f"trek-tasks {__version__}\n", "")


SCRIPT_FOLDER_COMMANDS = {
    *(f"{verb}{kind}" for kind in SCRIPT_KINDS for verb in ("init", "run", "pack", "deploy")),
    "pushblcks",
    "buildblcks",
}


def test_every_path_option_says_what_the_folder_is() -> None:
    from trek_tasks.cli import COMMANDS, cli

    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        helps = [
            p.help or "" for p in command.params if isinstance(p, click.Option) and "-p" in p.opts
        ]
        if not helps:
            continue
        if name in SCRIPT_FOLDER_COMMANDS:
            assert helps[0].startswith("Script folder"), name
        elif name == "init":
            assert helps[0].startswith("Folder to make a project of"), name
        elif name == "installtemplate":
            assert helps[0].startswith("Template for Trek project"), name
        else:
            assert helps[0].startswith("Project folder"), name


def test_the_cli_names_the_registered_kinds_each_with_five_commands() -> None:
    from trek_tasks.cli import COMMANDS
    from trek_tasks.kinds import KINDS

    assert SCRIPT_KINDS == tuple(KINDS)
    for kind in KINDS:
        for verb in ("create", "init", "run", "pack", "deploy"):
            assert COMMANDS[f"{verb}{kind}"] == f"scripts:{verb}{kind}"


def test_help_lists_the_foundation_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--help")
    assert (code, err) == (0, "")
    assert out.startswith("Usage: trek [OPTIONS] COMMAND [ARGS]...\n")
    listed = out.split("Commands:\n", 1)[1]
    commands = {line.split()[0] for line in listed.splitlines() if line.startswith("  ")}
    assert {"version", "config", "validate", "graph", "pack", "packblcks"} <= commands


@pytest.mark.parametrize("command", ["version", "config", "validate", "graph", "pack", "packblcks"])
def test_every_command_takes_verbose_and_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert "-v, --verbose" in out


def test_python_m_trek_tasks(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "trek_tasks", "version"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"trek-tasks {__version__}\n", "")


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "nope") == (
        2,
        "",
        "trek: error: No such command 'nope'. (see `trek --help`)\n",
    )


def test_a_near_miss_command_suggests_the_lazily_loaded_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(capsys, "confi") == (
        2,
        "",
        "trek: error: No such command 'confi'. Did you mean 'config'? (see `trek --help`)\n",
    )


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "pack", "--bogus") == (
        2,
        "",
        "trek: error: No such option '--bogus'. Did you mean '--verbose'? "
        "(see `trek pack --help`)\n",
    )


def test_a_bad_option_value_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "logs", "--tail", "-3") == (
        2,
        "",
        "trek: error: Invalid value for '--tail': -3 is not in the range x>=0. "
        "(see `trek logs --help`)\n",
    )


@pytest.mark.parametrize("command", ["validate", "graph", "pack"])
def test_outside_a_project_is_one_line_and_exit_2(
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    assert run(capsys, command, "-p", "empty") == (2, "", f"trek: error: empty: {NOT_A_PROJECT}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert list((tmp_path / "empty").iterdir()) == []


def test_path_that_is_a_file(ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "graph", "-p", "manifest.json")
    assert (code, out) == (2, "")
    assert err == (
        "trek: error: Invalid value for '-p' / '--path': Directory 'manifest.json' is a file. "
        "(see `trek graph --help`)\n"
    )


def test_traceback_only_with_verbose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "graph")
    assert code == 2 and "Traceback" not in err
    code, _, err = run(capsys, "graph", "-v")
    assert code == 2
    assert err.startswith("Traceback (most recent call last):\n")
    assert err.endswith(f"trek: error: .: {NOT_A_PROJECT}\n")


def test_verbose_before_the_command_counts_for_that_invocation_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "-v", "graph")
    assert code == 2 and err.startswith("Traceback (most recent call last):\n")
    assert run(capsys, "graph") == (2, "", f"trek: error: .: {NOT_A_PROJECT}\n")


def test_validate_the_reference_project(ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate")
    assert (code, out) == (0, "Valid. [host.detect.redis]\n")
    assert all(line.startswith("trek: warning: ") for line in err.splitlines())


def test_edge_to_a_missing_node_names_graph_yml_and_the_line(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = ref / "src" / "graph.yml"
    text = graph.read_text()
    graph.write_text(text + "\n    - source: '5'\n      target: '7'\n")
    line = len(text.splitlines()) + 2
    code, out, err = run(capsys, "validate")
    assert (code, out) == (2, "")
    assert err.startswith(f"trek: error: src/graph.yml:{line}:")
    assert err.count("\n") == 1 and "'7'" in err
    assert not (ref / ".trek" / "validated.json").exists()


def test_script_not_installed_says_how_to_fix_it(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(ref / "trek_packages" / "notification")
    code, out, err = run(capsys, "validate")
    assert (code, out) == (2, "")
    assert err.startswith("trek: error: src/graph.yml:")
    assert "'notification' is not installed" in err
    assert err.endswith("run `trek install`\n")


def test_malformed_graph_is_one_line_for_every_command(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ref / "src" / "graph.yml").write_text("graph:\n  nodes: [\n")
    expected = "trek: error: src/graph.yml:3:1: invalid YAML: did not find expected node content\n"
    for command in ("graph", "pack"):
        assert run(capsys, command) == (2, "", expected)
    code, _, err = run(capsys, "validate")
    assert code == 2 and err.startswith("trek: error: src/graph.yml:") and err.count("\n") == 1
    assert not (ref / "bin").exists()


def test_malformed_manifest(ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ref / "manifest.json").write_text('{"entry": ')
    assert run(capsys, "pack") == (
        2,
        "",
        "trek: error: manifest.json:1:11: invalid JSON: Expecting value\n",
    )

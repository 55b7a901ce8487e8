"""Deploying a copy of the example to a local Marvin running as its own process, with
`trek` and `doit` as real processes too: the walkthrough's Step 6 over HTTP, a fault
injected on the server's side, and a deploy that has no terminal to ask."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import kill, set_config

import trek_tasks
from trek_tasks.marvin.server import FAIL_ONCE_ENV
from trek_tasks.marvin.tokens import issue_token

SECRET = "e2e-deploy-secret-long-enough-to-sign"
WORKFLOW_ZIP = Path("bin") / "host.detect.redis-0.1.0.zip"
SCRIPT_ZIP = Path("bin") / "blcks.detectredis-0.1.0.zip"
HANDLER = Path("src") / "blcks" / "detectredis" / "handler" / "handler.py"
TIMEOUT = 300


@dataclass
class Marvin:
    url: str
    token: str
    proc: subprocess.Popen[str]


StartMarvin = Callable[..., Marvin]


def _env(**extra: str) -> dict[str, str]:
    root = str(Path(trek_tasks.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@pytest.fixture
def start_marvin(tmp_path: Path) -> Iterator[StartMarvin]:
    """Start a standalone local Marvin (``**env``: its extra environment)."""
    started: list[subprocess.Popen[str]] = []

    def start(**env: str) -> Marvin:
        folder = tmp_path / f"marvin-{len(started)}"
        folder.mkdir()
        (folder / "secret").write_text(SECRET)
        command = [sys.executable, "-m", "trek_tasks.marvin.server", "--db", str(folder / "m.db")]
        proc = subprocess.Popen(
            [*command, "--secret-file", str(folder / "secret"), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_env(**env),
        )
        started.append(proc)
        assert proc.stdout is not None
        found = re.fullmatch(r"local Marvin listening on (\S+)\n", proc.stdout.readline())
        assert found, "the local Marvin did not start"
        return Marvin(found.group(1), issue_token(SECRET, "trek"), proc)

    yield start
    for proc in started:
        kill(proc.pid)
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()


def run(root: Path, *args: str, module: str = "trek_tasks") -> subprocess.CompletedProcess[str]:
    """``python -m <module> args`` in ``root`` with no terminal on stdin."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=root,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without validate's warnings about the installed scripts' paras."""
    return [line for line in result.stderr.splitlines() if "trek: warning:" not in line]


def deploying(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("Deploying: ")]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(root: Path) -> list[list[str]]:
    result = run(root, "deployed")
    assert result.returncode == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines() if not line.startswith("Marvin:")]


def test_step_6_deploys_both_then_nothing_then_only_what_changed(
    project: Path, start_marvin: StartMarvin
) -> None:
    marvin = start_marvin()
    set_config(project, marvin_url=marvin.url, marvin_JWT=marvin.token)

    first = run(project, "deploy", "-a", "--autopack", "-y")
    assert first.returncode == 0, first.stderr
    assert errors(first) == []
    assert deploying(first.stdout) == [f"Deploying: {SCRIPT_ZIP}", f"Deploying: {WORKFLOW_ZIP}"]
    assert listing(project) == [
        ["workflow", "host.detect.redis", "0.1.0", sha(project / WORKFLOW_ZIP)],
        ["script", "detectredis", "0.1.0", sha(project / SCRIPT_ZIP)],
    ]

    second = run(project, "deploy", "-a", "-y")
    assert second.returncode == 0, second.stderr
    assert deploying(second.stdout) == []
    assert second.stdout.count("Unchanged: ") == 2

    (project / HANDLER).write_text((project / HANDLER).read_text() + "# edited\n")
    third = run(project, "deploy", "-a", "--autopack", "-y")
    assert third.returncode == 0, third.stderr
    assert deploying(third.stdout) == [f"Deploying: {SCRIPT_ZIP}"]
    assert f"Unchanged: {WORKFLOW_ZIP}" in third.stdout
    assert listing(project)[1] == ["script", "detectredis", "0.1.0", sha(project / SCRIPT_ZIP)]

    # doit deploy with nothing changed: every task up to date, nothing uploaded
    dodo = run(project, "deploy", module="doit")
    assert dodo.returncode == 0, dodo.stderr
    assert "-- deploy:detectredis" in dodo.stdout and "-- deploy:workflow" in dodo.stdout
    assert "Deploying:" not in dodo.stdout


def test_the_issue_sequence_with_trek_marvin_serve_and_a_non_interactive_login(
    project: Path, tmp_path: Path
) -> None:
    from marvin_served import served

    with served(tmp_path / "marvin-data") as marvin:
        login = subprocess.run(
            [sys.executable, "-m", "trek_tasks", "login", "--url", marvin.url],
            cwd=project,
            env=_env(TREK_MARVIN_USERNAME="trek", TREK_MARVIN_PASSWORD=marvin.first_password or ""),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert login.returncode == 0, login.stderr
        first = run(project, "deploy", "-a", "--autopack", "-y")
        assert first.returncode == 0, first.stderr
        assert listing(project) == [
            ["workflow", "host.detect.redis", "0.1.0", sha(project / WORKFLOW_ZIP)],
            ["script", "detectredis", "0.1.0", sha(project / SCRIPT_ZIP)],
        ]
        second = run(project, "deploy", "-a", "-y")
        assert deploying(second.stdout) == [] and second.stdout.count("Unchanged: ") == 2
        (project / HANDLER).write_text((project / HANDLER).read_text() + "# edited\n")
        third = run(project, "deploy", "-a", "--autopack", "-y")
        assert deploying(third.stdout) == [f"Deploying: {SCRIPT_ZIP}"], third.stderr


def test_no_terminal_and_no_yes_exits_non_zero_without_waiting(
    project: Path, start_marvin: StartMarvin
) -> None:
    marvin = start_marvin()
    set_config(project, marvin_url=marvin.url, marvin_JWT=marvin.token)
    assert run(project, "deploy", "-a", "--autopack").returncode == 0
    (project / HANDLER).write_text((project / HANDLER).read_text() + "# edited\n")

    result = run(project, "deploy", "-a", "--autopack")  # stdin is /dev/null: no tty
    assert result.returncode == 1
    [line] = errors(result)
    assert "there is no terminal to ask whether to overwrite it; pass -y" in line
    assert line.endswith(
        "deployed: nothing; not deployed: script detectredis 0.1.0, "
        "workflow host.detect.redis 0.1.0"
    )
    assert "Do you want to overwrite" not in result.stdout

    dodo = run(project, "deploy", module="doit")  # doit never asks either
    assert dodo.returncode != 0
    assert "was not overwritten; answer y, pass -y (doit deploy: overwrite=1)" in dodo.stdout
    assert run(project, "deploy", "overwrite=1", module="doit").returncode == 0


def test_a_500_in_the_middle_then_a_rerun_deploys_the_rest(
    project: Path, start_marvin: StartMarvin
) -> None:
    marvin = start_marvin(**{FAIL_ONCE_ENV: "template:host.detect.redis"})
    set_config(project, marvin_url=marvin.url, marvin_JWT=marvin.token)

    failed = run(project, "deploy", "-a", "--autopack", "-y")
    assert failed.returncode == 1
    [line] = errors(failed)
    assert line.startswith(f"trek: error: {WORKFLOW_ZIP}: PUT {marvin.url}/api/v1/templates/")
    assert "HTTP 500: injected fault" in line
    assert line.endswith(
        "; deployed: script detectredis 0.1.0; not deployed: workflow host.detect.redis 0.1.0"
    )
    assert marvin.token not in failed.stdout + failed.stderr
    assert [row[0] for row in listing(project)] == ["script"]

    again = run(project, "deploy", "-a", "-y")
    assert again.returncode == 0, again.stderr
    assert deploying(again.stdout) == [f"Deploying: {WORKFLOW_ZIP}"]
    assert [row[0] for row in listing(project)] == ["workflow", "script"]


def test_a_marvin_that_went_away_is_one_line(project: Path, start_marvin: StartMarvin) -> None:
    marvin = start_marvin()
    set_config(project, marvin_url=marvin.url, marvin_JWT=marvin.token)
    kill(marvin.proc.pid)
    result = run(project, "deploy", "-a", "--autopack", "-y")
    assert result.returncode == 1
    [line] = errors(result)
    assert line.startswith(f"trek: error: .trek/config.json: the Marvin at marvin_url {marvin.url}")
    assert "does not answer (cannot connect: Connection refused)" in line

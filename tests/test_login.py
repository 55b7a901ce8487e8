"""`trek login` against a real standalone local Marvin over HTTP: the token kept 0600 in
the project (or global) config, masked by `trek config -l`, used through marvin.target."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from marvin_served import Served, served

from trek_tasks.cli import main
from trek_tasks.errors import StepFailed
from trek_tasks.marvin.target import check_answers, check_token, remote
from trek_tasks.marvin.tokens import issue_token
from trek_tasks.project import Project

Run = tuple[int, str, str]


@pytest.fixture(scope="module")
def marvin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("standalone") / "marvin") as running:
        yield running


@pytest.fixture
def password(marvin: Served) -> str:
    assert marvin.first_password
    return marvin.first_password


@pytest.fixture
def in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    for name in ("TREK_MARVIN_URL", "TREK_MARVIN_USERNAME", "TREK_MARVIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return project


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def config_of(project: Path) -> Path:
    return project / ".trek" / "config.json"


def test_login_from_stdin_keeps_the_token_0600_and_masked(
    in_project: Path,
    marvin: Served,
    password: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdin(monkeypatch, password + "\n")
    argv = ("login", "--url", marvin.url, "--username", "trek", "--password-stdin")
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    assert out == (
        f"Login to Marvin: [{marvin.url}]\n"
        "Logged in as trek; the token is kept in .trek/config.json\n"
    )
    config = config_of(in_project)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = json.loads(config.read_text())
    assert saved["marvin_url"] == marvin.url and saved["marvin_JWT"].count(".") == 2
    assert saved["marvin_JWT"] not in out + err and password not in out + err
    code, out, _ = run(capsys, "config", "-l")
    assert code == 0 and "marvin_JWT=********" in out.splitlines()
    assert saved["marvin_JWT"] not in out
    # what deploy uses: the one reader of marvin_url/marvin_JWT gives a working client
    target = remote(Project.load(in_project, workflow=False).config)
    assert target is not None and not target.local
    assert target.client.get("/api/v1/users/me")["username"] == "trek"
    check_answers(target)  # answers, token not expired


def test_login_from_the_environment_into_the_global_config(
    in_project: Path,
    marvin: Served,
    password: str,
    isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TREK_MARVIN_URL", marvin.url)
    monkeypatch.setenv("TREK_MARVIN_USERNAME", "trek")
    monkeypatch.setenv("TREK_MARVIN_PASSWORD", password)
    before = config_of(in_project).read_text()
    code, out, err = run(capsys, "login", "--global")
    assert (code, err) == (0, ""), out
    global_config = isolated_home / ".trek" / "config.json"
    assert stat.S_IMODE(global_config.stat().st_mode) == 0o600
    assert json.loads(global_config.read_text())["marvin_url"] == marvin.url
    assert config_of(in_project).read_text() == before
    target = remote(Project.load(in_project, workflow=False).config)
    assert target is not None and target.source == global_config
    assert target.client.get("/api/v1/users/me")["username"] == "trek"


def test_prompts_in_the_order_trek_asks(
    in_project: Path,
    marvin: Served,
    password: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from trek_tasks.cli import cli
    from trek_tasks.commands import Session

    monkeypatch.setattr("trek_tasks.commands.marvin._interactive", lambda: True)
    answers = f"trek\n{password}\n{marvin.url}\n"
    result = CliRunner().invoke(cli, ["login"], input=answers, obj=Session())
    assert result.exit_code == 0, result.output
    prompts = [line.split(":")[0] for line in result.output.splitlines()[:3]]
    assert prompts == ["Username", "Password", "Marvin url"]
    assert password not in result.output
    assert json.loads(config_of(in_project).read_text())["marvin_url"] == marvin.url


def test_wrong_password_is_one_line_and_keeps_nothing(
    in_project: Path,
    marvin: Served,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = config_of(in_project).read_text()
    stdin(monkeypatch, "not-the-password\n")
    argv = ("login", "--url", marvin.url, "--username", "trek", "--password-stdin")
    code, _, err = run(capsys, *argv)
    assert (code, err) == (2, f"trek: error: login to {marvin.url}: wrong username or password\n")
    assert config_of(in_project).read_text() == before


def test_an_unreachable_marvin_is_one_line(
    in_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    stdin(monkeypatch, "whatever\n")
    code, _, err = run(capsys, "login", "--url", url, "--username", "trek", "--password-stdin")
    assert code == 1
    assert err == (
        f"trek: error: login to {url}: cannot connect: Connection refused; is a Marvin running "
        "there? check the URL (--url, TREK_MARVIN_URL or config marvin_url)\n"
    )


def test_no_terminal_and_no_password_stops_at_once(
    in_project: Path,
    marvin: Served,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdin(monkeypatch, "")
    code, _, err = run(capsys, "login", "--url", marvin.url, "--username", "trek")
    assert (code, err) == (
        2,
        "trek: error: password: no password and no terminal to ask on: "
        "pass --password-stdin or set TREK_MARVIN_PASSWORD\n",
    )
    code, _, err = run(capsys, "login", "--url", marvin.url)
    assert (code, err) == (
        2,
        "trek: error: login: no username: pass --username or set TREK_MARVIN_USERNAME\n",
    )


def test_outside_a_project_says_to_use_global(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "login", "--url", "http://127.0.0.1:1")
    assert code == 2
    assert err.startswith("trek: error: ") and "`trek login --global`" in err
    assert err.count("\n") == 1


def test_an_expired_token_is_one_line_before_any_call_and_401_from_marvin(
    in_project: Path, marvin: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = (marvin.data / "secret").read_text().strip()
    config = config_of(in_project)
    data = json.loads(config.read_text())
    expired = issue_token(secret, "trek", ttl_seconds=-60)
    data.update(marvin_url=marvin.url, marvin_JWT=expired)
    config.write_text(json.dumps(data))
    target = remote(Project.load(in_project, workflow=False).config)
    assert target is not None
    with pytest.raises(StepFailed) as caught:
        check_token(target)
    said = str(caught.value)
    assert said.startswith(".trek/config.json: the marvin_JWT expired at ")
    assert said.endswith(" UTC; run `trek login` for a new one") and expired not in said
    with pytest.raises(StepFailed) as answered:
        target.client.get("/api/v1/hosts")
    assert str(answered.value) == (
        f"GET {marvin.url}/api/v1/hosts: HTTP 401: "
        "the token has expired; run `trek login` for a new one"
    )

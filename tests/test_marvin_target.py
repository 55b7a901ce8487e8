"""Which Marvin a project talks to: the configured remote one, else the local one (one token
rule)."""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, free_port

from trek_tasks.config import DEFAULTS, Config
from trek_tasks.environment import Environment
from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.marvin.target import (
    FALLBACK_USER,
    NO_MARVIN,
    MarvinTarget,
    check_answers,
    is_remote,
    local_token,
    remote,
    resolve,
)
from trek_tasks.marvin.tokens import verify_token
from trek_tasks.project import Project


def settings(**values: Any) -> Config:
    """Config holding ``values`` over the defaults, as if no file set them."""
    return Config({**DEFAULTS, **values}, dict.fromkeys(DEFAULTS), ())


REMOTE = settings(marvin_url="https://marvin.example/", marvin_JWT="eyJ.remote.jwt")
LOCAL = settings(marvin_url="", marvin_JWT="ignored")


@dataclass
class FakeLocal:
    """A local Marvin as ``resolve`` sees it."""

    marvin_url: str
    inventory: Path
    key: str = "local-secret-0123456789"

    def secret(self) -> str:
        return self.key


class Untouchable:
    """A local environment that must not be consulted."""

    @property
    def marvin_url(self) -> str:
        raise AssertionError("the local Marvin was consulted")

    @property
    def inventory(self) -> Path:
        raise AssertionError("the local Marvin was consulted")

    def secret(self) -> str:
        raise AssertionError("the local Marvin was consulted")


class DockerLike:
    """A runtime whose scripts reach the host under another name."""

    def marvin_url_for_script(self, url: str) -> str:
        return url.replace("127.0.0.1", "host.docker.internal")


def inventory(tmp_path: Path, users: str) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(users)
    return path


def test_a_configured_marvin_url_is_the_remote_target() -> None:
    target = resolve(REMOTE, Untouchable())
    assert target == MarvinTarget("https://marvin.example/", "eyJ.remote.jwt", local=False)
    assert is_remote(REMOTE) and not is_remote(LOCAL)


def test_without_one_the_local_marvin_with_a_token_for_the_first_user(tmp_path: Path) -> None:
    path = inventory(
        tmp_path, "users:\n  - {username: ada, password: x}\n  - {username: bob, password: y}\n"
    )
    local = FakeLocal("http://127.0.0.1:5000", path)
    target = resolve(LOCAL, local)
    assert (target.url, target.local) == ("http://127.0.0.1:5000", True)
    assert verify_token(local.key, target.token)["sub"] == "ada"
    assert target.client == ("http://127.0.0.1:5000", target.token)


def test_an_inventory_without_users_signs_for_the_default_user(tmp_path: Path) -> None:
    local = FakeLocal("http://127.0.0.1:5000", tmp_path / "missing.yml")
    assert verify_token(local.key, local_token(local))["sub"] == FALLBACK_USER


def test_neither_remote_nor_local_is_no_marvin() -> None:
    assert resolve(LOCAL, None) == NO_MARVIN == MarvinTarget("", "", local=False)
    assert NO_MARVIN.url_for_script(DockerLike()) == ""


def test_the_script_url_is_the_runtimes_view(tmp_path: Path) -> None:
    target = resolve(LOCAL, FakeLocal("http://127.0.0.1:5000", tmp_path / "none.yml"))
    assert target.url_for_script(DockerLike()) == "http://host.docker.internal:5000"


def test_the_environment_token_follows_the_same_rule(project: Path) -> None:
    env = Environment(Project.load(project))
    assert verify_token(env.secret(), env.token())["sub"] == "trek"  # the inventory names none
    config = project / ".trek" / "config.json"
    data = json.loads(config.read_text())
    config.write_text(
        json.dumps({**data, "marvin_url": "https://marvin.example/", "marvin_JWT": "eyJ.jwt"})
    )
    assert Environment(Project.load(project)).token() == "eyJ.jwt"


def test_a_remote_target_names_the_file_that_sets_it(project: Path) -> None:
    config = project / ".trek" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "marvin_url": "http://m"}))
    assert remote(Project.load(project).config) == MarvinTarget(
        "http://m", "", local=False, source=config
    )


def test_a_marvin_url_that_is_not_a_url_is_bad_input_where_it_is_read(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    config = project / ".trek" / "config.json"
    config.write_text('{\n  "marvin_url": "not a url"\n}\n')
    with pytest.raises(BadInput) as raised:
        is_remote(Project.load(project).config)
    assert str(raised.value) == (
        ".trek/config.json:2:17: 'marvin_url' must be an http(s) URL such as "
        "'https://marvin.example.com'"
    )
    assert raised.value.exit_code == 2


class Answering(http.server.BaseHTTPRequestHandler):
    status = 404

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Gateway(Answering):
    status = 502


@contextmanager
def answering(handler: type[Answering]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://user:s3cret-pass@127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_remote_marvin_that_answers_anything_passes_the_check(tmp_path: Path) -> None:
    with answering(Answering) as url:  # a 404 for /healthz is still an answer
        check_answers(MarvinTarget(url, "jwt", local=False, source=tmp_path / "config.json"))


def test_a_remote_marvin_that_does_not_answer_is_one_line_without_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    source = tmp_path / ".trek" / "config.json"
    port = free_port()
    with pytest.raises(StepFailed) as raised:
        check_answers(MarvinTarget(f"http://ada:s3cret-pass@127.0.0.1:{port}/m", "", False, source))
    assert str(raised.value) == (
        f".trek/config.json: the Marvin at marvin_url http://127.0.0.1:{port}/m does not answer "
        "(cannot connect: Connection refused); correct marvin_url, or "
        "`trek config marvin_url ''` uses the local one"
    )
    with answering(Gateway) as url, pytest.raises(StepFailed) as gateway:
        check_answers(MarvinTarget(url, "", local=False, source=source))
    assert "does not answer (HTTP 502: Bad Gateway)" in str(gateway.value)
    assert "s3cret" not in str(gateway.value)


def test_the_local_marvin_and_no_marvin_are_not_probed() -> None:
    check_answers(MarvinTarget("http://127.0.0.1:1", "t", local=True))
    check_answers(NO_MARVIN)


@pytest.mark.parametrize("key", ["marvin_url", "marvin_JWT"])
def test_only_the_target_module_reads_the_marvin_keys(key: str) -> None:
    read = re.compile(rf"""\[\s*["']{key}["']\s*\]|\.(get|checked)\(\s*["']{key}["']""")
    readers = sorted(
        path.relative_to(REPO).as_posix()
        for path in (REPO / "trek_tasks").rglob("*.py")
        if read.search(path.read_text())
    )
    assert readers == ["trek_tasks/marvin/target.py"]

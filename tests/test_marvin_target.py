"""Which Marvin a project talks to: the configured remote one, else the local one (one token
rule)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

from trek_tasks.environment import Environment
from trek_tasks.marvin.target import (
    FALLBACK_USER,
    NO_MARVIN,
    MarvinTarget,
    is_remote,
    local_token,
    resolve,
)
from trek_tasks.marvin.tokens import verify_token
from trek_tasks.project import Project

REMOTE = {"marvin_url": "https://marvin.example/", "marvin_JWT": "eyJ.remote.jwt"}
LOCAL = {"marvin_url": "", "marvin_JWT": "ignored"}


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
    config.write_text(json.dumps({**data, **REMOTE}))
    assert Environment(Project.load(project)).token() == "eyJ.remote.jwt"


@pytest.mark.parametrize("key", ["marvin_url", "marvin_JWT"])
def test_only_the_target_module_reads_the_marvin_keys(key: str) -> None:
    read = re.compile(rf"""\[\s*["']{key}["']\s*\]|\.get\(\s*["']{key}["']""")
    readers = sorted(
        path.relative_to(REPO).as_posix()
        for path in (REPO / "trek_tasks").rglob("*.py")
        if read.search(path.read_text())
    )
    assert readers == ["trek_tasks/marvin/target.py"]

"""`trek marvin serve`: a standalone local Marvin with its own data folder, over real HTTP."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from marvin_served import env, serve_command, served

from trek_tasks.marvin.server import BAD_TOKEN, EXPIRED_TOKEN
from trek_tasks.marvin.service import USERS_FILE, read_users
from trek_tasks.marvin.tokens import issue_token, verify_token


def login(url: str, username: str, password: str) -> requests.Response:
    body = {"username": username, "password": password}
    return requests.post(f"{url}/api/v1/auth/login", json=body, timeout=10)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_makes_the_folder_and_prints_the_password_once(tmp_path: Path) -> None:
    data = tmp_path / "marvin"
    with served(data) as first:
        password = first.first_password
        assert password and len(password) >= 12
        assert first.url.startswith("http://127.0.0.1:")
        assert login(first.url, "trek", password).status_code == 200
        code, rest = first.stop()
    assert code == 0 and password not in rest
    assert mode(data) == 0o700
    for name in (USERS_FILE, "secret", "marvin.sqlite"):
        assert mode(data / name) == 0o600, name
    # never again, and in no file of the data folder (users.json has a salted hash)
    for path in data.iterdir():
        assert password.encode() not in path.read_bytes(), path
    stored = json.loads((data / USERS_FILE).read_text())
    assert stored["format"] == "pbkdf2-sha256"
    assert [u["username"] for u in stored["users"]] == ["trek"]
    with served(data) as second:
        assert second.first_password is None
        assert not any(password in line for line in second.lines)
        assert login(second.url, "trek", password).status_code == 200  # same user, same hash


def test_tokens_are_hs256_with_the_folders_secret_and_an_expiry(tmp_path: Path) -> None:
    with served(tmp_path / "m") as marvin:
        assert marvin.first_password
        answer = login(marvin.url, "trek", marvin.first_password)
    token = answer.json()["token"]
    claims = verify_token((tmp_path / "m" / "secret").read_text().strip(), token)
    assert claims["sub"] == "trek"
    assert claims["exp"] - claims["iat"] == 12 * 60 * 60
    jwt = pytest.importorskip("jwt")
    secret = (tmp_path / "m" / "secret").read_text().strip()
    assert jwt.decode(token, secret, algorithms=["HS256"])["sub"] == "trek"


def test_without_a_valid_token_401_says_to_run_trek_login(tmp_path: Path) -> None:
    with served(tmp_path / "m") as marvin:
        secret = (tmp_path / "m" / "secret").read_text().strip()
        answers: dict[str, Any] = {}
        for name, headers in {
            "none": {},
            "garbage": {"Authorization": "Bearer not-a-jwt"},
            "other secret": {"Authorization": f"Bearer {issue_token('x' * 32, 'trek')}"},
            "expired": {"Authorization": f"Bearer {issue_token(secret, 'trek', -1)}"},
        }.items():
            answer = requests.get(f"{marvin.url}/api/v1/hosts", headers=headers, timeout=10)
            answers[name] = (answer.status_code, answer.json())
        assert login(marvin.url, "trek", "wrong").status_code == 401
    assert "run `trek login`" in BAD_TOKEN and "run `trek login`" in EXPIRED_TOKEN
    assert answers == {
        "none": (401, {"code": 401, "msg": BAD_TOKEN}),
        "garbage": (401, {"code": 401, "msg": BAD_TOKEN}),
        "other secret": (401, {"code": 401, "msg": BAD_TOKEN}),
        "expired": (401, {"code": 401, "msg": EXPIRED_TOKEN}),
    }


def test_users_come_from_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "m"
    with served(data):
        pass  # the first start makes user trek
    added = subprocess.run(
        [*serve_command(data)[:4], "useradd", "ada", "--data", str(data), "--password-stdin"],
        input="lovelace-1815\n",
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    assert (added.returncode, added.stderr) == (0, ""), added.stdout
    assert added.stdout.startswith("Added user ada")
    assert [u.username for u in read_users(data / USERS_FILE)] == ["trek", "ada"]
    assert mode(data / USERS_FILE) == 0o600
    with served(data) as marvin:
        token = login(marvin.url, "ada", "lovelace-1815").json()["token"]
        me = requests.get(
            f"{marvin.url}/api/v1/users/me",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert login(marvin.url, "ada", "wrong").status_code == 401
    assert me.json()["data"]["username"] == "ada"


def test_the_data_folders_inventory_is_served(tmp_path: Path) -> None:
    data = tmp_path / "m"
    data.mkdir()
    (data / "inventory.yml").write_text(
        "hosts:\n  - {id: S-1, name: one, ip: 10.0.0.1, tags: [redis]}\n"
    )
    with served(data) as marvin:
        assert marvin.first_password
        token = login(marvin.url, "trek", marvin.first_password).json()["token"]
        hosts = requests.get(
            f"{marvin.url}/api/v1/hosts", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
    assert [h["id"] for h in hosts.json()["data"]] == ["S-1"]


def test_a_port_in_use_is_one_line_and_exit_4(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        proc = subprocess.run(
            serve_command(tmp_path / "m", "--port", str(port)),
            capture_output=True,
            text=True,
            env=env(),
            timeout=60,
        )
    assert proc.returncode == 4
    assert proc.stderr == (
        f"trek: error: 127.0.0.1:{port}: port {port} is already in use; "
        "stop what uses it or choose another\n"
    )
    assert time.monotonic() - started < 30
    # the first password was shown before the start failed, so it is not lost
    assert proc.stdout.startswith("First start: made user 'trek' with password ")

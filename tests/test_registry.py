"""trek_tasks.containers.registry: references, the credential lookup order (trek's config,
a credential helper written here, Docker's config file), the manifest check and the push
against the real test registry (basic auth), and a bearer-token challenge from a small
token service run here."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Registry, free_port

from trek_tasks import events, http
from trek_tasks.cli import main
from trek_tasks.config import DEFAULTS, Config
from trek_tasks.containers.registry import (
    Credentials,
    RegistryApi,
    find_credentials,
    follow_push,
    parse_reference,
    plain_http,
    push_image,
    registry_of,
)
from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.progress import ImagePushed, LayerPushed, LayerPushing

SESSION = uuid.uuid4().hex[:8]  # repository names of this test session
REG = "127.0.0.1:5999"  # a registry address for the lookups (nothing listens)


def make_config(path: Path | None = None, **values: str) -> Config:
    """A merged config whose ``values`` come from the file ``path`` (default: a made-up one)."""
    source = path or Path("/proj/.trek/config.json")
    return Config(
        {**DEFAULTS, **values}, {**dict.fromkeys(DEFAULTS), **dict.fromkeys(values, source)}, ()
    )


def docker_config(folder: Path, data: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(data))


def auth_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def docker_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DOCKER_CONFIG folder and a bin/ on PATH for credential helpers."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return folder


def write_helper(docker_dir: Path, name: str, known: dict[str, tuple[str, str]]) -> Path:
    """``docker-credential-<name>``: answers ``get`` for the servers in ``known`` the way
    Docker's helpers do, "credentials not found in native keychain" (exit 1) otherwise."""
    helper = docker_dir.parent / "bin" / f"docker-credential-{name}"
    answers = {
        server: {"ServerURL": server, "Username": u, "Secret": p}
        for server, (u, p) in known.items()
    }
    helper.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"known = {answers!r}\n"
        "server = sys.stdin.read().strip()\n"
        "if sys.argv[1:] == ['get'] and server in known:\n"
        "    print(json.dumps(known[server]))\n"
        "else:\n"
        "    print('credentials not found in native keychain')\n"
        "    sys.exit(1)\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    return helper


# References ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "registry", "name", "tag"),
    [
        ("127.0.0.1:5000/detectredis:0.1", "127.0.0.1:5000", "detectredis", "0.1"),
        ("localhost/dev/x", "localhost", "dev/x", "latest"),
        (
            "reg.example.com/dev/blcks.test.myblcks:1.0.0",
            "reg.example.com",
            "dev/blcks.test.myblcks",
            "1.0.0",
        ),
        ("user/app:2", "docker.io", "user/app", "2"),
        ("redis", "docker.io", "library/redis", "latest"),
    ],
)
def test_references_split_as_docker_does(image: str, registry: str, name: str, tag: str) -> None:
    ref = parse_reference(image)
    assert (ref.registry, ref.name, ref.tag) == (registry, name, tag)
    assert registry_of("reg.example.com:443/dev/") == "reg.example.com:443"
    assert parse_reference("redis").api_host == "registry-1.docker.io"


def test_a_digest_reference_is_bad_input() -> None:
    with pytest.raises(BadInput, match="tags, not digests"):
        parse_reference("127.0.0.1:5000/x@sha256:" + "0" * 64)


# Credentials -----------------------------------------------------------------------------


def test_config_credentials_come_first_and_only_for_docker_registry(docker_dir: Path) -> None:
    docker_config(docker_dir, {"auths": {REG: auth_entry("dockeruser", "docker-pw-1")}})
    config = make_config(
        docker_registry=f"{REG}/dev", docker_username="trek", docker_password="config-pw-1"
    )
    found = find_credentials(REG, config)
    assert found is not None
    assert (found.username, found.password) == ("trek", "config-pw-1")
    assert found.source == "/proj/.trek/config.json"
    # Another registry than docker_registry: trek's config does not apply, Docker's store does.
    other = make_config(
        docker_registry="127.0.0.1:6000", docker_username="trek", docker_password="config-pw-1"
    )
    found = find_credentials(REG, other)
    assert found is not None
    assert (found.username, found.password) == ("dockeruser", "docker-pw-1")
    assert found.source == str(docker_dir / "config.json")


def test_a_credential_helper_beats_the_auths_entry(docker_dir: Path) -> None:
    write_helper(docker_dir, "trektest", {REG: ("helperuser", "helper-pw-1")})
    docker_config(
        docker_dir,
        {"auths": {REG: auth_entry("fileuser", "file-pw-1")}, "credHelpers": {REG: "trektest"}},
    )
    found = find_credentials(REG, make_config(docker_registry=REG))
    assert found is not None
    assert (found.username, found.password, found.source) == (
        "helperuser",
        "helper-pw-1",
        "docker-credential-trektest",
    )


def test_creds_store_is_asked_and_auths_is_the_fallback(docker_dir: Path) -> None:
    write_helper(docker_dir, "trekstore", {REG: ("storeuser", "store-pw-1")})
    other = "127.0.0.1:6001"
    docker_config(
        docker_dir,
        {
            "credsStore": "trekstore",
            "auths": {f"http://{other}/v2/": auth_entry("fileuser", "file-pw-1")},
        },
    )
    found = find_credentials(REG, make_config())
    assert found is not None and found.username == "storeuser"
    # The store has nothing for this one: the auths entry (a legacy full-URL key) answers.
    found = find_credentials(other, make_config())
    assert found is not None and (found.username, found.password) == ("fileuser", "file-pw-1")
    assert find_credentials("127.0.0.1:6002", make_config()) is None


def test_a_missing_helper_is_one_line(docker_dir: Path) -> None:
    docker_config(docker_dir, {"credHelpers": {REG: "nosuchhelper"}})
    with pytest.raises(StepFailed, match="docker-credential-nosuchhelper not installed"):
        find_credentials(REG, make_config())


def test_no_docker_config_and_no_settings_means_no_credentials(docker_dir: Path) -> None:
    assert find_credentials(REG, make_config(docker_registry=REG)) is None


def test_a_username_without_password_is_bad_input(docker_dir: Path) -> None:
    with pytest.raises(BadInput, match="docker_username is set but docker_password is not"):
        find_credentials(REG, make_config(docker_registry=REG, docker_username="trek"))


def test_credentials_never_show_the_password() -> None:
    found = Credentials("trek", "hidden-pw-1", "config")
    assert "hidden-pw-1" not in repr(found) and "hidden-pw-1" not in str(found)


def test_docker_password_is_masked_and_makes_the_file_private(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    assert main(["config", "docker_password", "listed-pw-1"]) == 0
    assert main(["config", "docker_username", "trek"]) == 0
    assert main(["config", "-l"]) == 0
    assert main(["config", "docker_password"]) == 0
    out = capsys.readouterr().out
    assert "listed-pw-1" not in out
    assert "docker_password=********" in out and "docker_username=trek" in out
    assert stat.S_IMODE((project / ".trek" / "config.json").stat().st_mode) == 0o600


# The real registry -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pushed(docker_client: Any, registry: Registry, base_image: str) -> Iterator[tuple[str, str]]:
    """The base image tagged into the test registry under a name of this session and pushed
    (no build, no container); yields (tag, image id). Deleted from the registry after."""
    repository = f"{registry.address}/trek-test-{SESSION}/base"
    image = docker_client.images.get(base_image)
    image.tag(repository, "1")
    tag = f"{repository}:1"
    ref = parse_reference(tag)
    try:
        push_image(docker_client, ref, image.id, _creds(registry))
        yield tag, image.id
    finally:
        delete_tag(registry, ref.name, ref.tag)
        docker_client.images.remove(tag)


def _creds(registry: Registry, password: str | None = None) -> Credentials:
    return Credentials(registry.user, registry.password if password is None else password, "test")


def delete_tag(registry: Registry, name: str, tag: str) -> None:
    """Remove what a test pushed (the registry runs with delete enabled)."""
    auth = {"Authorization": _creds(registry).basic()}
    base = f"http://{registry.address}/v2/{name}/manifests"
    try:
        answer = http.request(
            "GET",
            f"{base}/{tag}",
            headers={**auth, "Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
    except http.HttpError:
        return
    http.request("DELETE", f"{base}/{answer.headers['Docker-Content-Digest']}", headers=auth)


def test_the_daemon_pushes_to_the_test_registry_over_plain_http(
    docker_client: Any, registry: Registry
) -> None:
    assert plain_http(docker_client, registry.address)
    assert not plain_http(docker_client, "192.0.2.1:5000")  # TEST-NET: not insecure by default


def test_the_manifest_names_the_local_image_id(pushed: tuple[str, str], registry: Registry) -> None:
    tag, image_id = pushed
    ref = parse_reference(tag)
    assert RegistryApi(ref, _creds(registry), plain=True).config_digest() == image_id
    other = parse_reference(f"{ref.repository}:not-pushed")
    assert RegistryApi(other, _creds(registry), plain=True).config_digest() is None


@pytest.mark.parametrize("password", ["wrong-password-1", None])
def test_refused_credentials_are_one_line_without_them(
    pushed: tuple[str, str], registry: Registry, password: str | None
) -> None:
    ref = parse_reference(pushed[0])
    credentials = _creds(registry, password) if password else None
    with pytest.raises(StepFailed) as caught:
        RegistryApi(ref, credentials, plain=True).config_digest()
    message = str(caught.value)
    assert "\n" not in message
    assert message.endswith(": HTTP 401: authentication required")
    if password:
        assert message.startswith(f"registry {registry.address} refused the credentials from test")
    else:
        assert message.startswith(f"registry {registry.address} wants credentials and none are set")
    assert registry.password not in message and "wrong-password-1" not in message


def test_a_push_with_a_wrong_password_is_refused_in_one_line(
    docker_client: Any, pushed: tuple[str, str], registry: Registry
) -> None:
    tag, image_id = pushed
    with pytest.raises(StepFailed) as caught:
        push_image(
            docker_client, parse_reference(tag), image_id, _creds(registry, "wrong-password-2")
        )
    message = str(caught.value)
    reason = "unauthorized: authentication required"
    assert message == f"registry {registry.address} refused the push of {tag}: {reason}"


def test_a_second_push_reports_every_layer_as_there(
    docker_client: Any, pushed: tuple[str, str], registry: Registry
) -> None:
    tag, image_id = pushed
    seen: list[object] = []
    with events.attached(seen.append):
        done = push_image(docker_client, parse_reference(tag), image_id, _creds(registry))
    assert [e for e in seen if isinstance(e, LayerPushed)] and not [
        e for e in seen if isinstance(e, LayerPushing)
    ]
    assert all(e.status == "Layer already exists" for e in seen if isinstance(e, LayerPushed))
    assert isinstance(done, ImagePushed) and done.digest.startswith("sha256:") and seen[-1] == done


def test_an_unreachable_registry_is_one_line() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(StepFailed) as caught:
        RegistryApi(parse_reference(f"{address}/x:1"), None, plain=True).config_digest()
    url = f"http://{address}/v2/x/manifests/1"
    assert str(caught.value) == f"registry {address}: GET {url}: cannot connect: Connection refused"


def test_push_progress_is_one_event_per_layer_start_and_end() -> None:
    chunks = [
        {"status": "The push refers to repository [r/x]"},
        {"id": "aaa", "status": "Preparing"},
        {"id": "bbb", "status": "Preparing"},
        {"id": "aaa", "status": "Pushing", "progressDetail": {"current": 1, "total": 2000}},
        {"id": "aaa", "status": "Pushing", "progressDetail": {"current": 2000, "total": 2000}},
        {"id": "bbb", "status": "Mounted from other/x"},
        {"id": "aaa", "status": "Pushed"},
        {"status": "1: digest: sha256:abc size: 529"},
        {"aux": {"Tag": "1", "Digest": "sha256:abc", "Size": 529}},
    ]
    seen: list[object] = []
    with events.attached(seen.append):
        digest = follow_push(parse_reference("r.example.com/x:1"), chunks)
    assert digest == "sha256:abc"
    assert seen == [
        LayerPushing("aaa", 2000),
        LayerPushed("bbb", "Mounted from other/x"),
        LayerPushed("aaa", "Pushed"),
    ]


# A bearer-token challenge -----------------------------------------------------------------


class TokenRegistry(ThreadingHTTPServer):
    """A registry asking for a bearer token from its own /token service, which wants
    basic auth with ``user``/``password``; holds one manifest for ``x:1``."""

    daemon_threads = True
    user = "tokenuser"
    password = "token-pw-1"
    token = "issued-token-123"
    config_digest = "sha256:" + "c" * 64

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), TokenHandler)
        self.address = f"127.0.0.1:{self.server_address[1]}"
        self.asked: list[str] = []  # the paths of the token requests, with their query


class TokenHandler(BaseHTTPRequestHandler):
    server: TokenRegistry

    def do_GET(self) -> None:
        server = self.server
        said = self.headers.get("Authorization") or ""
        if self.path.startswith("/token"):
            server.asked.append(self.path)
            pair = f"{server.user}:{server.password}".encode()
            if said != f"Basic {base64.b64encode(pair).decode()}":
                self._send(
                    401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
                )
            else:
                self._send(200, {"token": server.token})
        elif said != f"Bearer {server.token}":
            realm = f"http://{server.address}/token"
            challenge = f'Bearer realm="{realm}",service="test-registry",scope="repository:x:pull"'
            self._send(
                401, {"errors": [{"code": "UNAUTHORIZED", "message": "token required"}]}, challenge
            )
        elif self.path == "/v2/x/manifests/1":
            self._send(200, {"schemaVersion": 2, "config": {"digest": server.config_digest}})
        else:
            self._send(
                404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
            )

    def _send(self, status: int, data: object, challenge: str = "") -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if challenge:
            self.send_header("WWW-Authenticate", challenge)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def token_registry() -> Iterator[TokenRegistry]:
    server = TokenRegistry()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_bearer_challenge_is_met_with_a_token_from_its_realm() -> None:
    with token_registry() as server:
        credentials = Credentials(server.user, server.password, "test")
        api = RegistryApi(parse_reference(f"{server.address}/x:1"), credentials, plain=True)
        assert api.config_digest() == server.config_digest
        assert server.asked == ["/token?service=test-registry&scope=repository%3Ax%3Apull"]
        missing = RegistryApi(parse_reference(f"{server.address}/x:2"), credentials, plain=True)
        assert missing.config_digest() is None


def test_a_token_service_refusing_the_credentials_is_one_line_without_them() -> None:
    with token_registry() as server:
        credentials = Credentials(server.user, "wrong-token-pw", "test")
        api = RegistryApi(parse_reference(f"{server.address}/x:1"), credentials, plain=True)
        with pytest.raises(StepFailed) as caught:
            api.config_digest()
    message = str(caught.value)
    assert message.startswith(
        f"registry {server.address} refused the credentials from test: HTTP 401"
    )
    assert "bad credentials" in message and "wrong-token-pw" not in message

"""Script images against the real Docker daemon: the content digest, the layer cache, the
labels, what never goes into an image, the openfaas.yml record, and each fault (no
daemon, no base image, a requirement that does not resolve, a failing RUN step).

Every tag these tests make is under a registry path of their own and removed at the end,
with the images they built (``images_made.py``); nothing else in the daemon is touched.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tarfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Registry, set_config
from images_made import Made

from trek_tasks import events
from trek_tasks.config import Config
from trek_tasks.containers import images
from trek_tasks.containers.client import connect
from trek_tasks.containers.images import (
    DIGEST_LABEL,
    SCRIPT_LABEL,
    build_context,
    ensure_image,
    find_image,
    image_scripts,
    image_tag,
)
from trek_tasks.containers.stack import record_image, stack_image
from trek_tasks.containers.wheelhouse import PINS, image_target, wheelhouse_key
from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.progress import ImageBuilt, ImageStep
from trek_tasks.project import Project, Script
from trek_tasks.state import store_dir
from trek_tasks.store import READY_MARK

DETECTREDIS = Path("src") / "blcks" / "detectredis"
SECRETS = ("jwt-" + secrets.token_hex(8), "marvin-" + secrets.token_hex(8))


@pytest.fixture(scope="module")
def made(docker_client: Any, registry: Registry) -> Iterator[Made]:
    record = Made.under(registry.address)
    yield record
    record.remove(docker_client)


@pytest.fixture
def proj(docker_project: Path, made: Made) -> Path:
    set_config(docker_project, docker_registry=made.prefix)
    return docker_project


@pytest.fixture
def seen() -> Iterator[list[object]]:
    got: list[object] = []
    with events.attached(got.append):
        yield got


def script_of(root: Path, script_id: str = "detectredis") -> tuple[Script, Config]:
    project = Project.load(root)
    return project.scripts[script_id], project.config


def edit_handler(root: Path) -> None:
    handler = root / DETECTREDIS / "handler" / "handler.py"
    handler.write_text(handler.read_text() + f"\n# edit {secrets.token_hex(4)}\n")


def history(client: Any, image_id: str) -> list[dict[str, Any]]:
    return list(client.api.history(image_id))


def pip_layer(client: Any, image_id: str) -> str:
    """The id of the layer the requirements' RUN step made."""
    (entry,) = [h for h in history(client, image_id) if "pip install" in h["CreatedBy"]]
    return str(entry["Id"])


# The digest -------------------------------------------------------------------------


def test_digest_follows_each_input_and_not_openfaas_yml(
    proj: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, config = script_of(proj)
    base = "sha256:" + "1" * 64

    def digest() -> str:
        return images._digest_of(script, config, base)

    first = digest()
    assert digest() == first  # stable
    seen_digests = {first}

    def changed() -> str:
        now = digest()
        assert now not in seen_digests
        seen_digests.add(now)
        return now

    edit_handler(proj)
    changed()
    para = script.para_path
    para.write_text(para.read_text().replace("description:", "description: edited", 1))
    changed()
    script.requirements.write_text("redis>=5\nasync-timeout>=4\n")
    changed()
    monkeypatch.setattr("trek_tasks.runtimes.base.sdk_hash", lambda: "another-sdk")
    changed()
    base = "sha256:" + "2" * 64
    changed()
    other = Config.load(proj)
    values = {**other.values, "blcks_base_image": "python:3.12-slim"}
    config = replace(other, values=values)
    changed()  # the Dockerfile names the base
    stack = script.path / "openfaas.yml"
    stack.write_text(stack.read_text() + "# a comment\n")
    assert digest() in seen_digests  # openfaas.yml records the image: it is not part of it


def test_tag_is_registry_id_version_and_bad_parts_are_bad_input(proj: Path, made: Made) -> None:
    script, config = script_of(proj)
    assert image_tag(script, config) == f"{made.prefix}/detectredis:0.1.0"
    with pytest.raises(BadInput, match="cannot tag a Docker image"):
        image_tag(replace(script, version="1.0+local"), config)
    with pytest.raises(BadInput, match="cannot name a Docker image"):
        image_tag(replace(script, id="bad..id"), config)
    assert image_tag(replace(script, id="MyScript"), config).endswith("/myscript:0.1.0")
    set_config(proj, docker_registry="http://registry.example:5000")
    with pytest.raises(BadInput, match="config.json: 'docker_registry' must be host"):
        image_tag(script, Config.load(proj))


def test_image_scripts_are_the_blcks_scripts_the_workflow_runs(proj: Path) -> None:
    from trek_tasks.install import sync_project

    sync_project(proj)
    ids = [script.id for script in image_scripts(Project.load(proj))]
    assert ids == ["detectredis", "blckssettags", "notification"]


# Building -----------------------------------------------------------------------------


def test_handler_edit_rebuilds_only_the_code_layer(
    proj: Path, docker_client: Any, made: Made, seen: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_handler(proj)  # content no one built: this is a build, not a tag
    script, config = script_of(proj)
    first = made.note(ensure_image(docker_client, script, config))
    assert find_image(docker_client, script, config) == first
    labels = docker_client.images.get(first.id).labels
    assert labels[DIGEST_LABEL] == first.digest and labels[SCRIPT_LABEL] == "detectredis"
    steps = [e.text for e in seen if isinstance(e, ImageStep)]
    assert any("RUN python -m pip install" in text for text in steps), steps
    assert all(len(text) <= images.STEP_WIDTH for text in steps)

    edit_handler(proj)
    script, config = script_of(proj)
    assert find_image(docker_client, script, config) is None  # the digest moved on
    chunks: list[dict[str, Any]] = []
    real_build = docker_client.api.build

    def recording_build(**kwargs: Any) -> Iterator[dict[str, Any]]:
        for chunk in real_build(**kwargs):
            chunks.append(chunk)
            yield chunk

    monkeypatch.setattr(docker_client.api, "build", recording_build)
    started, said = time.monotonic(), len(seen)
    second = made.note(ensure_image(docker_client, script, config))
    rebuilt_in = time.monotonic() - started
    monkeypatch.undo()
    assert second.id != first.id and second.digest != first.digest
    assert pip_layer(docker_client, second.id) == pip_layer(docker_client, first.id)
    stream = "".join(str(c.get("stream", "")) for c in chunks)
    pip_step = stream.split("RUN python -m pip install", 1)[1].split("Step ", 1)[0]
    assert "Using cache" in pip_step
    code_step = stream.split("COPY script/", 1)[1].split("Step ", 1)[0]
    assert "Using cache" not in code_step
    cached = {e.text.split(" : ")[1][:4]: e.cached for e in seen[said:] if isinstance(e, ImageStep)}
    assert (cached["RUN "], cached["COPY"]) == (True, False)  # what the build lines say
    assert rebuilt_in < 60, rebuilt_in


def test_same_content_under_another_tag_is_tagged_not_built(
    proj: Path, docker_client: Any, made: Made, seen: list[object]
) -> None:
    script, config = script_of(proj)
    built = made.note(ensure_image(docker_client, script, config))
    set_config(proj, docker_registry=made.prefix + "/other")
    script, other = script_of(proj)
    seen.clear()
    tagged = ensure_image(docker_client, script, other)
    assert tagged.id == built.id and tagged.tag == f"{made.prefix}/other/detectredis:0.1.0"
    assert [e for e in seen if isinstance(e, ImageStep)] == []
    assert [e.reused for e in seen if isinstance(e, ImageBuilt)] == [True]


def test_no_credentials_in_context_layers_labels_or_history(
    proj: Path, docker_client: Any, made: Made
) -> None:
    jwt, secret = SECRETS
    set_config(proj, marvin_url="http://127.0.0.1:9", marvin_JWT=jwt, marvin_secret=secret)
    set_config(proj, envs={"API_TOKEN": jwt})
    folder_config = proj / DETECTREDIS / ".trek" / "config.json"
    folder_config.parent.mkdir(exist_ok=True)
    folder_config.write_text(json.dumps({"marvin_JWT": jwt, "marvin_secret": secret}))
    edit_handler(proj)  # content no earlier test built: this build runs with the secrets set
    script, config = script_of(proj)

    context = build_context(script, images.dockerfile(config, True), [])
    with tarfile.open(fileobj=context) as tar:
        names = tar.getnames()
        assert not [name for name in names if ".trek" in name or name.endswith("openfaas.yml")]
        for member in tar.getmembers():
            assert (member.uid, member.gid, member.mtime) == (0, 0, 0)
    for value in SECRETS:
        assert value.encode() not in context.getvalue()

    image = made.note(ensure_image(docker_client, script, config))
    inspected = docker_client.api.inspect_image(image.id)
    shown = json.dumps([inspected["Config"], history(docker_client, image.id)])
    for value in SECRETS:
        assert value not in shown
    assert set(inspected["Config"]["Labels"]) >= {DIGEST_LABEL, SCRIPT_LABEL}
    assert inspected["Config"]["Cmd"][:3] == ["python", "-m", "blcks.serve"]
    assert "0.0.0.0" in inspected["Config"]["Cmd"]


# openfaas.yml ---------------------------------------------------------------------------


def test_openfaas_yml_records_the_image_keeping_comments(tmp_path: Path) -> None:
    stack = tmp_path / "openfaas.yml"
    text = (
        "# my stack\n"
        "provider:\n  name: faas\n  gateway: http://gw:8080  # ours\n"
        "functions:\n  detectredis:\n    lang: python3_blcks_flask\n"
        "    handler: ./handler\n    image: 'old/detectredis:0.0.1'  # replaced\n"
        "    environment:\n      A: '1'\n"
    )
    stack.write_text(text)
    assert record_image(tmp_path, "detectredis", "reg:5000/detectredis:0.1.0")
    after = stack.read_text()
    assert after == text.replace("'old/detectredis:0.0.1'", "reg:5000/detectredis:0.1.0")
    assert not record_image(tmp_path, "detectredis", "reg:5000/detectredis:0.1.0")
    assert stack_image(tmp_path, "detectredis") == "reg:5000/detectredis:0.1.0"


def test_openfaas_yml_missing_parts_are_filled_in(tmp_path: Path) -> None:
    stack = tmp_path / "openfaas.yml"
    stack.write_text("functions:\n  renamed:\n    handler: ./handler\n")
    record_image(tmp_path, "detectredis", "reg/detectredis:1.0.0")
    data = yaml.safe_load(stack.read_text())
    assert data["provider"] == {"name": "faas", "gateway": "http://127.0.0.1:8080"}
    assert data["functions"] == {
        "renamed": {
            "lang": "python3_blcks_flask",
            "handler": "./handler",
            "image": "reg/detectredis:1.0.0",
        }
    }
    (tmp_path / "openfaas.yml").unlink()
    record_image(tmp_path, "detectredis", "reg/detectredis:1.0.0")
    assert stack_image(tmp_path, "detectredis") == "reg/detectredis:1.0.0"
    stack.write_text("functions: [unclosed\n")
    with pytest.raises(BadInput, match="openfaas.yml: not a readable YAML stack file"):
        record_image(tmp_path, "detectredis", "reg/detectredis:1.0.0")


# Faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:9"])
def test_no_daemon_is_one_line_naming_the_socket(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", where)
    with pytest.raises(StepFailed) as err:
        connect()
    message = str(err.value)
    assert message.startswith(f"docker: no Docker daemon at {where} (")
    assert "`trek config runtime local`" in message and "\n" not in message


def test_missing_base_image_fails_at_once(proj: Path, docker_client: Any) -> None:
    missing = f"trek-test-missing/python:{secrets.token_hex(4)}"
    set_config(proj, blcks_base_image=missing)
    script, config = script_of(proj)
    assert find_image(docker_client, script, config) is None
    started = time.monotonic()
    with pytest.raises(StepFailed) as err:
        ensure_image(docker_client, script, config)
    assert time.monotonic() - started < 5
    assert str(err.value) == (
        f"blcks_base_image: base image {missing} is not in the Docker daemon; "
        f"`docker pull {missing}` (or build it), or set blcks_base_image to an image you have"
    )


def test_requirement_that_does_not_resolve_is_named_with_the_python(
    proj: Path, docker_client: Any
) -> None:
    name = f"trek-no-such-package-{secrets.token_hex(3)}"
    script, config = script_of(proj)
    script.requirements.write_text(f"redis>=5\n{name}==1.0\n")
    with pytest.raises(StepFailed) as err:
        ensure_image(docker_client, script, config)
    message = str(err.value)
    assert message.startswith("requirements of detectredis do not resolve for Python 3.11.2 (")
    assert name in message and "\n" not in message


def test_failing_run_step_names_the_step_and_shows_its_output(
    proj: Path, docker_client: Any, made: Made, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheelhouse whose wheel is broken (as a damaged store would hold it): pip fails in
    the RUN step, and the error says which step and shows pip's last lines."""
    edit_handler(proj)  # content no earlier test built, so it is not just tagged
    script, config = script_of(proj)
    base_id = docker_client.images.get(config["blcks_base_image"]).id
    target = image_target(docker_client, config["blcks_base_image"], base_id)  # cached
    home = tmp_path / "home"
    shutil.copytree(store_dir() / "wheels" / "targets", home / "wheels" / "targets")
    monkeypatch.setenv("TREK_HOME", str(home))
    broken = home / "wheels" / wheelhouse_key(["redis>=5"], target)
    broken.mkdir(parents=True)
    (broken / PINS).write_text("redis==8.1.0\n")
    (broken / "redis-8.1.0-py3-none-any.whl").write_bytes(b"not a zip " + secrets.token_bytes(8))
    (broken / READY_MARK).write_text("{}\n")
    real_build = docker_client.api.build

    def noting_build(**kwargs: Any) -> Iterator[dict[str, Any]]:
        for chunk in real_build(**kwargs):  # the steps' images: removed at the end
            made.ids.update(re.findall(r" ---> ([0-9a-f]{12})\b", str(chunk.get("stream", ""))))
            yield chunk

    monkeypatch.setattr(docker_client.api, "build", noting_build)
    with pytest.raises(StepFailed) as err:
        ensure_image(docker_client, script, config)
    monkeypatch.undo()
    message = str(err.value)
    assert message.startswith(f"detectredis: image {made.prefix}/detectredis:0.1.0: Step ")
    assert "RUN python -m pip install" in message
    assert message.endswith("... returned a non-zero code: 1")
    assert "ERROR: Wheel 'redis' located at" in err.value.detail  # pip's last words
    assert "Removing intermediate container" not in err.value.detail
    assert find_image(docker_client, script, config) is None

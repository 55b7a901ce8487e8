"""trek publish: a packed script or a script folder into a repository folder, index rewritten."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from conftest import serve

from trek_tasks.cli import main
from trek_tasks.hub import sha256_hex
from trek_tasks.pack import script_members, zip_bytes
from trek_tasks.project import Script
from trek_tasks.publish import build_index, write_index

PARA = """id: demo
schemaVersion: '0.2'
version: '{version}'
title: Demo {version}
description: Says hello ({version}).
inputs:
  who:
    type: string
outputs:
  greeting:
    type: string
"""


def trek(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def script_folder(parent: Path, version: str = "1.0.0", greeting: str = "Hello") -> Path:
    folder = parent / "demo"
    (folder / "handler").mkdir(parents=True, exist_ok=True)
    (folder / "tests").mkdir(exist_ok=True)
    (folder / ".trek").mkdir(exist_ok=True)
    (folder / "demo.para").write_text(PARA.format(version=version))
    (folder / "openfaas.yml").write_text("functions:\n  demo:\n    handler: ./handler\n")
    (folder / "handler" / "__init__.py").write_text("")
    (folder / "handler" / "handler.py").write_text(f"GREETING = {greeting!r}\n")
    (folder / "tests" / "test_handler.py").write_text("def test_nothing():\n    pass\n")
    (folder / ".trek" / "config.json").write_text("{}")
    return folder


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_publish_a_script_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = script_folder(tmp_path / "src")
    repo = tmp_path / "repo"
    code, out, err = trek(capsys, "publish", str(folder), "--repository", str(repo))
    assert (code, err) == (0, "")
    assert out == (
        f"Published demo 1.0.0: {repo}/demo/1.0.0/dist/script.zip\n"
        f"Index written: {repo}/index.json\n"
    )
    archive = (repo / "demo/1.0.0/dist/script.zip").read_bytes()
    assert archive == zip_bytes(script_members(Script("demo", folder, False, "1.0.0")))
    with zipfile.ZipFile(repo / "demo/1.0.0/dist/script.zip") as zipped:
        assert zipped.namelist() == [
            "demo.para",
            "handler/__init__.py",
            "handler/handler.py",
            "openfaas.yml",
        ]
    assert json.loads((repo / "index.json").read_text()) == {
        "format": 1,
        "scripts": {
            "demo": {
                "title": "Demo 1.0.0",
                "description": "Says hello (1.0.0).",
                "versions": {
                    "1.0.0": {
                        "path": "demo/1.0.0/dist/script.zip",
                        "sha256": sha256_hex(archive),
                        "size": len(archive),
                    }
                },
            }
        },
    }


def test_republishing_the_same_bytes_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = script_folder(tmp_path / "src")
    repo = tmp_path / "repo"
    assert trek(capsys, "publish", str(folder), "--repository", str(repo))[0] == 0
    before = tree(repo)
    code, out, _ = trek(capsys, "publish", str(folder), "--repository", str(repo))
    assert code == 0
    assert out.startswith(f"demo 1.0.0 is already published: {repo}/demo/1.0.0/dist/script.zip\n")
    assert tree(repo) == before


def test_other_bytes_for_a_published_version_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    assert (
        trek(capsys, "publish", str(script_folder(tmp_path / "a")), "--repository", str(repo))[0]
        == 0
    )
    before = tree(repo)
    changed = script_folder(tmp_path / "b", greeting="Hi")
    assert trek(capsys, "publish", str(changed), "--repository", str(repo)) == (
        2,
        "",
        f"trek: error: {repo}/demo/1.0.0/dist/script.zip: demo 1.0.0 is already published with "
        "other content; bump the version in demo.para\n",
    )
    assert tree(repo) == before


def test_versions_are_listed_newest_first_with_the_newest_title(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    for version in ("1.10.0", "1.2.0", "1.9.0"):
        folder = script_folder(tmp_path / version, version=version)
        assert trek(capsys, "publish", str(folder), "--repository", str(repo))[0] == 0
    entry = json.loads((repo / "index.json").read_text())["scripts"]["demo"]
    assert list(entry["versions"]) == ["1.10.0", "1.9.0", "1.2.0"]
    assert entry["title"] == "Demo 1.10.0"


def test_index_does_not_depend_on_publishing_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = [script_folder(tmp_path / v, version=v) for v in ("1.0.0", "2.0.0")]
    for name, order in (("one", folders), ("two", folders[::-1])):
        for folder in order:
            assert (
                trek(capsys, "publish", str(folder), "--repository", str(tmp_path / name))[0] == 0
            )
    assert tree(tmp_path / "one") == tree(tmp_path / "two")


def test_publish_a_packed_zip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = script_folder(tmp_path / "src")
    monkeypatch.chdir(folder)
    assert trek(capsys, "packblcks", "-o", str(tmp_path / "out"))[0] == 0
    packed = tmp_path / "out" / "blcks.demo-1.0.0.zip"
    repo = tmp_path / "repo"
    assert trek(capsys, "publish", str(packed), "--repository", str(repo))[0] == 0
    assert (repo / "demo/1.0.0/dist/script.zip").read_bytes() == packed.read_bytes()
    from_folder = tmp_path / "repo2"
    assert trek(capsys, "publish", str(folder), "--repository", str(from_folder))[0] == 0
    assert tree(repo) == tree(from_folder)


def test_unsafe_zip_is_not_published(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zipped:
        zipped.writestr("demo.para", PARA.format(version="1.0.0"))
        zipped.writestr("../evil", "x")
    repo = tmp_path / "repo"
    assert trek(capsys, "publish", str(evil), "--repository", str(repo)) == (
        2,
        "",
        f"trek: error: {evil}: archive member '../evil' escapes the target folder; refusing it\n",
    )
    assert not repo.exists()


def test_invalid_para_is_not_published(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = script_folder(tmp_path / "src")
    (folder / "demo.para").write_text(
        PARA.format(version="1.0.0").replace("  who:\n    type: string\n", "  who: 5\n")
    )
    repo = tmp_path / "repo"
    code, out, err = trek(capsys, "publish", str(folder), "--repository", str(repo))
    assert (code, out) == (2, "")
    assert err == (
        f"trek: error: {folder}: demo.para:7:8 is not valid: input 'who' needs a 'type' "
        "(string, integer, number, boolean, object, array) or a '$ref' to a built-in type "
        "such as pn_ids_host\n"
    )
    assert not repo.exists()


def test_missing_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nothing"
    assert trek(capsys, "publish", str(missing), "--repository", str(tmp_path / "repo")) == (
        2,
        "",
        f"trek: error: {missing}: no such file or folder\n",
    )


def test_archive_at_the_wrong_path_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    assert (
        trek(capsys, "publish", str(script_folder(tmp_path / "a")), "--repository", str(repo))[0]
        == 0
    )
    misplaced = repo / "demo/2.0.0/dist/script.zip"
    misplaced.parent.mkdir(parents=True)
    misplaced.write_bytes((repo / "demo/1.0.0/dist/script.zip").read_bytes())
    with pytest.raises(Exception) as caught:
        build_index(repo)
    assert str(caught.value) == (
        f"{misplaced}: the archive holds demo 1.0.0; move it to demo/1.0.0/dist/script.zip"
    )


def test_a_published_folder_served_over_http_is_installable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    for version in ("1.0.0", "1.1.0"):
        folder = script_folder(tmp_path / version, version=version)
        assert trek(capsys, "publish", str(folder), "--repository", str(repo))[0] == 0
    write_index(repo)
    monkeypatch.chdir(tmp_path)
    assert trek(capsys, "createproject", "team", "-y")[0] == 0
    project = tmp_path / "team"
    with serve(repo) as url:
        (project / ".trek" / "config.json").write_text(json.dumps({"script_repository": url}))
        os.chdir(project)
        assert trek(capsys, "listscripts") == (0, "demo  1.1.0, 1.0.0  Demo 1.1.0\n", "")
        assert trek(capsys, "install", "demo~=1.0.0") == (
            0,
            "demo:1.0.0 installed\n",
            "downloading demo 1.0.0\n",
        )
    assert (project / "trek_packages/demo/handler/handler.py").read_text() == "GREETING = 'Hello'\n"

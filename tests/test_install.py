"""trek install / uninstall / install -l and the doit task `install`, end to end in fresh projects.

Repositories are the bundled one, copies of it served by a real HTTP server, and crafted
ones holding unsafe or altered archives.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from archives import CORPUS, SCRIPT_ID, VERSION
from conftest import EXAMPLE, drip, free_port, is_read_cache, serve

from trek_tasks.cli import main
from trek_tasks.hub import bundled_path, sha256_hex
from trek_tasks.install import RECORD
from trek_tasks.pack import zip_bytes
from trek_tasks.publish import write_index

BUNDLED_INDEX = json.loads((bundled_path() / "index.json").read_text())


def bundled_sha(script_id: str, version: str) -> str:
    return str(BUNDLED_INDEX["scripts"][script_id]["versions"][version]["sha256"])


def trek(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def new_project(parent: Path, name: str, capsys: pytest.CaptureFixture[str]) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    cwd = Path.cwd()
    os.chdir(parent)
    try:
        assert main(["createproject", name, "-y"]) == 0
    finally:
        os.chdir(cwd)
    capsys.readouterr()
    return parent / name


@pytest.fixture
def fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """A new project made by `trek createproject`, as the current folder."""
    root = new_project(tmp_path, "demo", capsys)
    monkeypatch.chdir(root)
    return root


def use_repository(root: Path, location: str) -> None:
    config = root / ".trek" / "config.json"
    data = json.loads(config.read_text()) if config.is_file() else {}
    config.parent.mkdir(exist_ok=True)
    config.write_text(json.dumps({**data, "script_repository": location}))


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the project except the caches of what trek read (``is_read_cache``)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not is_read_cache(p)
    }


def packages(root: Path) -> dict[str, str]:
    return dict(json.loads((root / "packages.json").read_text())["packages"])


def lock(root: Path) -> dict[str, dict[str, str]]:
    return dict(json.loads((root / "packages.lock.json").read_text())["packages"])


def para_version(root: Path, script_id: str) -> str:
    import yaml

    return str(
        yaml.safe_load((root / "trek_packages" / script_id / f"{script_id}.para").read_text())[
            "version"
        ]
    )


PARA = """id: {id}
schemaVersion: '0.2'
version: '{version}'
title: {id}
inputs:
  text:
    type: string
outputs:
  result:
    type: string
"""


def script_zip(script_id: str, version: str, extra: list[tuple[str, bytes]] | None = None) -> bytes:
    members = [
        (f"{script_id}.para", PARA.format(id=script_id, version=version).encode()),
        ("handler/handler.py", f"# {script_id} {version}\n".encode()),
        *(extra or []),
    ]
    return zip_bytes(members)


def repository_of(folder: Path, archives: dict[tuple[str, str], bytes]) -> Path:
    """A repository folder indexing exactly ``archives`` (even unsafe ones)."""
    scripts: dict[str, dict] = {}
    for (script_id, version), data in archives.items():
        relative = f"{script_id}/{version}/dist/script.zip"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
        entry = scripts.setdefault(script_id, {"title": script_id, "versions": {}})
        entry["versions"][version] = {
            "path": relative,
            "sha256": sha256_hex(data),
            "size": len(data),
        }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.json").write_text(json.dumps({"format": 1, "scripts": scripts}))
    return folder


def bundled_copy(folder: Path) -> Path:
    shutil.copytree(bundled_path(), folder)
    return folder


# --- Must show ----------------------------------------------------------------------------


def test_install_upgrade_list_uninstall(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert trek(capsys, "install", "notification==0.4.0") == (
        0,
        "notification:0.4.0 installed\n",
        "",
    )
    assert packages(fresh) == {"notification": "==0.4.0"}
    assert lock(fresh) == {
        "notification": {
            "version": "0.4.0",
            "sha256": bundled_sha("notification", "0.4.0"),
            "source": "bundled:notification/0.4.0/dist/script.zip",
        }
    }
    assert para_version(fresh, "notification") == "0.4.0"

    assert trek(capsys, "install", "notification") == (0, "notification:0.5.1 installed\n", "")
    assert packages(fresh) == {"notification": "==0.5.1"}
    assert lock(fresh)["notification"]["version"] == "0.5.1"
    assert lock(fresh)["notification"]["sha256"] == bundled_sha("notification", "0.5.1")
    assert para_version(fresh, "notification") == "0.5.1"

    assert trek(capsys, "install", "-l") == (0, "notification  0.5.1  ==0.5.1\n", "")

    assert trek(capsys, "uninstall", "notification") == (0, "notification uninstalled\n", "")
    assert not (fresh / "trek_packages" / "notification").exists()
    assert packages(fresh) == {}
    assert lock(fresh) == {}
    assert trek(capsys, "install", "-l") == (0, "No scripts installed in trek_packages/\n", "")


def test_installed_files_are_the_archive_members(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert trek(capsys, "install", "callservice")[0] == 0
    folder = fresh / "trek_packages" / "callservice"
    archive = bundled_path() / "callservice/0.1.0/dist/script.zip"
    with zipfile.ZipFile(archive) as zipped:
        expected = {name: zipped.read(name) for name in zipped.namelist()}
    found = {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != RECORD
    }
    assert found == expected
    assert packages(fresh) == {"callservice": "==0.1.0"}


@pytest.mark.parametrize(
    ("spec", "recorded", "version"),
    [
        ("notification>=0.4,<0.6", "<0.6,>=0.4", "0.5.1"),
        ("notification~=0.4.0", "~=0.4.0", "0.4.0"),
        ("notification!=0.5.1", "!=0.5.1", "0.5.0"),
    ],
)
def test_specifiers_are_recorded_as_given(
    fresh: Path, capsys: pytest.CaptureFixture[str], spec: str, recorded: str, version: str
) -> None:
    assert trek(capsys, "install", spec) == (0, f"notification:{version} installed\n", "")
    assert packages(fresh) == {"notification": recorded}
    assert lock(fresh)["notification"]["version"] == version


def test_altered_archive_is_refused_and_nothing_changes(
    fresh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = bundled_copy(tmp_path / "repo")
    with serve(repo) as url:
        use_repository(fresh, url)
        assert trek(capsys, "install", "notification==0.4.0")[0] == 0
        archive = repo / "notification/0.5.1/dist/script.zip"
        data = bytearray(archive.read_bytes())
        data[len(data) // 2] ^= 0xFF
        archive.write_bytes(bytes(data))
        before = snapshot(fresh)
        code, out, err = trek(capsys, "install", "notification")
    assert (code, out) == (2, "")
    assert err == (
        "downloading notification 0.5.1\n"
        f"trek: error: {url}/notification/0.5.1/dist/script.zip: sha256 mismatch: "
        f"expected {bundled_sha('notification', '0.5.1')}, got {sha256_hex(bytes(data))}; "
        "the archive changed after it was indexed, refusing it\n"
    )
    assert snapshot(fresh) == before
    assert para_version(fresh, "notification") == "0.4.0"


# Every way an archive reaches the installer: a repository (the bundled one, a folder, a
# file:// URL, http), a command-line zip path, file:// or http URL, and packages.json
# naming a zip path (`trek install`) or a URL (the doit install task under `pack -a`).
TRANSPORTS = (
    "bundled repository",
    "folder repository",
    "file repository",
    "http repository",
    "zip path",
    "file url",
    "url",
    "packages.json path",
    "packages.json url",
)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", sorted(CORPUS))
def test_crafted_archives_are_refused_over_every_transport(
    fresh: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    transport: str,
) -> None:
    data = CORPUS[case].data
    repo = repository_of(tmp_path / "repo", {(SCRIPT_ID, VERSION): data})
    in_repo = f"{repo}/{SCRIPT_ID}/{VERSION}/dist/script.zip"
    archive = tmp_path / "files" / f"{SCRIPT_ID}.zip"
    archive.parent.mkdir()
    archive.write_bytes(data)
    command, label = ["install", SCRIPT_ID], ""
    with serve(tmp_path) as base:
        url = f"{base}/files/{SCRIPT_ID}.zip"
        if transport == "bundled repository":
            monkeypatch.setattr("trek_tasks.hub.bundled_path", lambda: repo)
            where = in_repo
        elif transport == "folder repository":
            use_repository(fresh, str(repo))
            where = in_repo
        elif transport == "file repository":
            use_repository(fresh, repo.as_uri())
            where = in_repo
        elif transport == "http repository":
            use_repository(fresh, f"{base}/repo")
            where = f"{base}/repo/{SCRIPT_ID}/{VERSION}/dist/script.zip"
            label = f"downloading {SCRIPT_ID} {VERSION}\n"
        elif transport == "zip path":
            command, where = ["install", str(archive)], str(archive)
        elif transport == "file url":
            command = ["install", archive.as_uri()]
            where = archive.as_uri()
        elif transport == "url":
            command, where, label = ["install", url], url, f"downloading {url}\n"
        elif transport == "packages.json path":
            (fresh / "packages.json").write_text(
                json.dumps({"packages": {SCRIPT_ID: str(archive)}})
            )
            command, where = ["install"], str(archive)
        else:
            (fresh / "packages.json").write_text(json.dumps({"packages": {SCRIPT_ID: url}}))
            command, where, label = ["pack", "-a"], url, f"downloading {url}\n"
        before = snapshot(fresh)
        code, out, err = trek(capsys, *command)
    assert (code, out) == (2, "")
    assert err == f"{label}trek: error: {where}: {CORPUS[case].message}\n"
    assert snapshot(fresh) == before
    assert not (fresh / "trek_packages").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "files", "repo"]


def test_doit_install_right_after_trek_install_runs_nothing(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def doit_install() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "doit", "install"],
            cwd=fresh,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert trek(capsys, "install", "notification")[0] == 0
    assert doit_install() == "-- install\n"

    folder = fresh / "trek_packages" / "notification"
    inode = folder.stat().st_ino
    data = json.loads((fresh / "packages.json").read_text())
    data["packages"]["blckssettags"] = "==0.3.0"
    (fresh / "packages.json").write_text(json.dumps(data))
    assert doit_install() == ".  install\nblckssettags:0.3.0 installed\n"
    assert folder.stat().st_ino == inode
    assert lock(fresh)["blckssettags"]["sha256"] == bundled_sha("blckssettags", "0.3.0")
    assert doit_install() == "-- install\n"

    (folder / "handler" / "handler.py").write_text("broken\n")
    assert doit_install() == ".  install\nnotification:0.5.1 installed\n"
    assert (folder / "handler" / "handler.py").read_text() != "broken\n"
    assert doit_install() == "-- install\n"


# --- the lock -----------------------------------------------------------------------------


def copy_requirements(source: Path, dest: Path) -> None:
    for name in ("packages.json", "packages.lock.json"):
        shutil.copy(source / name, dest / name)


def test_a_second_machine_installs_the_locked_bytes(
    fresh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    repository_of(repo, {("demo", "1.0.0"): script_zip("demo", "1.0.0")})
    use_repository(fresh, str(repo))
    assert trek(capsys, "install", "demo>=1.0") == (0, "demo:1.0.0 installed\n", "")
    repository_of(repo, {("demo", "1.1.0"): script_zip("demo", "1.1.0")})
    write_index(repo)
    capsys.readouterr()

    other = new_project(tmp_path / "second", "demo", capsys)
    use_repository(other, str(repo))
    copy_requirements(fresh, other)
    assert trek(capsys, "install", "-p", str(other)) == (0, "demo:1.0.0 installed\n", "")
    record = json.loads((other / "trek_packages/demo" / RECORD).read_text())
    assert record["sha256"] == sha256_hex(script_zip("demo", "1.0.0"))
    assert lock(other) == lock(fresh)

    assert trek(capsys, "install", "-p", str(other)) == (
        0,
        "Nothing to install: trek_packages/ matches packages.lock.json\n",
        "",
    )
    assert trek(capsys, "install", "-p", str(other), "demo")[1] == "demo:1.1.0 installed\n"
    assert packages(other) == {"demo": "==1.1.0"}


def test_locked_version_with_other_bytes_is_refused(
    fresh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    repository_of(repo, {("demo", "1.0.0"): script_zip("demo", "1.0.0")})
    use_repository(fresh, str(repo))
    assert trek(capsys, "install", "demo")[0] == 0
    shutil.rmtree(fresh / "trek_packages")
    republished = script_zip("demo", "1.0.0", [("handler/extra.py", b"")])
    repository_of(repo, {("demo", "1.0.0"): republished})
    before = snapshot(fresh)
    code, out, err = trek(capsys, "install")
    assert (code, out) == (2, "")
    assert err == (
        f"trek: error: {repo}/demo/1.0.0/dist/script.zip: {repo} holds a different archive for "
        f"demo 1.0.0 than packages.lock.json pins (sha256 {sha256_hex(republished)}, locked "
        f"{sha256_hex(script_zip('demo', '1.0.0'))}); run `trek install demo` to choose again\n"
    )
    assert snapshot(fresh) == before


def test_editing_the_spec_past_the_lock_resolves_again(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert trek(capsys, "install", "notification")[0] == 0
    (fresh / "packages.json").write_text('{"packages": {"notification": "<0.5"}}')
    assert trek(capsys, "install") == (0, "notification:0.4.0 installed\n", "")
    assert lock(fresh)["notification"]["version"] == "0.4.0"
    assert packages(fresh) == {"notification": "<0.5"}


def test_a_script_dropped_from_packages_json_is_removed(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert trek(capsys, "install", "notification", "callservice")[0] == 0
    (fresh / "packages.json").write_text('{"packages": {"callservice": "==0.1.0"}}')
    assert trek(capsys, "install") == (0, "notification uninstalled\n", "")
    assert sorted(lock(fresh)) == ["callservice"]
    assert sorted(p.name for p in (fresh / "trek_packages").iterdir()) == ["callservice"]


def test_a_hand_placed_folder_is_replaced_by_the_locked_archive(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = fresh / "trek_packages" / "notification"
    folder.mkdir(parents=True)
    (folder / "notification.para").write_text("id: notification\nversion: '0.5.0'\n")
    (fresh / "packages.json").write_text('{"packages": {"notification": "==0.5.0"}}')
    assert trek(capsys, "install") == (0, "notification:0.5.0 installed\n", "")
    assert (folder / "handler" / "handler.py").is_file()


# --- URLs and zip files ---------------------------------------------------------------------


def test_url_install_is_recorded_and_locked(
    fresh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "demo.zip").write_bytes(script_zip("demo", "2.0.0"))
    with serve(files) as base:
        url = f"{base}/demo.zip"
        assert trek(capsys, "install", url) == (
            0,
            "demo:2.0.0 installed\n",
            f"downloading {url}\n",
        )
        assert packages(fresh) == {"demo": url}
        assert lock(fresh)["demo"] == {
            "version": "2.0.0",
            "sha256": sha256_hex(script_zip("demo", "2.0.0")),
            "source": url,
        }
        other = new_project(tmp_path / "second", "demo", capsys)
        copy_requirements(fresh, other)
        assert trek(capsys, "install", "-p", str(other))[:2] == (0, "demo:2.0.0 installed\n")

        changed = script_zip("demo", "2.0.1")
        (files / "demo.zip").write_bytes(changed)
        third = new_project(tmp_path / "third", "demo", capsys)
        copy_requirements(fresh, third)
        before = snapshot(third)
        code, out, err = trek(capsys, "install", "-p", str(third))
    assert (code, out) == (2, "")
    assert err == (
        f"downloading {url}\n"
        f"trek: error: {url}: sha256 mismatch: expected {sha256_hex(script_zip('demo', '2.0.0'))}, "
        f"got {sha256_hex(changed)}; the archive changed after it was locked, refusing it\n"
    )
    assert snapshot(third) == before


@pytest.mark.parametrize(
    ("limit", "value", "message"),
    [
        ("RATE_WINDOW", 3.0, "slower than 1 KiB/s over 3 s (the minimum download rate)"),
        ("DEADLINE", 3.0, "not finished within 3 s (the download deadline)"),
    ],
)
def test_a_dripping_server_is_given_up_on_in_bounded_time(
    fresh: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    limit: str,
    value: float,
    message: str,
) -> None:
    from trek_tasks import http

    monkeypatch.setattr(http, "RATE_WINDOW", 1000.0)
    monkeypatch.setattr(http, limit, value)
    before = snapshot(fresh)
    with drip(interval=2.0) as base:  # a byte every 2 s: the 30 s read timeout never fires
        url = f"{base}/demo.zip"
        started = time.monotonic()
        code, out, err = trek(capsys, "install", url)
        took = time.monotonic() - started
    assert (code, out) == (1, "")
    assert err == f"downloading {url}\ntrek: error: {url}: cannot download: {message}\n"
    assert took < value + 2.5
    assert snapshot(fresh) == before


def test_zip_paths_are_recorded_relative_to_the_project(
    fresh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fresh / "vendor").mkdir()
    (fresh / "vendor" / "demo.zip").write_bytes(script_zip("demo", "1.0.0"))
    (tmp_path / "other.zip").write_bytes(script_zip("other", "0.1.0"))
    assert trek(capsys, "install", "vendor/demo.zip", "../other.zip") == (
        0,
        "demo:1.0.0 installed\nother:0.1.0 installed\n",
        "",
    )
    assert packages(fresh) == {"demo": "vendor/demo.zip", "other": str(tmp_path / "other.zip")}
    shutil.rmtree(fresh / "trek_packages")
    assert trek(capsys, "install")[0] == 0
    assert para_version(fresh, "demo") == "1.0.0"


# --- bad input: one line, the right exit code, nothing written ------------------------------


def bad(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str]:
    before = snapshot(root)
    code, out, err = trek(capsys, *args)
    assert out == ""
    assert err.count("\n") == 1, err
    assert snapshot(root) == before
    return code, err


def test_unknown_script(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bad(capsys, fresh, "install", "notifcation") == (
        2,
        "trek: error: notifcation: unknown script 'notifcation' in the bundled repository; "
        "did you mean 'notification'?\n",
    )


def test_no_matching_version(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bad(capsys, fresh, "install", "notification>=1") == (
        2,
        "trek: error: notification>=1: no version of notification matches '>=1'; "
        "available: 0.5.1, 0.5.0, 0.4.0\n",
    )


def test_bad_specifier(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bad(capsys, fresh, "install", "notification=>0.4") == (
        2,
        "trek: error: notification=>0.4: '=>0.4' is not a version specifier "
        "(e.g. ==0.5.0, >=0.4,<0.6, ~=0.5.0), a URL or a zip path\n",
    )


def test_one_bad_package_installs_none(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = bad(capsys, fresh, "install", "notification", "nothing-like-it")
    assert code == 2 and "unknown script 'nothing-like-it'" in err
    assert not (fresh / "trek_packages").exists()


def test_malformed_packages_json(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (fresh / "packages.json").write_text('{"packages": {"notification": "==0.5.0",}}\n')
    assert bad(capsys, fresh, "install", "callservice") == (
        2,
        "trek: error: packages.json:1:41: invalid JSON: Expecting property name enclosed in "
        "double quotes\n",
    )


def test_packages_json_entry_of_the_wrong_type(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fresh / "packages.json").write_text('{\n  "packages": {\n    "notification": 5\n  }\n}\n')
    assert bad(capsys, fresh, "install") == (
        2,
        "trek: error: packages.json:3:21: package 'notification' must be a version specifier "
        "such as '==0.5.0' (or '' for the newest), a URL or a zip path\n",
    )


def test_malformed_lock(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert trek(capsys, "install", "notification")[0] == 0
    (fresh / "packages.lock.json").write_text('{"version": 1, "packages": {"notification": {}}}')
    before = snapshot(fresh)
    code, out, err = trek(capsys, "install")
    assert (code, out, snapshot(fresh) == before) == (2, "", True)
    fix = "; delete packages.lock.json and run `trek install` to re-create it\n"
    assert err == "".join(
        f"trek: error: packages.lock.json:1:45: package 'notification' needs '{key}'{fix}"
        for key in ("version", "sha256", "source")
    )


def test_malformed_index(fresh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "index.json").write_text('{"scripts": {"demo": {"versions": {"1.0.0": 7}}}}')
    use_repository(fresh, str(repo))
    assert bad(capsys, fresh, "install", "demo") == (
        2,
        f"trek: error: {repo}/index.json: malformed index: scripts.demo.versions.1.0.0 "
        "must be an object with path, sha256 and size\n",
    )


def test_unreachable_repository_is_exit_1(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    use_repository(fresh, f"http://127.0.0.1:{port}/repo")
    assert bad(capsys, fresh, "install", "notification") == (
        1,
        f"trek: error: http://127.0.0.1:{port}/repo/index.json: cannot download: "
        "Connection refused\n",
    )


def test_broken_para_in_an_archive_is_refused(
    fresh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    para = "id: demo\nschemaVersion: '0.2'\nversion: '1.0.0'\ntitle: demo\ninputs: 5\noutputs: {}\n"
    repo = repository_of(
        tmp_path / "repo", {("demo", "1.0.0"): zip_bytes([("demo.para", para.encode())])}
    )
    use_repository(fresh, str(repo))
    assert bad(capsys, fresh, "install", "demo") == (
        2,
        f"trek: error: {repo}/demo/1.0.0/dist/script.zip: demo.para:5:9 is not valid: "
        "'inputs' must be a mapping, not a number\n",
    )


def test_index_listing_another_script_than_the_archive_holds(
    fresh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = repository_of(tmp_path / "repo", {("demo", "1.0.0"): script_zip("demo", "0.9.0")})
    use_repository(fresh, str(repo))
    assert bad(capsys, fresh, "install", "demo") == (
        2,
        f"trek: error: {repo}/demo/1.0.0/dist/script.zip: the archive holds demo 0.9.0, but "
        "the index lists it as demo 1.0.0; refusing it\n",
    )


def test_missing_zip_file(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bad(capsys, fresh, "install", "nowhere/demo.zip") == (
        2,
        "trek: error: nowhere/demo.zip: no such zip file\n",
    )


def test_uninstall_unknown_suggests(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert trek(capsys, "install", "notification")[0] == 0
    assert bad(capsys, fresh, "uninstall", "notificaton") == (
        2,
        "trek: error: notificaton: 'notificaton' is not installed; did you mean 'notification'?\n",
    )


def test_list_takes_no_packages(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bad(capsys, fresh, "install", "-l", "notification") == (
        2,
        "trek: error: -l: -l lists what is installed; give it no PACKAGES\n",
    )


def test_install_outside_a_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = trek(capsys, "install", "notification")
    assert code == 2
    assert err.startswith("trek: error: ") and "not a Trek project" in err
    assert list(tmp_path.iterdir()) == []


# --- the example project ------------------------------------------------------------------


@pytest.mark.skipif(not EXAMPLE.is_dir(), reason="the example project is not in this checkout")
def test_example_installs_its_scripts_and_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / EXAMPLE.name
    state = ("trek_packages", "packages.lock.json", "doit.db*", "validated.json", "env", "runs")
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(*state))
    code, out, err = trek(capsys, "install", "-p", str(project))
    assert (code, err) == (0, "")
    assert out == "blckssettags:0.3.0 installed\nnotification:0.5.0 installed\n"
    code, out, err = trek(capsys, "validate", "-p", str(project))
    assert (code, out) == (0, "Valid. [host.detect.redis]\n"), err

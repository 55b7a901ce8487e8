"""The repository client: index checks, version resolution, checked downloads, archive safety."""

from __future__ import annotations

import contextlib
import json
import stat
import zipfile
from pathlib import Path

import pytest
from conftest import free_port, serve
from packaging.specifiers import SpecifierSet

from trek_tasks.cli import main
from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.hub import (
    MAX_ARCHIVE_BYTES,
    Index,
    Repository,
    listing,
    read_archive,
    sha256_hex,
    shown_url,
    verify,
)
from trek_tasks.pack import zip_bytes

PARA = "id: demo\nschemaVersion: '0.2'\nversion: '1.0.0'\ninputs: {}\noutputs: {}\n"


def index_doc(**versions: dict) -> dict:
    return {"format": 1, "scripts": {"demo": {"title": "Demo", "versions": versions}}}


def release(data: bytes, path: str = "demo/1.0.0/dist/script.zip") -> dict:
    return {"path": path, "sha256": sha256_hex(data), "size": len(data)}


def crafted(*members: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    """A zip written member by member, exactly as given (no safety of our own)."""
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def special(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def good_archive() -> bytes:
    return zip_bytes([("demo.para", PARA.encode()), ("handler/handler.py", b"print(1)\n")])


# --- index ----------------------------------------------------------------------------


def test_bundled_index_lists_the_shipped_scripts() -> None:
    index = Repository().index()
    assert sorted(index.scripts) == [
        "ansibleping",
        "blckssettags",
        "callservice",
        "hostcommand",
        "notification",
    ]
    assert index.entry("notification").versions() == ["0.5.1", "0.5.0", "0.4.0"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", "0.5.1"),
        ("==0.4.0", "0.4.0"),
        (">=0.4,<0.6", "0.5.1"),
        ("~=0.4.0", "0.4.0"),
        ("!=0.5.1", "0.5.0"),
        ("<0.5", "0.4.0"),
    ],
)
def test_resolve_takes_the_newest_allowed_version(spec: str, expected: str) -> None:
    index = Repository().index()
    assert str(index.resolve("notification", SpecifierSet(spec), "arg").version) == expected


def test_no_matching_version_names_the_versions_that_exist() -> None:
    index = Repository().index()
    with pytest.raises(BadInput) as caught:
        index.resolve("notification", SpecifierSet(">=1.0"), "notification>=1.0")
    assert str(caught.value) == (
        "notification>=1.0: no version of notification matches '>=1.0'; "
        "available: 0.5.1, 0.5.0, 0.4.0"
    )


def test_unknown_script_suggests_close_ids() -> None:
    with pytest.raises(BadInput) as caught:
        Repository().index().entry("notifcation")
    assert str(caught.value) == (
        "notifcation: unknown script 'notifcation' in the bundled repository; "
        "did you mean 'notification'?"
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "malformed index: expected an object with 'scripts'"),
        ({"format": 2, "scripts": {}}, "index format 2 is not supported"),
        ({"scripts": {"a b": {"versions": {}}}}, "malformed index: scripts.a b is not a valid"),
        ({"scripts": {"demo": {}}}, "malformed index: scripts.demo must be an object with"),
        (index_doc(**{"one": {}}), "scripts.demo.versions.one is not a PEP 440 version"),
        (
            index_doc(**{"1.0.0": {"path": "../x.zip", "sha256": "0" * 64, "size": 1}}),
            "scripts.demo.versions.1.0.0.path must be a relative path inside the repository",
        ),
        (
            index_doc(**{"1.0.0": {"path": "/etc/x.zip", "sha256": "0" * 64, "size": 1}}),
            "scripts.demo.versions.1.0.0.path must be a relative path",
        ),
        (
            index_doc(**{"1.0.0": {"path": "x.zip", "sha256": "abc", "size": 1}}),
            "scripts.demo.versions.1.0.0.sha256 must be 64 lowercase hex digits",
        ),
        (
            index_doc(**{"1.0.0": {"path": "x.zip", "sha256": "0" * 64, "size": True}}),
            "scripts.demo.versions.1.0.0.size must be a byte count",
        ),
    ],
)
def test_malformed_index_is_refused_with_the_key(document: object, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        Index.parse(document, "repo/index.json", "repo")
    assert caught.value.where == "repo/index.json"
    assert message in caught.value.message


def test_index_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text("{nope")
    with pytest.raises(BadInput) as caught:
        Repository(str(tmp_path)).index()
    assert caught.value.where == str(tmp_path / "index.json")
    assert caught.value.message.startswith("malformed index: not JSON")


def test_folder_without_index(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as caught:
        Repository(str(tmp_path)).index()
    assert caught.value.message == (
        f"no index.json in {tmp_path}; check script_repository (`trek config`)"
    )


# --- repositories: folder, file:// and HTTP --------------------------------------------


def make_repository(folder: Path, data: bytes) -> Path:
    (folder / "demo/1.0.0/dist").mkdir(parents=True)
    (folder / "demo/1.0.0/dist/script.zip").write_bytes(data)
    (folder / "index.json").write_text(json.dumps(index_doc(**{"1.0.0": release(data)})))
    return folder


@pytest.mark.parametrize("form", ["path", "relative", "file-url"])
def test_folder_repository_fetches_checked_bytes(tmp_path: Path, form: str) -> None:
    folder = make_repository(tmp_path / "repo", good_archive())
    location = {"path": str(folder), "relative": "repo", "file-url": folder.as_uri()}[form]
    repository = Repository(location, base=tmp_path)
    entry = repository.index().entry("demo")
    assert repository.fetch(entry.releases[0]) == good_archive()
    assert repository.source(entry.releases[0]) == (folder / "demo/1.0.0/dist/script.zip").as_uri()


def test_http_repository_fetches_checked_bytes(tmp_path: Path) -> None:
    folder = make_repository(tmp_path / "repo", good_archive())
    with serve(folder) as url:
        repository = Repository(url + "/")
        entry = repository.index().entry("demo")
        assert repository.fetch(entry.releases[0]) == good_archive()
        assert repository.source(entry.releases[0]) == f"{url}/demo/1.0.0/dist/script.zip"


def test_altered_archive_is_refused_with_a_sha256_message(tmp_path: Path) -> None:
    folder = make_repository(tmp_path / "repo", good_archive())
    altered = zip_bytes([("demo.para", PARA.encode()), ("handler/handler.py", b"print(2)\n")])
    assert len(altered) == len(good_archive())
    (folder / "demo/1.0.0/dist/script.zip").write_bytes(altered)
    with serve(folder) as url:
        repository = Repository(url)
        with pytest.raises(BadInput) as caught:
            repository.fetch(repository.index().entry("demo").releases[0])
    assert caught.value.where == f"{url}/demo/1.0.0/dist/script.zip"
    assert caught.value.message == (
        f"sha256 mismatch: expected {sha256_hex(good_archive())}, got {sha256_hex(altered)}; "
        "the archive changed after it was indexed, refusing it"
    )


@pytest.mark.parametrize(("cut", "got"), [(-4, "got {n}"), (4, "got more")])
@pytest.mark.parametrize("served", [False, True])
def test_archive_of_another_size_is_refused(
    tmp_path: Path, cut: int, got: str, served: bool
) -> None:
    folder = make_repository(tmp_path / "repo", good_archive())
    data = good_archive()[:cut] if cut < 0 else good_archive() + b"tail"
    (folder / "demo/1.0.0/dist/script.zip").write_bytes(data)
    expected = len(good_archive())
    message = (
        f"size mismatch: expected {expected} bytes, {got.format(n=len(data))}; "
        "the archive changed after it was indexed, refusing it"
    )
    with contextlib.ExitStack() as stack:
        location = stack.enter_context(serve(folder)) if served else str(folder)
        repository = Repository(location)
        with pytest.raises(BadInput) as caught:
            repository.fetch(repository.index().entry("demo").releases[0])
    assert caught.value.message == message


def test_http_404_names_the_url(tmp_path: Path) -> None:
    with serve(tmp_path) as url:
        with pytest.raises(BadInput) as caught:
            Repository(url).index()
    assert str(caught.value) == (
        f"{url}/index.json: HTTP 404 File not found; check script_repository"
    )


def test_unreachable_repository_is_a_network_failure_naming_url_and_reason() -> None:
    port = free_port()
    with pytest.raises(StepFailed) as caught:
        Repository(f"http://user:secret@127.0.0.1:{port}/repo?token=abc").index()
    assert str(caught.value) == (
        f"http://127.0.0.1:{port}/repo/index.json?...: cannot download: Connection refused"
    )
    assert "secret" not in str(caught.value) and "abc" not in str(caught.value)


def test_shown_url_drops_credentials_and_query() -> None:
    assert shown_url("https://u:p@host:8443/a/b?token=x") == "https://host:8443/a/b?..."
    assert shown_url("https://host/a") == "https://host/a"


def test_verify_accepts_the_promised_bytes() -> None:
    verify(b"abc", sha256_hex(b"abc"), 3, "here")


# --- archives ---------------------------------------------------------------------------


def test_good_archive_names_its_script() -> None:
    archive = read_archive(good_archive(), "x.zip")
    assert (archive.id, archive.version, archive.sha256) == (
        "demo",
        "1.0.0",
        sha256_hex(good_archive()),
    )


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (
            [("demo.para", PARA.encode()), ("../evil", b"x")],
            "archive member '../evil' escapes the target folder; refusing it",
        ),
        (
            [("demo.para", PARA.encode()), ("handler/../../evil", b"x")],
            "archive member 'handler/../../evil' escapes the target folder; refusing it",
        ),
        (
            [("demo.para", PARA.encode()), ("/etc/evil", b"x")],
            "archive member '/etc/evil' has an absolute path; refusing it",
        ),
        (
            [("demo.para", PARA.encode()), (special("link", stat.S_IFLNK | 0o777), b"/etc")],
            "archive member 'link' is a symbolic link; refusing it",
        ),
        (
            [("demo.para", PARA.encode()), (special("dev", stat.S_IFCHR | 0o644), b"")],
            "archive member 'dev' is a character device; refusing it",
        ),
        (
            [("demo.para", PARA.encode()), (special("fifo", stat.S_IFIFO | 0o644), b"")],
            "archive member 'fifo' is a named pipe; refusing it",
        ),
        (
            [("handler/handler.py", b"")],
            "a script archive holds one <id>.para at its top level; found none",
        ),
        (
            [("demo.para", PARA.encode()), ("other.para", PARA.encode())],
            "a script archive holds one <id>.para at its top level; found demo.para, other.para",
        ),
        ([("other.para", PARA.encode())], "other.para in the archive must have 'id: other'"),
        (
            [("demo.para", PARA.replace("'1.0.0'", "'one'").encode())],
            "demo.para in the archive has no valid version ('one')",
        ),
    ],
)
def test_unsafe_or_broken_archives_are_refused(
    members: list[tuple[str | zipfile.ZipInfo, bytes]], message: str
) -> None:
    with pytest.raises(BadInput) as caught:
        read_archive(crafted(*members), "evil.zip")
    assert str(caught.value) == f"evil.zip: {message}"


def test_archive_unpacking_past_the_limit_is_refused() -> None:
    zeros = b"\0" * (MAX_ARCHIVE_BYTES + 1)
    data = zip_bytes([("demo.para", PARA.encode()), ("handler/big.bin", zeros)])
    assert len(data) < MAX_ARCHIVE_BYTES // 100
    with pytest.raises(BadInput) as caught:
        read_archive(data, "bomb.zip")
    assert str(caught.value) == "bomb.zip: archive unpacks to more than 50 MB; refusing it"


def test_not_a_zip() -> None:
    with pytest.raises(
        BadInput, match=r"^x.zip: not a readable zip archive \(File is not a zip file\)$"
    ):
        read_archive(b"PK but not really", "x.zip")


# --- listscripts -----------------------------------------------------------------------


def test_listing_of_the_bundled_repository() -> None:
    lines = listing(Repository())
    assert [line.split()[0] for line in lines] == [
        "ansibleping",
        "blckssettags",
        "callservice",
        "hostcommand",
        "notification",
    ]
    assert lines[4].startswith("notification  0.5.1, 0.5.0, 0.4.0  ")
    assert listing(Repository(), "notification") == ["0.5.1", "0.5.0", "0.4.0"]


def test_listscripts_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["listscripts"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out] == [
        ["ansibleping", "0.1.0"],
        ["blckssettags", "0.3.1,"],
        ["callservice", "0.1.0"],
        ["hostcommand", "0.1.0"],
        ["notification", "0.5.1,"],
    ]
    assert main(["listscripts", "notification"]) == 0
    assert capsys.readouterr().out == "0.5.1\n0.5.0\n0.4.0\n"


def test_listscripts_unknown_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["listscripts", "blckssettag"]) == 2
    assert capsys.readouterr().err == (
        "trek: error: blckssettag: unknown script 'blckssettag' in the bundled repository; "
        "did you mean 'blckssettags'?\n"
    )


def test_listscripts_follows_the_global_script_repository(
    tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_repository(tmp_path / "repo", good_archive())
    with serve(folder) as url:
        assert main(["config", "--global", "script_repository", url]) == 0
        capsys.readouterr()
        assert main(["listscripts"]) == 0
    assert capsys.readouterr().out == "demo  1.0.0  Demo\n"

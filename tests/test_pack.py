"""Deterministic zips: same input, same bytes; nothing private or generated is packed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import build_reference, require_tool

from trek_tasks.cli import main
from trek_tasks.pack import ZIP_EPOCH, zip_bytes

WORKFLOW_ZIP = Path("bin") / "host.detect.redis-0.1.0.zip"
SCRIPT_ZIP = Path("bin") / "blcks.detectredis-0.1.0.zip"
SCRIPT = Path("src") / "blcks" / "detectredis"
SCRIPT_MEMBERS = [
    "detectredis.para",
    "handler/__init__.py",
    "handler/handler.py",
    "handler/requirements.txt",
    "openfaas.yml",
]


@pytest.fixture
def ref(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """The reference project with its scripts installed (the lock written), as after
    `trek install`: packing output is then only about packing."""
    root = build_reference(tmp_path / "host.detect.redis")
    monkeypatch.chdir(root)
    assert main(["install"]) == 0
    capsys.readouterr()
    return root


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def pack(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["pack", *args])
    return code, capsys.readouterr().out


def test_zip_bytes_ignore_member_order_and_fix_time_and_mode() -> None:
    members = [("b/x.py", b"x = 1\n"), ("a.txt", b"a"), ("b/a.py", b"")]
    data = zip_bytes(members)
    assert data == zip_bytes(list(reversed(members)))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["a.txt", "b/a.py", "b/x.py"]
        for info in infos:
            assert info.date_time == ZIP_EPOCH
            assert info.external_attr >> 16 == 0o100644
            assert info.compress_type == zipfile.ZIP_DEFLATED
        assert archive.read("b/x.py") == b"x = 1\n"


def test_pack_all_writes_both_zips(ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = pack(capsys, "-a")
    workflow = "Success packing, output: bin/host.detect.redis-0.1.0.zip\n"
    script = (
        "Packing blcks: src/blcks/detectredis\n"
        "Success packing, output: bin/blcks.detectredis-0.1.0.zip\n"
    )
    # both wait on `validate`; doit starts the tasks it releases together in no fixed order
    assert (code, out) in ((0, workflow + script), (0, script + workflow))
    assert names(ref / WORKFLOW_ZIP) == ["manifest.json", "packages.json", "src/graph.yml"]
    for name in ("manifest.json", "packages.json", "src/graph.yml"):
        assert member(ref / WORKFLOW_ZIP, name) == (ref / name).read_bytes()
    assert names(ref / SCRIPT_ZIP) == SCRIPT_MEMBERS
    for name in SCRIPT_MEMBERS:
        assert member(ref / SCRIPT_ZIP, name) == (ref / SCRIPT / name).read_bytes()


def test_pack_without_all_packs_only_the_workflow(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pack(capsys) == (0, "Success packing, output: bin/host.detect.redis-0.1.0.zip\n")
    assert sorted(p.name for p in (ref / "bin").iterdir()) == ["host.detect.redis-0.1.0.zip"]


def test_second_pack_does_nothing(ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack(capsys, "-a")
    before = (ref / WORKFLOW_ZIP).stat().st_mtime_ns, (ref / SCRIPT_ZIP).stat().st_mtime_ns
    code, out = pack(capsys, "-a")
    assert (code, sorted(out.splitlines())) == (
        0,
        [
            "bin/blcks.detectredis-0.1.0.zip is up to date",
            "bin/host.detect.redis-0.1.0.zip is up to date",
        ],
    )
    assert pack(capsys) == (0, "bin/host.detect.redis-0.1.0.zip is up to date\n")
    assert main(["pack", "-a", "-v"]) == 0
    out = capsys.readouterr().out
    assert "-- pack:workflow (up to date)\n" in out
    assert "-- pack:detectredis (up to date)\n" in out
    assert (
        (ref / WORKFLOW_ZIP).stat().st_mtime_ns,
        (ref / SCRIPT_ZIP).stat().st_mtime_ns,
    ) == before


def test_packing_twice_gives_identical_bytes(ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack(capsys, "-a")
    first = sha(ref / WORKFLOW_ZIP), sha(ref / SCRIPT_ZIP)
    # new timestamps and modes, no doit state: the zips must come out the same
    os.remove(ref / ".trek" / "doit.db")
    for path in (ref / WORKFLOW_ZIP, ref / SCRIPT_ZIP):
        path.unlink()
    for path in ref.rglob("*"):
        os.utime(path, (1_900_000_000, 1_900_000_000))
    (ref / SCRIPT / "handler" / "handler.py").chmod(0o755)
    (ref / "src" / "graph.yml").chmod(0o600)
    assert pack(capsys, "-a")[0] == 0
    assert (sha(ref / WORKFLOW_ZIP), sha(ref / SCRIPT_ZIP)) == first


def test_same_project_in_another_folder_gives_identical_bytes(
    ref: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pack(capsys, "-a")
    other = build_reference(tmp_path / "elsewhere" / "copy")
    monkeypatch.chdir(other)
    pack(capsys, "-a")
    assert sha(other / WORKFLOW_ZIP) == sha(ref / WORKFLOW_ZIP)
    assert sha(other / SCRIPT_ZIP) == sha(ref / SCRIPT_ZIP)


def test_private_hidden_and_generated_files_are_never_packed(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = ref / SCRIPT
    junk = {
        "handler/__pycache__/handler.cpython-311.pyc": b"\0",
        "handler/stale.pyc": b"\0",
        "handler/.env": b"TOKEN=x",
        "handler/.cache/data": b"x",
        "handler/.pytest_cache/v": b"x",
        "handler/sub/util.py": b"VALUE = 1\n",
        ".trek/config.json": b'{"marvin_JWT": "eyJ-credential-1"}',
        "inputs/event.yml": b"tag_name: redis\n",
        "bin/old.zip": b"PK",
        "tests/test_handler.py": b"",
        ".gitignore": b"bin/\n",
    }
    for name, data in junk.items():
        (script / name).parent.mkdir(parents=True, exist_ok=True)
        (script / name).write_bytes(data)
    (ref / ".trek" / "config.json").write_text(
        '{"marvin_JWT": "eyJ-credential-2", "marvin_secret": "eyJ-credential-3"}'
    )
    (ref / "bin").mkdir()
    (ref / "bin" / "leftover.txt").write_text("x")
    assert pack(capsys, "-a")[0] == 0
    assert names(ref / SCRIPT_ZIP) == sorted([*SCRIPT_MEMBERS, "handler/sub/util.py"])
    assert names(ref / WORKFLOW_ZIP) == ["manifest.json", "packages.json", "src/graph.yml"]
    for zipped in (ref / SCRIPT_ZIP, ref / WORKFLOW_ZIP):
        with zipfile.ZipFile(zipped) as archive:
            assert all(b"eyJ-credential" not in archive.read(n) for n in archive.namelist())


def test_zip_entries_have_fixed_time_and_mode(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ref / SCRIPT / "handler" / "handler.py").chmod(0o755)
    pack(capsys, "-a")
    for zipped in (ref / WORKFLOW_ZIP, ref / SCRIPT_ZIP):
        with zipfile.ZipFile(zipped) as archive:
            for info in archive.infolist():
                assert info.date_time == ZIP_EPOCH
                assert info.external_attr >> 16 == 0o100644


def test_auto_pos_adds_positions_to_the_packed_graph_only(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("dot")
    user_graph = (ref / "src" / "graph.yml").read_bytes()
    assert pack(capsys, "--auto-pos")[0] == 0
    assert (ref / "src" / "graph.yml").read_bytes() == user_graph
    packed = yaml.safe_load(member(ref / WORKFLOW_ZIP, "src/graph.yml"))
    nodes = packed["graph"]["nodes"]
    assert [n["id"] for n in nodes] == ["0", "1", "2", "3", "4", "5"]
    for node in nodes:
        position = node["metadata"]["position"]
        assert set(position) == {"x", "y"}
        assert all(isinstance(v, float) for v in position.values())
    by_id = {n["id"]: n["metadata"]["position"]["x"] for n in nodes}
    assert by_id["0"] < by_id["2"] < by_id["3"] < by_id["4"] < by_id["1"]
    # apart from the positions the packed graph is the user's graph
    for node in nodes:
        del node["metadata"]["position"]
    assert packed == yaml.safe_load(user_graph)

    first = sha(ref / WORKFLOW_ZIP)
    (ref / WORKFLOW_ZIP).unlink()
    assert pack(capsys, "--auto-pos")[0] == 0
    assert sha(ref / WORKFLOW_ZIP) == first


def test_switching_auto_pos_off_repacks_the_plain_graph(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("dot")
    pack(capsys, "--auto-pos")
    assert pack(capsys) == (0, "Success packing, output: bin/host.detect.redis-0.1.0.zip\n")
    assert member(ref / WORKFLOW_ZIP, "src/graph.yml") == (ref / "src" / "graph.yml").read_bytes()


def test_invalid_project_packs_nothing(ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = ref / "src" / "graph.yml"
    graph.write_text(graph.read_text().replace("target: '3'", "target: '9'"))
    assert main(["pack", "-a"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("trek: error: src/graph.yml:")
    assert "'9'" in err
    assert not (ref / "bin").exists()


def test_packblcks_zips_one_script_folder(ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["packblcks", "-p", str(SCRIPT)]) == 0
    assert capsys.readouterr() == (
        "Packing blcks: src/blcks/detectredis\n"
        "Success packing, output: src/blcks/detectredis/bin/blcks.detectredis-0.1.0.zip\n",
        "",
    )
    local = ref / SCRIPT / SCRIPT_ZIP
    assert names(local) == SCRIPT_MEMBERS
    assert pack(capsys, "-a")[0] == 0
    assert names(ref / SCRIPT_ZIP) == SCRIPT_MEMBERS
    assert sha(ref / SCRIPT_ZIP) == sha(local)


def test_packblcks_output_folder(
    ref: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ref / SCRIPT)
    assert main(["packblcks", "-o", "../../../dist"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Success packing, output: ../../../dist/blcks.detectredis-0.1.0.zip"
    )
    assert names(ref / "dist" / "blcks.detectredis-0.1.0.zip") == SCRIPT_MEMBERS


def test_packblcks_outside_a_script_folder(ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["packblcks", "-p", "src"]) == 2
    assert capsys.readouterr() == (
        "",
        "trek: error: src: no src.para here; not a blcks script folder\n",
    )


def test_packblcks_refuses_a_script_without_its_handler(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ref / SCRIPT / "handler" / "handler.py").unlink()
    assert main(["packblcks", "-p", str(SCRIPT)]) == 2
    assert capsys.readouterr() == (
        "",
        "trek: error: src/blcks/detectredis: blcks script 'detectredis' has no "
        "handler/handler.py; run `trek initblcks -p src/blcks/detectredis`\n",
    )
    assert not (ref / SCRIPT / "bin").exists()


def test_packages_json_lists_what_is_packed(ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack(capsys)
    packed = json.loads(member(ref / WORKFLOW_ZIP, "packages.json"))
    assert packed == {"packages": {"blckssettags": "==0.3.0", "notification": "==0.5.0"}}


def test_a_file_in_the_way_of_bin_is_a_failed_step(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ref / "bin").write_text("")
    assert main(["pack"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1] == (
        "trek: error: bin: a file is in the way of the folder for host.detect.redis-0.1.0.zip; "
        "move it"
    )
    assert (ref / "bin").read_text() == ""

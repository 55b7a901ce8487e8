"""Bad input through the real CLI (issue 10): one line per problem naming the file, exit 2,
nothing changed on disk, bounded time and memory, whatever a user file holds."""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from pathlib import Path

import pytest
from conftest import EXAMPLE, is_read_cache

from trek_tasks.cli import main
from trek_tasks.files import MAX_FILE_BYTES
from trek_tasks.hub import bundled_path
from trek_tasks.project import copy_sources

NOT_ALLOWED = "control character U+0001 is not allowed; remove it"


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example, its scripts installed, as the current folder."""
    root = copy_sources(EXAMPLE, tmp_path / EXAMPLE.name)
    monkeypatch.chdir(root)
    assert main(["install"]) == 0
    return root


def trek(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    """Exit code and stderr lines of ``trek ARGS`` (stdout is dropped)."""
    code = main(list(args))
    return code, capsys.readouterr().err.splitlines()


def tree(root: Path) -> dict[str, str]:
    """Every file below ``root`` but the caches of what trek read, with a digest of its bytes."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not is_read_cache(path)
    }


def laughs(levels: int) -> str:
    """A "billion laughs" document: each level ten aliases of the one below."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def set_json(path: Path, **values: object) -> None:
    data = json.loads(path.read_text())
    data.update(values)
    path.write_text(json.dumps(data, indent=2) + "\n")


# --- 1. nothing destroys data ----------------------------------------------------------


def test_a_typo_in_packages_json_changes_nothing(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    (installed / "packages.json").write_text('{"pakages": {"notification": "==0.5.0"}}\n')
    before = tree(installed)
    assert trek(capsys, "pack", "-a") == (
        2,
        [
            "trek: error: packages.json:1:1: the file needs 'packages'",
            "trek: error: packages.json:1:2: unknown key 'pakages'; did you mean 'packages'?",
        ],
    )
    assert tree(installed) == before  # trek_packages/, the lock, bin/: all as they were
    assert (installed / "trek_packages" / "notification").is_dir()
    assert trek(capsys, "uninstall", "notification")[0] == 2
    assert trek(capsys, "install")[0] == 2
    assert tree(installed) == before


def test_a_bad_lock_changes_nothing(installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    set_json(installed / "packages.lock.json", version=2)
    before = tree(installed)
    assert trek(capsys, "pack", "-a") == (
        2,
        [
            "trek: error: packages.lock.json:2:14: 'version' must be 1; delete "
            "packages.lock.json and run `trek install` to re-create it"
        ],
    )
    assert tree(installed) == before


def test_packages_json_that_is_a_folder_uninstalls_nothing(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    (installed / "packages.json").unlink()
    (installed / "packages.json").mkdir()
    before = tree(installed)
    assert trek(capsys, "install") == (2, ["trek: error: packages.json: a folder, not a file"])
    assert tree(installed) == before


def test_a_failing_graph_leaves_the_previous_drawing(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["graph"]) == 0
    capsys.readouterr()
    drawn = tree(installed / ".trek")
    graph = installed / "src" / "graph.yml"
    graph.write_text(graph.read_text().replace("id: '5'", "id: five"))
    code, lines = trek(capsys, "graph")
    assert (code, lines[0]) == (
        2,
        "trek: error: src/graph.yml:46:11: node five: 'id' must be a node id: digits in "
        "quotes, e.g. '3'",
    )
    assert tree(installed / ".trek") == drawn


def test_a_script_id_dot_cannot_take_is_drawn_cut(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = installed / "src" / "graph.yml"
    graph.write_text(graph.read_text().replace("id: notification", "id: " + "n" * 20_000))
    assert main(["graph"]) == 0
    dot = (installed / ".trek" / "graph.gv").read_text()
    assert "5 [label=\"'" + "n" * 56 + '..." shape=box]' in dot


# --- 2. every loader: one line, exit 2 --------------------------------------------------


@pytest.mark.parametrize("command", [["validate"], ["pack", "-a"]])
def test_a_control_character_in_event_yml(
    installed: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    capsys.readouterr()
    (installed / "inputs" / "event.yml").write_bytes(b"x: \x01\n")
    before = tree(installed)
    assert trek(capsys, *command) == (2, [f"trek: error: inputs/event.yml:1:4: {NOT_ALLOWED}"])
    assert tree(installed) == before


@pytest.mark.parametrize(
    ("rel", "content", "line"),
    [
        ("src/graph.yml", b"graph:\n  x: \xff\n", "src/graph.yml:2:6: not UTF-8 text (byte 0xff: "),
        ("inputs/data.yml", b"a: " + b"9" * 5000 + b"\n", "inputs/data.yml:1:4: invalid YAML: "),
        ("packages.json", b'{"packages": ' + b"9" * 5000 + b"}", "packages.json:1:14: "),
        ("packages.json", b"[" * 1000, "packages.json:1:101: invalid JSON: nested more than "),
        ("src/graph.yml", b"[" * 100_000, "src/graph.yml:1:101: invalid YAML: values nested "),
        ("inputs/event.yml", b"a: &a [*a]\n", "inputs/event.yml:1:8: invalid YAML: alias *a "),
        ("inputs/event.yml", b"d: 2001-13-45\n", "inputs/event.yml:1:4: invalid YAML: cannot "),
        (".trek/config.json", b'{"blcks_code_base": 5}', ".trek/config.json:1:21: "),
        (
            "packages.json",
            b'{"packages": {"notification": "a\\u0000.zip"}}',
            "packages.json:1:31: ",
        ),
        (".trek/config.json", b'{"input_data_path": "a\\u0000b"}', ".trek/config.json:1:21: "),
    ],
)
def test_each_loader_fails_with_one_located_line(
    installed: Path,
    capsys: pytest.CaptureFixture[str],
    rel: str,
    content: bytes,
    line: str,
) -> None:
    capsys.readouterr()
    (installed / rel).write_bytes(content)
    for command in (["validate"], ["pack", "-a"]):
        code, lines = trek(capsys, *command)
        assert (code, len(lines)) == (2, 1), lines
        assert lines[0].startswith(f"trek: error: {line}"), lines


def test_a_project_path_too_long(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = trek(capsys, "validate", "-p", str(tmp_path / ("a" * 5000)))
    assert (code, len(lines)) == (2, 1)
    assert lines[0].endswith(
        "...: not a Trek project (no manifest.json here or above); run `trek createproject "
        "NAME` or `trek init`"
    )


def test_a_long_unknown_package_name_is_cut(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by tests/test_fuzz_files.py: the name was echoed whole (a 5,127-character line)."""
    capsys.readouterr()
    name = "9" * 5000 + "blckssettags"
    (installed / "packages.json").write_text(json.dumps({"packages": {name: "==0.3.0"}}))
    unknown = (
        f"unknown script '{'9' * 56}... in the bundled repository; `trek listscripts` shows "
        "what it holds"
    )
    before = tree(installed)
    assert trek(capsys, "pack", "-a") == (2, [f"trek: error: packages.json:1:1: {unknown}"])
    assert tree(installed) == before
    assert trek(capsys, "install", "9" * 3000) == (2, [f"trek: error: '{'9' * 56}...: {unknown}"])


def test_an_install_argument_too_long_for_a_path(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by tests/test_fuzz_files.py: an OSError traceback (File name too long)."""
    capsys.readouterr()
    cut = f"'{'9' * 56}..."
    assert trek(capsys, "install", "9" * 3000 + ".zip") == (
        2,
        [f"trek: error: {cut}: a path too long for the file system"],
    )
    assert trek(capsys, "install", "x y" * 2000) == (
        2,
        [
            f"trek: error: {'x y' * 19!r:.57}...: not a script name, a name with a version "
            "specifier (notification==0.5.0), a URL or a zip path"
        ],
    )


def test_the_messages_of_each_class(installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    cases = {
        "inputs/data.yml": (b"a: " + b"9" * 5000 + b"\n", "a number of more than 4300 digits"),
        "packages.json": (b'{"packages": ' + b"9" * 5000 + b"}", "invalid JSON: a number of "),
        ".trek/config.json": (
            b'{"blcks_code_base": 5}',
            "'blcks_code_base' must be a string, not a number; put it in quotes",
        ),
    }
    for rel, (content, words) in cases.items():
        original = (installed / rel).read_bytes()
        (installed / rel).write_bytes(content)
        code, lines = trek(capsys, "validate")
        (installed / rel).write_bytes(original)
        assert code == 2 and words in lines[0], lines


def test_a_key_with_a_newline_stays_on_one_line_and_long_values_are_cut(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    (installed / "inputs" / "event.yml").write_text("{}\n")
    key = "bad\nkey" + "x" * 500
    (installed / "packages.json").write_text(json.dumps({"packages": {}, key: 1}))
    assert trek(capsys, "validate") == (
        2,
        [
            "trek: error: packages.json:1:18: unknown key 'bad\\nkey"
            + "x" * 48
            + "...; known keys: packages"
        ],
    )


# --- 3. bounded resources ---------------------------------------------------------------


def test_an_alias_bomb_in_graph_yml_is_refused_at_once(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    (installed / "src" / "graph.yml").write_text(laughs(9))
    started = time.monotonic()
    code, lines = trek(capsys, "validate")
    assert time.monotonic() - started < 2
    assert (code, lines) == (
        2,
        [
            "trek: error: src/graph.yml:5:45: invalid YAML: aliases expand to more than "
            "100,000 values; write the values out"
        ],
    )


def test_small_anchors_still_work(installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    graph = installed / "src" / "graph.yml"
    text = graph.read_text()
    text = text.replace("        type: 'string'\n", "        type: &text 'string'\n", 1)
    text = text.replace("          type: 'string'\n", "          type: *text\n")
    graph.write_text(text)
    assert "*text" in text
    assert main(["validate"]) == 0


def test_an_entry_naming_a_device_is_refused_at_once(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    (installed / "manifest.json").write_text('{\n  "entry": "src/zero.yml"\n}\n')
    (installed / "src" / "zero.yml").symlink_to("/dev/zero")
    started = time.monotonic()
    code, lines = trek(capsys, "validate")
    assert time.monotonic() - started < 1
    assert (code, lines) == (
        2,
        [
            "trek: error: manifest.json:2:12: 'entry' must name a file inside the project, "
            "not 'src/zero.yml'"
        ],
    )
    (installed / "manifest.json").write_text('{\n  "entry": "/dev/zero"\n}\n')
    started = time.monotonic()
    assert trek(capsys, "pack")[0] == 2
    assert time.monotonic() - started < 1


def test_user_files_are_read_only_when_regular_and_small(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    event = installed / "inputs" / "event.yml"
    event.unlink()
    os.mkfifo(event)  # reading a pipe nobody writes to would wait forever
    set_json(installed / ".trek" / "config.json", input_event_path="")  # the default
    assert trek(capsys, "validate") == (
        2,
        ["trek: error: inputs/event.yml: not a regular file (a device, a pipe or a socket)"],
    )
    event.unlink()
    event.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    assert trek(capsys, "validate") == (
        2,
        ["trek: error: inputs/event.yml: larger than 8 MB; refusing to read it"],
    )


def test_a_setting_naming_a_folder_is_reported_at_the_setting(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    set_json(installed / ".trek" / "config.json", input_data_path="inputs")
    code, lines = trek(capsys, "validate")
    assert code == 2
    assert lines[-1].startswith("trek: error: .trek/config.json:")
    assert lines[-1].endswith(": 'input_data_path' names 'inputs': a folder, not a file")


def test_an_alias_bomb_in_an_archive_para_is_refused(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    source = bundled_path() / "notification" / "0.5.0" / "dist" / "script.zip"
    crafted = installed / "bomb.zip"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(crafted, "w") as out:
        for info in original.infolist():
            data = original.read(info)
            if info.filename == "notification.para":
                data = b"id: notification\nversion: 0.5.0\n" + laughs(9).encode()
            out.writestr(info, data)
    before = tree(installed / "trek_packages")
    started = time.monotonic()
    code, lines = trek(capsys, "install", "bomb.zip")
    assert time.monotonic() - started < 2
    assert (code, lines) == (
        2,
        [
            "trek: error: bomb.zip: notification.para:7:45: invalid YAML: aliases expand to "
            "more than 100,000 values; write the values out (in the archive)"
        ],
    )
    assert tree(installed / "trek_packages") == before


# --- 4. the workflow file stays inside the project ------------------------------------


@pytest.mark.parametrize("entry", ["../outside-graph.yml", "/etc/hostname"])
def test_an_entry_outside_the_project_is_one_clear_error(
    installed: Path, capsys: pytest.CaptureFixture[str], entry: str
) -> None:
    capsys.readouterr()
    (installed.parent / "outside-graph.yml").write_text((installed / "src/graph.yml").read_text())
    (installed / "manifest.json").write_text(json.dumps({"entry": entry}, indent=2) + "\n")
    before = tree(installed)
    for command in (["validate"], ["pack"], ["graph"]):
        assert trek(capsys, *command) == (
            2,
            [
                "trek: error: manifest.json:2:12: 'entry' must name a file inside the project, "
                f"not {entry!r}"
            ],
        )
    assert tree(installed) == before


def test_an_entry_naming_a_folder_names_the_manifest(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    (installed / "manifest.json").write_text('{\n  "entry": "src"\n}\n')
    assert trek(capsys, "graph") == (
        2,
        ["trek: error: manifest.json:2:12: 'entry' names 'src': a folder, not a file"],
    )

"""Script kinds: the registry, detection, a script's files (one ignore rule), zip names,
and the places that ask the kind (project scan, pack, tests, engine, config)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

import pytest

from trek_tasks import script_tests
from trek_tasks.config import DEFAULTS
from trek_tasks.engine import Engine, NodeStarted, RunSettings
from trek_tasks.errors import BadInput
from trek_tasks.files import ignored
from trek_tasks.graph import Workflow
from trek_tasks.kinds import KINDS, all_kinds, default_kind, find_kind, load_kind
from trek_tasks.kinds.base import Command, Flaw, ScriptKind, member_files, para_file
from trek_tasks.kinds.blcks import BlcksKind
from trek_tasks.pack import script_members, script_zip_name
from trek_tasks.project import Project, Script, scan_scripts, script_at
from trek_tasks.validate import load_schema

PARA = "id: {id}\nversion: '1.2.0'\n"


def blcks_folder(parent: Path, script_id: str = "demo", handler: bool = True) -> Path:
    folder = parent / script_id
    folder.mkdir(parents=True)
    (folder / f"{script_id}.para").write_text(PARA.format(id=script_id))
    if handler:
        (folder / "handler").mkdir()
        (folder / "handler" / "handler.py").write_text("print(1)\n")
    return folder


def test_the_registry_names_classes_and_loads_one_instance_per_kind() -> None:
    assert list(KINDS) == ["blcks", "shell", "ansible", "terraform"]
    assert KINDS["blcks"] == "trek_tasks.kinds.blcks:BlcksKind"
    assert KINDS["shell"] == "trek_tasks.kinds.shell:ShellKind"
    kind = load_kind("blcks")
    assert isinstance(kind, BlcksKind)
    assert load_kind("blcks") is kind
    assert all_kinds()[0] is kind and [k.name for k in all_kinds()] == list(KINDS)
    assert default_kind() is kind


def test_every_non_blcks_kind_has_a_runner_in_the_sdk() -> None:
    from blcks.tools import RUNNERS, load_runner

    assert sorted(RUNNERS) == sorted(set(KINDS) - {"blcks"})
    assert load_runner("shell").name == "shell"
    with pytest.raises(ValueError, match="unknown script kind 'perl'"):
        load_runner("perl")


def test_an_unknown_kind_suggests_the_closest() -> None:
    with pytest.raises(BadInput) as caught:
        load_kind("blck")
    assert str(caught.value) == "unknown script kind 'blck'; did you mean 'blcks'?"


def test_every_kind_says_what_the_protocol_asks() -> None:
    for kind in all_kinds():
        checked: ScriptKind = kind
        for attribute in ("name", "code_base_key", "zip_prefix", "templates", "script_type"):
            assert isinstance(getattr(checked, attribute), str) and getattr(checked, attribute)
        assert all(isinstance(item, str) for item in checked.sample)
        assert all(isinstance(item, str) for item in checked.implicit_requirements)
        assert isinstance(checked.localhost, bool)
        assert checked.zip_prefix == f"{checked.name}."


def test_blcks_facts() -> None:
    kind = load_kind("blcks")
    assert (kind.name, kind.code_base_key, kind.zip_prefix, kind.templates, kind.script_type) == (
        "blcks",
        "blcks_code_base",
        "blcks.",
        "blcks",
        "blcks",
    )


def test_detection_needs_the_para_and_the_main_file(tmp_path: Path) -> None:
    kind = load_kind("blcks")
    full = blcks_folder(tmp_path / "a")
    bare = blcks_folder(tmp_path / "b", handler=False)
    assert kind.detect(full, "demo")
    assert not kind.detect(bare, "demo")
    assert not kind.detect(full, "other")
    assert find_kind(full, "demo") is kind
    # A para alone (a script being written) is taken for the kind expected there.
    assert find_kind(bare, "demo") is kind
    assert find_kind(bare, "demo", fallback=kind) is kind
    assert find_kind(tmp_path, "demo") is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("handler/handler.py", False),
        ("handler/lib/util.py", False),
        ("handler/.env", True),
        ("handler/.#handler.py", True),
        ("handler/.handler.py.swp", True),
        ("handler/#handler.py#", True),
        ("handler/handler.py~", True),
        ("handler/#", False),
        ("handler/__pycache__/handler.cpython-311.pyc", True),
        ("handler/stale.pyc", True),
        ("handler/old.pyo", True),
        (".pytest_cache/v/cache", True),
        ("handler/.hidden/inner.py", True),
    ],
)
def test_one_ignore_rule_for_editor_hidden_and_cache_files(path: str, expected: bool) -> None:
    assert ignored(PurePath(path)) is expected


EDITOR_FILES = (
    ".handler.py.swp",
    "handler.py~",
    ".#handler.py",
    "#handler.py#",
    "__pycache__/handler.cpython-311.pyc",
)


def test_editor_files_never_restart_retest_repack_or_rerun(project: Path) -> None:
    """The one rule (``Script.files``) behind what ``up`` compares, what ``test`` and
    ``pack`` depend on, what a pack holds and the digests of ``execute`` and ``--reuse``."""
    from trek_tasks.environment import Environment
    from trek_tasks.localrun import code_digests, run_inputs
    from trek_tasks.runtimes.base import file_digests

    def seen() -> tuple[Any, ...]:
        loaded = Project.load(project)
        script = loaded.own["detectredis"]
        return (
            file_digests(script),
            script_tests.test_files(script),
            script_members(script),
            code_digests(Environment(loaded)),
            run_inputs(loaded),
        )

    before = seen()
    folder = project / "src" / "blcks" / "detectredis"
    for where in ("handler", "tests", "."):
        for name in EDITOR_FILES:
            (folder / where / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / where / name).write_text("editor state")
    assert seen() == before
    (folder / "handler" / "handler.py").write_text("# edited\n")
    files, _, members, codes, run = seen()
    assert files != before[0] and members != before[2] and codes != before[3] and run != before[4]


def test_a_scripts_files_are_para_openfaas_and_handler_without_ignored_ones(
    tmp_path: Path,
) -> None:
    folder = blcks_folder(tmp_path)
    for name, data in {
        "openfaas.yml": "x",
        "README.md": "not part of the script",
        "inputs/event.yml": "{}",
        "tests/test_handler.py": "",
        "tests/__pycache__/t.pyc": "",
        "handler/requirements.txt": "",
        "handler/lib/util.py": "",
        "handler/.env": "",
        "handler/handler.py~": "",
        "handler/.#handler.py": "",
        "handler/__pycache__/handler.cpython-311.pyc": "",
        "handler/stale.pyc": "",
    }.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(data)
    script = Script.load(folder, installed=False)
    assert script is not None and script.kind is load_kind("blcks")
    names = [p.relative_to(folder).as_posix() for p in script.files()]
    assert names == [
        "demo.para",
        "openfaas.yml",
        "handler/handler.py",
        "handler/lib/util.py",
        "handler/requirements.txt",
    ]
    assert [name for name, _ in script_members(script)] == names
    tests = [p.relative_to(folder).as_posix() for p in script_tests.test_files(script)]
    assert tests == [*names, "tests/test_handler.py"]
    assert script_tests.has_tests(script)
    assert script.requirements == folder / "handler" / "requirements.txt"


def test_no_tests_folder_means_no_tests(tmp_path: Path) -> None:
    script = Script.load(blcks_folder(tmp_path), installed=False)
    assert script is not None and not script_tests.has_tests(script)


def test_zip_name_carries_the_kind_prefix(tmp_path: Path) -> None:
    script = Script.load(blcks_folder(tmp_path), installed=False)
    assert script is not None
    assert script_zip_name(script) == "blcks.demo-1.2.0.zip"


def test_serving_and_testing_commands(tmp_path: Path) -> None:
    kind = load_kind("blcks")
    folder = blcks_folder(tmp_path)
    serve = kind.serve_command(folder, Path("/env/bin/python"), 8123)
    assert serve.args == [
        "/env/bin/python",
        "-m",
        "blcks.serve",
        "--script-dir",
        str(folder),
        "--port",
        "8123",
        "--kind",
        "blcks",
    ]
    tests = kind.test_command(folder, tmp_path / "env")
    assert tests.args[1:] == ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    assert tests.env["PYTHONPATH"].split(":")[0] == str(folder)


def test_script_at_answers_whether_a_folder_is_a_script_of_the_kind(tmp_path: Path) -> None:
    folder = blcks_folder(tmp_path)
    assert script_at(folder, "blcks").id == "demo"
    with pytest.raises(BadInput) as caught:
        script_at(tmp_path, "blcks")
    assert caught.value.message == f"no {tmp_path.name}.para here; not a blcks script folder"


def test_the_project_scans_every_kinds_code_base(tmp_path: Path) -> None:
    for kind in all_kinds():
        assert DEFAULTS[kind.code_base_key] == f"src/{kind.name}"
        assert kind.code_base_key in load_schema("config")["properties"]
    blcks_folder(tmp_path / "src" / "blcks", "one", handler=False)
    scanned = scan_scripts(tmp_path / "src" / "blcks", installed=False, fallback=load_kind("blcks"))
    assert list(scanned) == ["one"]
    assert scanned["one"].kind.name == "blcks"


def node(node_id: str, node_type: str, script: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"type": node_type}
    if script:
        meta["script"] = {"id": script}
    return {"id": node_id, "metadata": meta}


def test_the_engine_takes_scriptType_from_the_scripts_kind() -> None:
    workflow = Workflow.from_data(
        {
            "graph": {
                "metadata": {"templateId": "t", "version": "1"},
                "nodes": [node("0", "trigger"), node("2", "action", "a"), node("3", "action", "b")],
                "edges": [{"source": "0", "target": "2"}, {"source": "2", "target": "3"}],
            }
        }
    )
    settings = RunSettings("t", "r", {}, {}, {}, timeout=5, script_types={"b": "other"})
    events: list[Any] = []
    Engine(workflow, settings, lambda script_id, event, timeout: {}, [events.append]).run()
    started = {e.node.id: e.script_type for e in events if isinstance(e, NodeStarted)}
    assert started == {"0": "not_script", "2": "blcks", "3": "other"}


class ToyKind:
    """A kind registered by a test: `<id>.para` + `<id>.toy`, nothing else."""

    name = "toy"
    code_base_key = "toy_code_base"
    zip_prefix = "toy."
    templates = "toy"
    sample: tuple[str, ...] = ()
    script_type = "toy"
    implicit_requirements: tuple[str, ...] = ()
    localhost = False

    def detect(self, folder: Path, script_id: str) -> bool:
        return para_file(folder, script_id).is_file() and (folder / f"{script_id}.toy").is_file()

    def main_file(self, folder: Path, script_id: str) -> Path:
        return folder / f"{script_id}.toy"

    def files(self, folder: Path, script_id: str) -> list[Path]:
        return member_files(folder, script_id, (f"{script_id}.toy",), ())

    def problems(self, folder: Path, script_id: str) -> list[Flaw]:
        return []

    def test_files(self, folder: Path) -> list[Path]:
        return []

    def requirements(self, folder: Path) -> Path:
        return folder / "requirements.txt"

    def serve_command(self, folder: Path, python: Path, port: int) -> Command:
        return Command(["sh", str(folder / f"{folder.name}.toy"), str(port)], {})

    def test_command(self, folder: Path, env_dir: Path) -> Command:
        return Command(["true"], {})


@pytest.fixture
def toy_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptKind]:
    monkeypatch.setitem(KINDS, "toy", f"{__name__}:ToyKind")
    load_kind.cache_clear()
    yield load_kind("toy")
    monkeypatch.delitem(KINDS, "toy")
    load_kind.cache_clear()


def toy_folder(parent: Path, script_id: str) -> Path:
    folder = parent / script_id
    folder.mkdir(parents=True)
    (folder / f"{script_id}.para").write_text(PARA.format(id=script_id))
    (folder / f"{script_id}.toy").write_text("echo hi\n")
    return folder


def test_a_new_kind_needs_only_its_module_and_a_registry_line(
    tmp_path: Path, toy_kind: ScriptKind
) -> None:
    root = tmp_path / "flow"
    (root / "src").mkdir(parents=True)
    (root / "manifest.json").write_text("{}")
    toy_folder(root / "src" / "toy", "hello")
    toy_folder(root / "trek_packages", "shared")
    blcks_folder(root / "src" / "blcks", "b1")
    project = Project.load(root, workflow=False)
    assert {i: s.kind.name for i, s in project.scripts.items()} == {
        "shared": "toy",
        "hello": "toy",
        "b1": "blcks",
    }
    hello = project.scripts["hello"]
    assert [p.name for p in hello.files()] == ["hello.para", "hello.toy"]
    assert script_zip_name(hello) == "toy.hello-1.2.0.zip"
    assert script_at(root / "src" / "toy" / "hello", "toy") == hello
    with pytest.raises(BadInput) as caught:
        script_at(root / "src" / "toy" / "hello", "blcks")
    assert caught.value.message == "a toy script folder, not a blcks one"
    # The config schema takes the kinds' code-base keys (read uncached: the cache holds
    # the schema as the registry was before this test).
    assert "toy_code_base" in load_schema.__wrapped__("config")["properties"]


def shell_folder(
    parent: Path, script_id: str = "s1", body: bytes = b"#!/bin/sh\necho {}\n"
) -> Path:
    folder = parent / script_id
    folder.mkdir(parents=True)
    (folder / f"{script_id}.para").write_text(
        PARA.format(id=script_id) + "outputs:\n  up: {type: boolean}\n  detail: {type: string}\n"
    )
    script = folder / f"{script_id}.sh"
    script.write_bytes(body)
    script.chmod(0o755)
    return folder


def test_shell_facts_files_and_zip_name(tmp_path: Path) -> None:
    kind = load_kind("shell")
    facts = (kind.name, kind.code_base_key, kind.zip_prefix, kind.templates, kind.script_type)
    assert facts == ("shell", "shell_code_base", "shell.", "shell", "shell")
    assert (kind.implicit_requirements, kind.localhost) == ((), True)
    folder = shell_folder(tmp_path)
    (folder / "notes.txt").write_text("not part of it")
    (folder / "s1.sh~").write_text("a backup")
    script = Script.load(folder, installed=False)
    assert script is not None and script.kind is kind
    assert [p.name for p in script.files()] == ["s1.para", "s1.sh"]
    assert script_zip_name(script) == "shell.s1-1.2.0.zip"
    assert [name for name, _ in script_members(script)] == ["s1.para", "s1.sh"]
    assert script.requirements == folder / "requirements.txt"
    # Without its .sh a para in src/shell/ is a shell script lacking its main file.
    (folder / "s1.sh").unlink()
    assert find_kind(folder, "s1", fallback=kind) is kind
    lacking = Script.load(folder, False, kind)
    assert lacking is not None and lacking.kind is kind
    assert (
        lacking.main_problem()
        == f"shell script 's1' has no s1.sh; run `trek initshell -p {folder}`"
    )


def test_shell_is_served_by_the_sdk_with_its_declared_outputs(tmp_path: Path) -> None:
    folder = shell_folder(tmp_path)
    serve = load_kind("shell").serve_command(folder, Path("/env/bin/python"), 8123)
    assert serve.args == [
        *("/env/bin/python", "-m", "blcks.serve", "--script-dir", str(folder)),
        *("--port", "8123", "--kind", "shell"),
    ]
    assert serve.env == {"TREK_DECLARED_OUTPUTS": '["up", "detail"]'}


def test_shell_problems_name_the_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    kind = load_kind("shell")
    good = shell_folder(tmp_path / "a")
    assert kind.problems(good, "s1") == []
    bad = shell_folder(tmp_path / "b", body=b"echo one\necho two\r\n")
    (bad / "s1.sh").chmod(0o644)
    assert kind.problems(bad, "s1") == [
        ("b/s1/s1.sh", "not executable; run `chmod +x s1.sh`"),
        ("b/s1/s1.sh:1", "no '#!' line naming its shell; start it with #!/bin/sh"),
        (
            "b/s1/s1.sh:2",
            "CRLF (Windows) line ends: the shell would read '\\r' as part of each command; "
            "convert them with `sed -i 's/\\r$//'`",
        ),
    ]


def test_a_kinds_implicit_requirements_join_the_scripts_own(
    tmp_path: Path, toy_kind: ScriptKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trek_tasks.runtimes.base import requirements_lines
    from trek_tasks.runtimes.local import LocalRuntime

    folder = toy_folder(tmp_path, "t")
    (folder / "requirements.txt").write_text("# pinned\nrequests\n")
    script = Script.load(folder, installed=False, fallback=toy_kind)
    assert script is not None and script.kind is toy_kind
    plain = LocalRuntime().env_key(script)
    assert requirements_lines(script) == ["requests"]
    monkeypatch.setattr(ToyKind, "implicit_requirements", ("ansible-core>=2.15",))
    assert requirements_lines(script) == ["ansible-core>=2.15", "requests"]
    assert LocalRuntime().env_key(script) != plain

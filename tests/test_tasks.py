"""doit task construction: load the tasks of a project and check their deps and targets.

``build_reference`` (conftest) makes a project from the walkthrough's reference data.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import HANDLER_FILES, build_reference, require_tool
from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain
from doit.exceptions import InvalidDodoFile
from doit.loader import load_doit_config, load_tasks

from trek_tasks.cli import main
from trek_tasks.tasks import ProjectTasks, namespace


@pytest.fixture
def ref(tmp_path: Path) -> Path:
    return build_reference(tmp_path / "host.detect.redis")


def tasks_of(ns: dict[str, Any]) -> dict[str, Any]:
    """doit's own loading (command names included, as `doit` checks them)."""
    return {t.name: t for t in load_tasks(ns, list(DoitMain().get_cmds()))}


def test_doit_config_shares_the_dep_file(ref: Path) -> None:
    config = load_doit_config(namespace(ref))
    assert config["dep_file"] == str(ref / ".trek" / "doit.db")
    assert config["backend"] == "sqlite3"


def test_namespace_takes_a_file_inside_the_project(ref: Path) -> None:
    from_file = load_doit_config(namespace(ref / "dodo.py"))
    from_sub = load_doit_config(namespace(ref / "src" / "blcks"))
    assert from_file["dep_file"] == from_sub["dep_file"] == str(ref / ".trek" / "doit.db")


def test_no_task_is_named_like_a_doit_command(ref: Path) -> None:
    commands = set(DoitMain().get_cmds())
    assert commands.isdisjoint(tasks_of(namespace(ref)))


def test_every_task_has_a_one_line_doc(ref: Path) -> None:
    for name, task in tasks_of(namespace(ref)).items():
        assert task.doc and "\n" not in task.doc, name


def test_finding_where_a_creator_is_defined_reads_a_few_lines(ref: Path) -> None:
    # doit orders creators by the line of each (inspect.getsourcelines) at every load:
    # the wrappers it is given are a few lines, not each creator's whole body.
    ns = namespace(ref)
    creators = [name for name in vars(ProjectTasks) if name.startswith("task_")]
    assert [name for name in ns if name.startswith("task_")] == creators
    assert all(len(inspect.getsourcelines(ns[name])[0]) < 15 for name in creators)
    # the tasks that read installed scripts are still created after `install` runs
    assert ns["task_execute"].doit_create_after.task_dep == "install"


def test_a_broken_project_is_one_line_whichever_creator_reads_it_first(ref: Path) -> None:
    (ref / "src" / "graph.yml").write_text("graph: [\n")
    ns = namespace(ref)
    for name in ("task_pack", "task_up", "task_validate"):  # generators and a plain one
        with pytest.raises(InvalidDodoFile, match=r"^src/graph.yml:2:1: invalid YAML"):
            list(ns[name]())  # a generator's tasks are made as doit reads them


def test_validate_task(ref: Path) -> None:
    """Paths relative to the project root (a copy with its .trek/ is up to date)."""
    task = tasks_of(namespace(ref))["validate"]
    assert {
        p
        for p in (
            "src/graph.yml",
            "src/blcks/detectredis/detectredis.para",
            "trek_packages/blckssettags/blckssettags.para",
            "trek_packages/notification/notification.para",
            "packages.json",
            "manifest.json",
            "inputs/data.yml",
            "inputs/event.yml",
            ".trek/config.json",
        )
    } <= task.file_dep
    assert task.targets == [".trek/validated.json"]
    assert not any("/handler/" in dep for dep in task.file_dep)


def test_graph_task(ref: Path) -> None:
    require_tool("dot")
    task = tasks_of(namespace(ref))["graph"]
    assert task.file_dep == {"src/graph.yml"}
    assert task.targets == [f".trek/{name}" for name in ("graph.gv", "graph.png", "graph.svg")]
    assert task.task_dep == []


def test_graph_task_without_dot_targets_only_the_dot_file(
    ref: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(ref / "no-bin"))
    task = tasks_of(namespace(ref))["graph"]
    assert task.targets == [".trek/graph.gv"]


def test_pack_workflow_task(ref: Path) -> None:
    tasks = tasks_of(namespace(ref))
    assert tasks["pack"].task_dep == ["pack:workflow", "pack:detectredis", "pack:_stale"]
    task = tasks["pack:workflow"]
    assert task.file_dep == {"manifest.json", "src/graph.yml", "packages.json"}
    assert task.targets == ["bin/host.detect.redis-0.1.0.zip"]
    assert task.task_dep == ["validate"]


def test_pack_script_task_depends_on_the_packed_files_only(ref: Path) -> None:
    script = ref / "src" / "blcks" / "detectredis"
    (script / "handler" / "__pycache__").mkdir()
    (script / "handler" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\0")
    (script / "tests").mkdir()
    (script / "tests" / "test_handler.py").write_text("")
    task = tasks_of(namespace(ref))["pack:detectredis"]
    script_dir = "src/blcks/detectredis"
    assert task.file_dep == {
        f"{script_dir}/detectredis.para",
        f"{script_dir}/openfaas.yml",
        *(f"{script_dir}/handler/{name}" for name in HANDLER_FILES),
    }
    assert task.targets == ["bin/blcks.detectredis-0.1.0.zip"]
    assert task.task_dep == ["validate"]


def test_installed_scripts_are_not_packed(ref: Path) -> None:
    names = set(tasks_of(namespace(ref)))
    assert {"pack:workflow", "pack:detectredis"} <= names
    assert "pack:notification" not in names and "pack:blckssettags" not in names


def test_a_new_script_gets_its_pack_task(ref: Path) -> None:
    other = ref / "src" / "blcks" / "b2"
    (other / "handler").mkdir(parents=True)
    (other / "b2.para").write_text("id: b2\nversion: 2.0.0\n")
    (other / "handler" / "handler.py").write_text("")
    task = tasks_of(namespace(ref))["pack:b2"]
    assert task.targets == ["bin/blcks.b2-2.0.0.zip"]
    assert task.file_dep == {"src/blcks/b2/b2.para", "src/blcks/b2/handler/handler.py"}


def test_pack_removes_the_zips_of_scripts_that_are_gone_and_nothing_else(
    ref: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import zipfile

    monkeypatch.chdir(ref)
    other = ref / "src" / "blcks" / "b2"
    shutil.copytree(ref / "src" / "blcks" / "detectredis", other)
    para = (other / "detectredis.para").read_text()
    (other / "detectredis.para").unlink()
    para = para.replace("id: detectredis", "id: b2").replace('"0.1.0"', '"2.0.0"')
    (other / "b2.para").write_text(para)
    assert main(["pack", "-a", "-p", str(ref)]) == 0
    bin_dir = ref / "bin"
    with zipfile.ZipFile(bin_dir / "blcks.mine-1.0.zip", "w") as theirs:
        theirs.writestr("handler/handler.py", "")  # named like ours, made by someone else
    (bin_dir / "blcks.notes.txt").write_text("")
    shutil.copy(bin_dir / "blcks.b2-2.0.0.zip", bin_dir / "blcks.b2-1.9.0.zip")  # older pack
    shutil.rmtree(other)
    capsys.readouterr()
    assert main(["pack", "-a", "-p", str(ref)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("Removed")] == [
        "Removed bin/blcks.b2-1.9.0.zip: no own script packs into it any more",
        "Removed bin/blcks.b2-2.0.0.zip: no own script packs into it any more",
    ]
    assert sorted(p.name for p in bin_dir.iterdir()) == [
        "blcks.detectredis-0.1.0.zip",
        "blcks.mine-1.0.zip",
        "blcks.notes.txt",
        "host.detect.redis-0.1.0.zip",
    ]
    assert main(["pack", "-a", "-p", str(ref)]) == 0
    assert "Removed" not in capsys.readouterr().out


def test_packages_json_is_optional_for_pack(ref: Path) -> None:
    (ref / "packages.json").unlink()
    task = tasks_of(namespace(ref))["pack:workflow"]
    assert str(ref / "packages.json") not in task.file_dep


def test_namespace_outside_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path.parent)
    with pytest.raises(InvalidDodoFile) as info:
        namespace(tmp_path)
    assert str(info.value) == (
        f"{tmp_path.name}: not a Trek project (no manifest.json here or above); "
        "run `trek createproject NAME` or `trek init`"
    )


def test_unreadable_graph_is_a_one_line_dodo_error(
    ref: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ref)
    (ref / "src" / "graph.yml").write_text("graph: [\n")
    with pytest.raises(InvalidDodoFile) as info:
        tasks_of(namespace(ref))
    assert str(info.value) == "src/graph.yml:2:1: invalid YAML: did not find expected node content"


def test_up_tasks_are_cleaned_by_stopping_what_they_started(project: Path) -> None:
    """``doit clean up:<id>`` stops the script (served by the test runtime here, which
    validation would refuse in a project's config; these tasks do not validate)."""
    from trek_tasks.environment import Environment
    from trek_tasks.project import Project
    from trek_tasks.runner import run_tasks

    config = project / ".trek" / "config.json"
    config.write_text(
        config.read_text().replace('"router_port"', '"runtime": "inprocess",\n  "router_port"')
    )
    assert main(["install", "-p", str(project)]) == 0
    loaded = Project.load(project)
    assert "up:detectredis" in run_tasks(loaded, ["up:detectredis"])
    env = Environment(loaded)
    handle = env.handle("detectredis")
    assert handle is not None and env.runtime.healthy(handle)
    tasks = tasks_of(namespace(project, loaded))
    assert tasks["up:detectredis"].clean_actions and tasks["up:marvin"].clean_actions
    DoitMain(ModuleTaskLoader(namespace(project, loaded))).run(["clean", "up:detectredis"])
    assert env.handle("detectredis") is None and not env.runtime.healthy(handle)


def test_doit_runs_in_a_project_without_its_state_folder(ref: Path) -> None:
    # A fresh clone has no .trek/ (it is ignored): doit opens its dep file there first.
    shutil.rmtree(ref / ".trek", ignore_errors=True)
    assert DoitMain(ModuleTaskLoader(namespace(ref))).run(["run", "validate"]) == 0
    assert (ref / ".trek").is_dir()

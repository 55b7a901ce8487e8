"""createproject, init, createblcks, initblcks: what they make, ask, print and refuse."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO

from trek_tasks.cli import cli, main
from trek_tasks.config import update_file, write_file
from trek_tasks.errors import BadInput
from trek_tasks.kinds import load_kind
from trek_tasks.marvin.inventory import Inventory
from trek_tasks.project import Project
from trek_tasks.resources import templates_dir
from trek_tasks.scaffold import create_project, create_script, init_project, init_script

NAME_RULE = "use only letters, digits, '.', '_' and '-', starting with a letter"
GITHUB_PIPELINE = ".github/workflows/trek.yml"
GITLAB_PIPELINE = ".gitlab-ci.yml"
PROJECT_FILES = {
    ".gitignore",
    GITHUB_PIPELINE,
    GITLAB_PIPELINE,
    ".trek/config.json",
    "README.md",
    "dodo.py",
    "inputs/data.yml",
    "inputs/event.yml",
    "inputs/inventory.yml",
    "manifest.json",
    "packages.json",
    "src/graph.yml",
}
BLCKS_FILES = {
    ".gitignore",
    ".trek/config.json",
    "README.md",
    "{name}.para",
    "handler/__init__.py",
    "handler/handler.py",
    "handler/requirements.txt",
    "inputs/event.yml",
    "openfaas.yml",
    "requirements-test.txt",
    "tests/conftest.py",
    "tests/test_handler.py",
}
SPEC_CONFIG_KEYS = {
    "marvin_url",
    "marvin_JWT",
    "marvin_secret",
    "router_port",
    "action_timeout",
    "blcks_code_base",
    "ansible_code_base",
    "shell_script_base",
    "script_repository",
    "input_data_path",
    "input_event_path",
    "local_inventory_file",
    "flow_home",
    "envs",
}


def files_in(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def blcks_files(name: str) -> set[str]:
    return {f.format(name=name) for f in BLCKS_FILES}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    return env


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def make_project(cwd: Path, name: str = "flow", *extra: str) -> Path:
    assert main(["createproject", name, "-y", *extra]) == 0
    return cwd / name


# createproject -------------------------------------------------------------------------


def test_createproject_makes_the_documented_layout(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["createproject", "host.detect.redis", "-y"]) == 0
    out, err = capsys.readouterr()
    assert out == "Project [host.detect.redis] creating...\nDone\n"
    assert err == ""
    root = cwd / "host.detect.redis"
    assert files_in(root) == PROJECT_FILES
    project = Project.load(root)
    assert project.name == "host.detect.redis"
    assert [(n.id, n.type) for n in project.workflow.nodes] == [
        ("0", "trigger"),
        ("1", "terminator"),
    ]
    assert project.workflow.version == "0.1.0"
    assert json.loads((root / "manifest.json").read_text()) == {"entry": "src/graph.yml"}
    assert json.loads((root / "packages.json").read_text()) == {"packages": {}}
    config = json.loads((root / ".trek/config.json").read_text())
    assert set(config) == SPEC_CONFIG_KEYS
    assert config["marvin_url"] == config["marvin_JWT"] == config["marvin_secret"] == ""
    assert Inventory.load(root / "inputs/inventory.yml").channels
    assert main(["validate", "-p", str(root)]) == 0
    assert capsys.readouterr() == ("Valid. [host.detect.redis]\n", "")


def test_every_generated_text_file_is_utf8_with_a_trailing_newline(cwd: Path) -> None:
    root = make_project(cwd, "flow")
    assert main(["createblcks", "b1"]) == 0
    os.chdir(root)
    assert main(["createblcks", "b2"]) == 0
    for path in [*root.rglob("*"), *(cwd / "b1").rglob("*")]:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert text.endswith("\n"), path


def test_gitignore_keeps_state_out_but_not_the_config(cwd: Path) -> None:
    lines = (make_project(cwd) / ".gitignore").read_text().splitlines()
    for pattern in (".trek/doit.db*", ".trek/env/", ".trek/runs/", "bin/"):
        assert pattern in lines
    assert not [line for line in lines if "config.json" in line]


# The CI pipelines: what every change runs, what the default branch deploys, what is cached.
CHECK = "doit validate test pack"
DEPLOY = ["trek login --global", "doit deploy"]  # the login reads TREK_MARVIN_* (CI secrets)
CACHED = [".trek/doit.db", ".trek/validated.json", ".trek/images/", "bin/", "trek_packages/"]


def test_createproject_writes_a_github_actions_pipeline(cwd: Path) -> None:
    from trek_tasks import __version__

    pipeline = yaml.safe_load((make_project(cwd) / GITHUB_PIPELINE).read_text())
    assert set(pipeline[True]) == {"push", "pull_request"}  # YAML 1.1 reads `on` as true
    steps = pipeline["jobs"]["trek"]["steps"]
    runs = [str(step.get("run", "")).splitlines() for step in steps]
    assert runs.index([CHECK]) < runs.index(DEPLOY)
    install = steps[runs.index(['pip install "$TREK_TASKS"'])]
    assert f"'trek-tasks=={__version__}'" in install["env"]["TREK_TASKS"]
    assert "vars.TREK_TASKS" in install["env"]["TREK_TASKS"]
    deploy = steps[runs.index(DEPLOY)]
    assert "github.event.repository.default_branch" in deploy["if"]
    assert "github.event_name == 'push'" in deploy["if"]
    assert deploy["env"] == {
        "TREK_MARVIN_URL": "${{ vars.TREK_MARVIN_URL }}",
        "TREK_MARVIN_USERNAME": "${{ vars.TREK_MARVIN_USERNAME }}",
        "TREK_MARVIN_PASSWORD": "${{ secrets.TREK_MARVIN_PASSWORD }}",
    }
    (cache,) = [step for step in steps if str(step.get("uses", "")).startswith("actions/cache@")]
    assert steps.index(cache) < runs.index([CHECK])
    assert cache["with"]["path"].split() == CACHED
    assert cache["with"]["key"].startswith("trek-${{ github.ref_name }}-${{ hashFiles(")
    assert "'src/**'" in cache["with"]["key"]
    assert cache["with"]["restore-keys"].splitlines()[0] == "trek-${{ github.ref_name }}-"


def test_createproject_writes_a_gitlab_ci_pipeline(cwd: Path) -> None:
    from trek_tasks import __version__

    pipeline = yaml.safe_load((make_project(cwd) / GITLAB_PIPELINE).read_text())
    assert pipeline["variables"]["TREK_TASKS"] == f"trek-tasks=={__version__}"
    assert pipeline["default"]["before_script"] == ['pip install "$TREK_TASKS"']
    cache = pipeline["default"]["cache"]
    assert cache["paths"] == CACHED
    assert cache["key"] == "trek-$CI_COMMIT_REF_SLUG"
    assert pipeline["check"]["script"] == [CHECK]
    assert "rules" not in pipeline["check"]  # every change
    assert pipeline["deploy"]["script"] == DEPLOY
    assert pipeline["deploy"]["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]
    stages = pipeline["stages"]
    assert stages.index(pipeline["check"]["stage"]) < stages.index(pipeline["deploy"]["stage"])


def test_the_pipelines_cache_only_what_git_ignores(cwd: Path) -> None:
    """A cache restored over a checkout must not replace a tracked file (the config)."""
    root = make_project(cwd)
    ignored = set((root / ".gitignore").read_text().splitlines())
    for path in CACHED:
        assert path in ignored or f"{path}*" in ignored, path
    assert "config.json" not in "".join(CACHED)


def test_createproject_asks_for_the_marvin_settings(cwd: Path) -> None:
    result = CliRunner().invoke(
        cli, ["createproject", "asked"], input="https://marvin.example\njwt-value\nsecret-value\n"
    )
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Project [asked] creating...\n"
        "This utility will walk you through creating a config.json file.\n"
        "Marvin url: leave it empty to use the local Marvin Trek starts for this project; "
        "set one later with `trek config marvin_url URL`.\n"
        "Marvin url []: https://marvin.example\n"
        "Marvin JWT []: \n"
        "Marvin secret []: \n"
        "Done\n"
    )
    config_file = cwd / "asked/.trek/config.json"
    config = json.loads(config_file.read_text())
    assert (config["marvin_url"], config["marvin_JWT"], config["marvin_secret"]) == (
        "https://marvin.example",
        "jwt-value",
        "secret-value",
    )
    assert mode(config_file) == 0o600


def test_a_url_that_is_not_http_is_asked_again(cwd: Path) -> None:
    result = CliRunner().invoke(cli, ["createproject", "p"], input="ftp://x\nhttp://ok:8080\n\n\n")
    assert result.exit_code == 0, result.output
    assert (
        "Error: 'marvin_url' must be an http(s) URL such as 'https://marvin.example.com', "
        "or nothing for the local one\n"
    ) in result.output
    config = json.loads((cwd / "p/.trek/config.json").read_text())
    assert config["marvin_url"] == "http://ok:8080"
    assert mode(cwd / "p/.trek/config.json") == 0o644


def test_config_without_credentials_is_not_private_and_folders_follow_the_umask(
    tmp_path: Path,
) -> None:
    root = create_project(tmp_path, "plain", {"marvin_url": "http://m"})
    assert mode(root / ".trek/config.json") == 0o644
    assert mode(root) == mode(root / "src") == 0o777 & ~umask()
    secret = create_project(tmp_path, "secret", {"marvin_secret": "s3"})
    assert mode(secret / ".trek/config.json") == 0o600


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("a/b", "a name cannot hold '/' (it is a folder name, not a path)"),
        ("..", "a name cannot hold '..'"),
        ("x..y", "a name cannot hold '..'"),
        ("my project", "a name cannot hold spaces"),
        ("1flow", "a name must start with a letter"),
        ("_flow", "a name must start with a letter"),
        ("flow@home!", "a name cannot hold '!', '@'"),
        ("flöw", "a name cannot hold 'ö'"),
        ("", "a name cannot be empty"),
    ],
)
def test_bad_names_are_refused_before_anything_is_written(
    cwd: Path, capsys: pytest.CaptureFixture[str], name: str, problem: str
) -> None:
    for command in ("createproject", "createblcks"):
        assert main([command, name, "-y"]) == 2
        assert capsys.readouterr().err == f"trek: error: NAME '{name}': {problem}; {NAME_RULE}\n"
    assert list(cwd.iterdir()) == []


def test_names_yaml_would_read_as_other_types_stay_strings(cwd: Path) -> None:
    root = make_project(cwd, "yes")
    graph = yaml.safe_load((root / "src/graph.yml").read_text())
    assert graph["graph"]["metadata"]["templateId"] == "yes"
    os.chdir(root)
    assert main(["createblcks", "null"]) == 0
    script = root / "src/blcks/null"
    assert yaml.safe_load((script / "null.para").read_text())["id"] == "null"
    assert list(yaml.safe_load((script / "openfaas.yml").read_text())["functions"]) == ["null"]


def test_an_existing_folder_needs_force(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cwd / "flow").mkdir()
    (cwd / "flow/notes.txt").write_text("mine\n")
    assert main(["createproject", "flow", "-y"]) == 2
    assert capsys.readouterr().err == (
        "trek: error: flow: folder exists; add -f/--force to replace the files the template makes\n"
    )
    assert files_in(cwd / "flow") == {"notes.txt"}


def test_force_replaces_the_template_files_and_keeps_the_others(cwd: Path) -> None:
    root = make_project(cwd)
    (root / "src/graph.yml").write_text("edited: true\n")
    (root / "notes.txt").write_text("mine\n")
    assert main(["createproject", "flow", "-f", "-y"]) == 0
    assert files_in(root) == PROJECT_FILES | {"notes.txt"}
    assert "templateId" in (root / "src/graph.yml").read_text()
    assert (root / "notes.txt").read_text() == "mine\n"
    assert not [p for p in cwd.iterdir() if p.name != "flow"]


def test_force_without_yes_asks_first(cwd: Path) -> None:
    root = make_project(cwd)
    (root / "src/graph.yml").write_text("edited: true\n")
    result = CliRunner().invoke(cli, ["createproject", "flow", "-f"], input="n\n")
    assert result.exit_code == 1
    assert "flow exists. Replace the files the template makes? [y/N]: n\n" in result.output
    assert (root / "src/graph.yml").read_text() == "edited: true\n"


def test_a_file_where_the_project_goes_is_refused(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (cwd / "flow").write_text("a file\n")
    assert main(["createproject", "flow", "-f", "-y"]) == 2
    assert capsys.readouterr().err == (
        "trek: error: flow: exists and is not a folder; choose another name\n"
    )


def test_force_refuses_a_folder_where_a_template_file_goes(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(cwd)
    (root / "manifest.json").unlink()
    (root / "manifest.json").mkdir()
    (root / "src/graph.yml").write_text("edited: true\n")
    assert main(["createproject", "flow", "-f", "-y"]) == 2
    assert capsys.readouterr().err == (
        "trek: error: flow/manifest.json: is a folder, but the template puts a file here; move it\n"
    )
    assert (root / "src/graph.yml").read_text() == "edited: true\n"
    assert sorted(p.name for p in cwd.iterdir()) == ["flow"]


def test_example_project_uses_callservice_and_notification(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(cwd, "sample", "--example")
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "Done",
        "Next: cd sample && trek install  (callservice, notification)",
    ]
    project = Project.load(root)
    assert project.name == "sample"
    scripts = {n.script_id for n in project.workflow.nodes if n.type == "action"}
    assert scripts == {"callservice", "notification"}
    assert set(project.packages) == {"callservice", "notification"}
    channels = {c.id for c in Inventory.load(root / "inputs/inventory.yml").channels}
    data = yaml.safe_load((root / "inputs/data.yml").read_text())
    bound = [item["value"] for edge in data.values() for item in edge.values()]
    assert bound and set(bound) <= channels
    assert set(data) <= {edge.key for edge in project.workflow.edges}


def test_example_project_validates_once_installed(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(cwd, "sample", "--example")
    assert main(["install", "-p", str(root)]) == 0, capsys.readouterr().err
    assert main(["validate", "-p", str(root)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.endswith("Valid. [sample]\n")


def test_doit_lists_the_tasks_of_a_generated_project(cwd: Path) -> None:
    root = make_project(cwd)
    done = subprocess.run(
        [sys.executable, "-m", "doit", "list"],
        cwd=root,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.strip()}
    assert {"validate", "graph", "pack"} <= listed


# init ----------------------------------------------------------------------------------


def test_init_adds_the_missing_files_and_overwrites_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "my.flow"
    (folder / "src").mkdir(parents=True)
    (folder / "src/graph.yml").write_text("mine: true\n")
    (folder / "README.md").write_text("mine\n")
    assert main(["init", "-p", str(folder), "-y"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Project [my.flow] initializing..."
    assert out[-1] == "Done"
    added = PROJECT_FILES - {"src/graph.yml", "README.md"}
    code_bases = [f"src/{kind}" for kind in ("blcks", "shell", "ansible", "terraform")]
    assert sorted(out[1:-1]) == sorted(
        [
            *(f"  added {name}" for name in [*added, *code_bases]),
            "  kept README.md",
            "  kept src/graph.yml",
        ]
    )
    assert files_in(folder) == PROJECT_FILES
    assert all((folder / base).is_dir() for base in code_bases)
    assert (folder / "src/graph.yml").read_text() == "mine: true\n"
    assert (folder / "README.md").read_text() == "mine\n"
    assert main(["init", "-p", str(folder), "-y"]) == 0
    assert "nothing to add" in capsys.readouterr().out


def test_init_adds_the_pipelines_it_lacks_and_keeps_an_existing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "ci.flow"
    folder.mkdir()
    (folder / GITLAB_PIPELINE).write_text("test:\n  script: [make]\n")
    assert main(["init", "-p", str(folder), "-y"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"  kept {GITLAB_PIPELINE}" in out and f"  added {GITHUB_PIPELINE}" in out
    assert (folder / GITLAB_PIPELINE).read_text() == "test:\n  script: [make]\n"
    assert yaml.safe_load((folder / GITHUB_PIPELINE).read_text())["jobs"]["trek"]


def test_init_asks_only_when_the_config_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "flow"
    folder.mkdir()
    monkeypatch.chdir(folder)
    asked = CliRunner().invoke(cli, ["init"], input="http://m\n\n\n")
    assert asked.exit_code == 0, asked.output
    assert "Marvin url []: http://m\n" in asked.output
    assert json.loads((folder / ".trek/config.json").read_text())["marvin_url"] == "http://m"
    (folder / "manifest.json").unlink()
    again = CliRunner().invoke(cli, ["init"])
    assert again.exit_code == 0, again.output
    assert "Marvin" not in again.output
    assert "  added manifest.json\n" in again.output


def test_init_refuses_a_bad_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "-p", str(tmp_path / "missing"), "-y"]) == 2
    assert capsys.readouterr().err.endswith("missing: no such folder\n")
    spaced = tmp_path / "my flow"
    spaced.mkdir()
    assert main(["init", "-p", str(spaced), "-y"]) == 2
    assert capsys.readouterr().err == (
        f"trek: error: folder name 'my flow': a name cannot hold spaces; {NAME_RULE}\n"
    )
    assert list(spaced.iterdir()) == []
    (tmp_path / "notes.txt").write_text("x\n")
    with pytest.raises(BadInput, match="is not a folder"):
        init_project(tmp_path / "notes.txt")


# createblcks / initblcks ---------------------------------------------------------------


def test_createblcks_inside_a_project_goes_under_src_blcks(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(cwd)
    capsys.readouterr()
    os.chdir(root / "inputs")
    assert main(["createblcks", "detectredis"]) == 0
    assert capsys.readouterr().out == "Blcks [detectredis] creating...\nDone\n"
    script = root / "src/blcks/detectredis"
    assert files_in(script) == blcks_files("detectredis")
    assert json.loads((script / ".trek/config.json").read_text()) == {}
    own = Project.load(root).own
    assert list(own) == ["detectredis"] and own["detectredis"].version == "0.1.0"
    openfaas = yaml.safe_load((script / "openfaas.yml").read_text())
    assert openfaas["functions"]["detectredis"] == {
        "lang": "python3_blcks_flask",
        "handler": "./handler",
        "image": "localhost:5000/detectredis:0.1.0",
    }


def test_createblcks_follows_blcks_code_base(cwd: Path) -> None:
    root = make_project(cwd)
    update_file(root / ".trek/config.json", "blcks_code_base", "scripts")
    os.chdir(root)
    assert main(["createblcks", "b1"]) == 0
    assert (root / "scripts/b1/b1.para").is_file()
    assert not (root / "src/blcks").exists()


def test_createblcks_outside_a_project_makes_a_standalone_folder(
    cwd: Path, isolated_home: Path
) -> None:
    write_file(isolated_home / ".trek/config.json", {"docker_registry": "registry.example:5000/"})
    assert main(["createblcks", "MyCheck"]) == 0
    script = cwd / "MyCheck"
    assert files_in(script) == blcks_files("MyCheck")
    openfaas = yaml.safe_load((script / "openfaas.yml").read_text())
    assert openfaas["functions"]["MyCheck"]["image"] == "registry.example:5000/mycheck:0.1.0"


def test_createblcks_existing_folder(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["createblcks", "b1"]) == 0
    (cwd / "b1/handler/handler.py").write_text("# mine\n")
    assert main(["createblcks", "b1"]) == 2
    assert "trek: error: b1: folder exists; add -f/--force" in capsys.readouterr().err
    assert main(["createblcks", "b1", "-f", "-y"]) == 0
    assert "FAAS_METHOD_NAME" in (cwd / "b1/handler/handler.py").read_text()


def test_the_generated_handler_test_passes_with_plain_pytest(cwd: Path) -> None:
    root = make_project(cwd)
    os.chdir(root)
    assert main(["createblcks", "greeter"]) == 0
    script = root / "src/blcks/greeter"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(script)],
        cwd=script,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_test_requirements_name_the_trek_tasks_that_made_the_script(cwd: Path) -> None:
    """trek-tasks is not on PyPI: a bare `trek-tasks` line fails in a fresh venv. From a
    checkout the line points at it (checked for real: pip install -r in a new venv, then
    pytest, passes)."""
    assert main(["createblcks", "b1"]) == 0
    lines = (cwd / "b1/requirements-test.txt").read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")] == [
        "pytest>=8",
        f"trek-tasks @ {REPO.as_uri()}",
    ]
    readme = (cwd / "b1/README.md").read_text()
    assert ".venv/bin/pip install -r handler/requirements.txt -r requirements-test.txt" in readme
    assert "`doit test:b1`" in readme


def test_initblcks_turns_a_folder_into_a_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "checker"
    folder.mkdir()
    assert main(["initblcks", "-p", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Blcks [checker] initializing..." and out[-1] == "Done"
    assert files_in(folder) == blcks_files("checker")


def test_initblcks_keeps_an_existing_handler_and_skips_the_sample_that_would_not_fit(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "checker"
    (folder / "handler").mkdir(parents=True)
    (folder / "handler/handler.py").write_text("# mine\n")
    placed = init_script(folder, load_kind("blcks"))
    sample = {"checker.para", "handler/handler.py", "tests/test_handler.py", "inputs/event.yml"}
    assert {p.as_posix() for p in placed.added} == blcks_files("checker") - sample
    assert [p.as_posix() for p in placed.kept] == ["handler/handler.py"]
    assert sorted(p.as_posix() for p in placed.left_out) == sorted(sample - {"handler/handler.py"})
    assert (folder / "handler/handler.py").read_text() == "# mine\n"
    assert not (folder / "checker.para").exists()
    assert not (folder / "tests/test_handler.py").exists()
    assert (folder / "openfaas.yml").is_file() and (folder / "tests/conftest.py").is_file()


PARA = """\
id: checker
schemaVersion: '0.2'
name: checker
title: checker
version: '0.2.0'
description: Check hosts.
namespace: local
inputs:
  tag_name: {type: string, examples: [redis]}
  limit: {type: integer}
required: [tag_name]
outputs:
  fail_hosts_count: {type: integer}
  fail_hosts: {type: array}
"""


def test_initblcks_fits_the_missing_handler_tests_and_inputs_to_the_para(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "checker"
    folder.mkdir()
    (folder / "checker.para").write_text(PARA)
    (folder / "handler").mkdir()
    (folder / "handler/requirements.txt").write_text("redis>=5\n")
    assert main(["initblcks", "-p", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    kept = {"checker.para", "handler/requirements.txt"}
    assert out[1:-1] == [
        *(f"  added {name}" for name in sorted(blcks_files("checker") - kept, key=template_order)),
        "  kept handler/requirements.txt",
        "  kept checker.para",
    ]
    assert (folder / "checker.para").read_text() == PARA
    assert (folder / "handler/requirements.txt").read_text() == "redis>=5\n"
    handler = (folder / "handler/handler.py").read_text()
    assert "def process(tag_name, limit=None):" in handler
    assert yaml.safe_load((folder / "inputs/event.yml").read_text()) == {"tag_name": "redis"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def template_order(name: str) -> str:
    """The order a template set renders in (sorted template paths, ``dot-`` as written)."""
    return name.replace(".gitignore", "dot-gitignore").replace(".trek/", "dot-trek/")


def test_createblcks_force_lists_what_it_replaced(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["createblcks", "b1"]) == 0
    (cwd / "b1/handler/handler.py").write_text("# mine\n")
    (cwd / "b1/tests/test_handler.py").unlink()
    capsys.readouterr()
    assert main(["createblcks", "b1", "-f", "-y"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Blcks [b1] creating..." and out[-1] == "Done"
    assert "  added tests/test_handler.py" in out
    assert "  replaced handler/handler.py" in out
    assert len(out) == 2 + len(blcks_files("b1"))


def test_initblcks_refuses_a_project_folder(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(cwd)
    assert main(["initblcks", "-p", str(root)]) == 2
    assert capsys.readouterr().err == (
        "trek: error: flow: this is a project folder; "
        "run `trek createblcks NAME` in it to add a script\n"
    )


# failures leave nothing behind ---------------------------------------------------------


@pytest.fixture
def broken_templates(tmp_path: Path) -> Path:
    """Template sets whose last file does not render."""
    root = tmp_path / "templates"
    for name in ("project", "blcks"):
        shutil.copytree(templates_dir() / name, root / name)
        (root / name / "zz-broken.txt.j2").write_text("line one\n{{ name \n")
    return root


def test_a_failed_render_leaves_no_folder(tmp_path: Path, broken_templates: Path) -> None:
    dest = tmp_path / "new" / "parent"
    with pytest.raises(BadInput) as caught:
        create_project(dest, "flow", templates=broken_templates)
    assert str(caught.value.where).endswith("project/zz-broken.txt.j2:2")
    assert caught.value.message.startswith("template error: ")
    assert not (tmp_path / "new").exists()


def test_a_failed_render_with_force_changes_nothing(tmp_path: Path, broken_templates: Path) -> None:
    root = create_project(tmp_path, "flow")
    (root / "src/graph.yml").write_text("edited: true\n")
    before = files_in(root)
    with pytest.raises(BadInput):
        create_project(tmp_path, "flow", force=True, templates=broken_templates)
    assert files_in(root) == before
    assert (root / "src/graph.yml").read_text() == "edited: true\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flow", "templates"]


def test_a_failed_createblcks_leaves_no_blcks_folder(
    tmp_path: Path, broken_templates: Path
) -> None:
    root = create_project(tmp_path, "flow")
    with pytest.raises(BadInput):
        create_script(root, "b1", load_kind("blcks"), templates=broken_templates)
    assert not (root / "src/blcks").exists()
    assert files_in(root) == PROJECT_FILES


def test_a_failed_init_adds_nothing(tmp_path: Path, broken_templates: Path) -> None:
    folder = tmp_path / "flow"
    folder.mkdir()
    (folder / "keep.txt").write_text("x\n")
    with pytest.raises(BadInput):
        init_project(folder, templates=broken_templates)
    with pytest.raises(BadInput):
        init_script(folder, load_kind("blcks"), templates=broken_templates)
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


# resources -----------------------------------------------------------------------------


def test_templates_come_from_the_package_data_when_installed(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(
        REPO / "trek_tasks", site / "trek_tasks", ignore=shutil.ignore_patterns("_data")
    )
    shutil.copytree(REPO / "templates", site / "trek_tasks/_data/templates")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trek_tasks.resources import templates_dir; print(templates_dir())",
        ],
        cwd=tmp_path,
        env=dict(subprocess_env(), PYTHONPATH=str(site)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == site / "trek_tasks/_data/templates"
    assert templates_dir() == REPO / "templates"


def test_a_file_where_the_blcks_folder_goes_is_refused(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(cwd)
    update_file(root / ".trek/config.json", "blcks_code_base", "README.md/scripts")
    os.chdir(root)
    capsys.readouterr()
    assert main(["createblcks", "b1"]) == 2
    assert capsys.readouterr().err == (
        "trek: error: README.md: is a file, but a folder is needed here\n"
    )
    assert files_in(root) == PROJECT_FILES

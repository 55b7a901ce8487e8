"""installtemplate / uninstalltemplate and `--template` on create<kind> and createproject,
through the real CLI in temp folders with a store of their own (TREK_HOME)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trek_tasks.cli import main
from trek_tasks.resources import templates_dir


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = tmp_path / "trek-home"
    monkeypatch.setenv("TREK_HOME", str(store))
    monkeypatch.chdir(tmp_path)
    return store


def trek(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def own_blcks_template(tmp_path: Path) -> Path:
    """trek's blcks set with a handler of the user's own."""
    source = tmp_path / "mine"
    shutil.copytree(templates_dir() / "blcks", source)
    handler = source / "handler" / "handler.py.j2"
    handler.write_text(handler.read_text().replace('"""', '"""Made from my template. ', 1))
    return source


def make_project(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    assert trek(capsys, "createproject", "flow", "-y")[0] == 0
    return tmp_path / "flow"


def test_install_then_createblcks_renders_from_it_then_uninstall(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = own_blcks_template(tmp_path)
    code, out, err = trek(capsys, "installtemplate", "-p", str(source), "-c", "script", "-n", "my")
    assert (code, out, err) == (0, "Install template [my] into script\n", "")
    stored = home / "templates" / "script" / "my"
    assert json.loads((stored / ".template.json").read_text()) == {
        "kind": "blcks",
        "source": str(source.resolve()),
    }
    root = make_project(capsys, tmp_path)
    monkeypatch.chdir(root)
    code, out, err = trek(capsys, "createblcks", "b1", "-y", "--template", "my")
    assert (code, out, err) == (0, "Blcks [b1] creating...\nDone\n", "")
    handler = root / "src" / "blcks" / "b1" / "handler" / "handler.py"
    assert "Made from my template." in handler.read_text()
    assert not (root / "src" / "blcks" / "b1" / ".template.json").exists()
    assert trek(capsys, "validate")[:2] == (0, "Valid. [flow]\n")
    code, out, err = trek(capsys, "uninstalltemplate", "-c", "script", "-n", "my")
    assert (code, out, err) == (0, "Uninstall template [my] from script\n", "")
    assert not stored.exists()
    code, _, err = trek(capsys, "createblcks", "b2", "-y", "--template", "my")
    assert code == 2
    assert err == (
        "trek: error: --template: no script template 'my' (none is installed); add one with "
        "`trek installtemplate -p PATH -c script -n my`\n"
    )
    assert not (root / "src" / "blcks" / "b2").exists()


def test_installing_again_replaces_the_template(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = own_blcks_template(tmp_path)
    assert trek(capsys, "installtemplate", "-p", str(source), "-c", "script", "-n", "my")[0] == 0
    (source / "NOTES.md").write_text("second version\n")
    assert trek(capsys, "installtemplate", "-p", str(source), "-c", "script", "-n", "my")[0] == 0
    stored = home / "templates" / "script" / "my"
    assert (stored / "NOTES.md").read_text() == "second version\n"
    assert sorted(p.name for p in stored.parent.iterdir()) == ["my"]


def test_a_template_of_another_kind_is_refused_naming_its_command(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "sh"
    shutil.copytree(templates_dir() / "shell", source)
    assert trek(capsys, "installtemplate", "-p", str(source), "-c", "script", "-n", "sh")[0] == 0
    code, _, err = trek(capsys, "createblcks", "b1", "--template", "sh")
    assert (code, err) == (
        2,
        "trek: error: --template: template 'sh' makes shell scripts, not blcks ones; "
        "use `trek createshell --template sh`\n",
    )
    code, out, _ = trek(capsys, "createshell", "s1", "--template", "sh")
    assert (code, out) == (0, "Shell [s1] creating...\nDone\n")
    assert (tmp_path / "s1" / "s1.sh").stat().st_mode & 0o111


def broken_syntax(source: Path) -> str:
    (source / "handler" / "handler.py.j2").write_text("ok\n{% if %}\n")
    return (
        f"{source.name}/handler/handler.py.j2:2: template error: "
        "Expected an expression, got 'end of statement block'"
    )


def no_main_file(source: Path) -> str:
    shutil.rmtree(source / "handler")
    return (
        f"{source.name}: the template renders no script: it needs '{{{{ name }}}}.para' and the "
        "main file of a kind (for the name example: blcks: handler/handler.py; shell: "
        "example.sh; ansible: example.yml; terraform: example.tf)"
    )


def shell_without_exec_bit(source: Path) -> str:
    shutil.rmtree(source)
    shutil.copytree(templates_dir() / "shell", source)
    (source / "{{ name }}.sh.j2").chmod(0o644)
    return (
        f"{source.name}: the template renders a broken shell script: not executable; "
        "run `chmod +x example.sh`"
    )


@pytest.mark.parametrize("breaks", [broken_syntax, no_main_file, shell_without_exec_bit])
def test_a_broken_template_is_refused_and_nothing_is_stored(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], breaks: object
) -> None:
    source = own_blcks_template(tmp_path)
    said = breaks(source)  # type: ignore[operator]
    code, _, err = trek(capsys, "installtemplate", "-p", str(source), "-c", "script", "-n", "x")
    assert (code, err) == (2, f"trek: error: {said}\n")
    assert not (home / "templates" / "script" / "x").exists()


def test_bad_category_name_and_folder_are_one_line_each(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = own_blcks_template(tmp_path)
    assert trek(capsys, "installtemplate", "-p", str(source), "-c", "scripts", "-n", "x")[2] == (
        "trek: error: -c: unknown template category 'scripts'; use one of: script, project\n"
    )
    code, _, err = trek(capsys, "installtemplate", "-p", str(source), "-c", "script", "-n", "../x")
    assert code == 2 and err.startswith("trek: error: -n '../x': a name cannot hold '/'")
    missing = tmp_path / "nowhere"
    assert trek(capsys, "installtemplate", "-p", str(missing), "-c", "script", "-n", "x")[2] == (
        "trek: error: nowhere: no such template folder\n"
    )
    assert trek(capsys, "uninstalltemplate", "-c", "script", "-n", "x")[2] == (
        "trek: error: --template: no script template 'x' (none is installed); add one with "
        "`trek installtemplate -p PATH -c script -n x`\n"
    )


def test_a_project_template_makes_createproject_render_from_it(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "team"
    shutil.copytree(templates_dir() / "project", source)
    (source / "RUNBOOK.md.j2").write_text("# Runbook of {{ name }}\n")
    code, out, _ = trek(capsys, "installtemplate", "-p", str(source), "-c", "project", "-n", "team")
    assert (code, out) == (0, "Install template [team] into project\n")
    code, out, _ = trek(capsys, "createproject", "ops", "-y", "--template", "team")
    assert (code, out) == (0, "Project [ops] creating...\nDone\n")
    assert (tmp_path / "ops" / "RUNBOOK.md").read_text() == "# Runbook of ops\n"
    assert (tmp_path / "ops" / "manifest.json").is_file()
    (source / "manifest.json").unlink()
    code, _, err = trek(capsys, "installtemplate", "-p", str(source), "-c", "project", "-n", "bad")
    assert (code, err) == (2, "trek: error: team: the template renders no manifest.json\n")

"""Cheap start-up: `trek --help`, building the task list and a no-op pack import no heavy module.

Like click's own test_imports.py: run in a fresh interpreter and look at ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, build_reference

HEAVY = ("requests", "jinja2", "jsonschema", "graphviz", "docker", "flask", "werkzeug")

PROBE = """\
import json
import sys

{body}

print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def heavy_modules_after(body: str, cwd: Path) -> list[str]:
    """Run ``body`` in a new interpreter; return the heavy modules it imported."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body, heavy=HEAVY)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_the_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    assert heavy_modules_after("import jinja2", tmp_path) == ["jinja2"]


def test_help_imports_no_heavy_module(tmp_path: Path) -> None:
    body = "from trek_tasks.cli import main\nassert main(['--help']) == 0"
    assert heavy_modules_after(body, tmp_path) == []


def test_help_loads_no_library_module(tmp_path: Path) -> None:
    """The lazy group imports the command modules to list them; they import the library
    only inside the commands, and the terminal reporter only when a command runs."""
    body = (
        "import sys\n"
        "from trek_tasks.cli import main\n"
        "assert main(['--help']) == 0\n"
        # options: plain values the commands' own options default to (dataclasses only)
        "allowed = {'trek_tasks', 'trek_tasks.cli', 'trek_tasks.errors', 'trek_tasks.options'}\n"
        "loaded = {m for m in sys.modules if m.startswith('trek_tasks')}\n"
        "loaded -= allowed | {m for m in loaded if m.startswith('trek_tasks.commands')}\n"
        "assert not loaded, sorted(loaded)"
    )
    assert heavy_modules_after(body, tmp_path) == []


def test_task_list_imports_no_heavy_module(tmp_path: Path) -> None:
    project = build_reference(tmp_path / "host.detect.redis")
    body = (
        "from doit.cmd_base import ModuleTaskLoader\n"
        "from doit.doit_cmd import DoitMain\n"
        "import trek_tasks.cli\n"
        "from trek_tasks.tasks import namespace\n"
        "assert DoitMain(ModuleTaskLoader(namespace('.'))).run(['list', '--all']) == 0"
    )
    assert heavy_modules_after(body, project) == []


def test_up_to_date_pack_imports_no_heavy_module(tmp_path: Path) -> None:
    project = build_reference(tmp_path / "host.detect.redis")
    body = "from trek_tasks.cli import main\nassert main(['pack', '-a']) == 0"
    heavy_modules_after(body, project)  # the first run packs (and validates)
    assert (project / "bin" / "host.detect.redis-0.1.0.zip").is_file()
    assert heavy_modules_after(body, project) == []

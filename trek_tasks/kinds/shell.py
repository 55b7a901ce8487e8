"""shell scripts: ``<id>.sh`` served by ``python -m blcks.serve --kind shell``, which runs
it per call through ``blcks.tools.shell`` (inputs, outputs and faults: see there)."""

from __future__ import annotations

import json
from pathlib import Path

from blcks.tools import OUTPUTS_VAR
from blcks.tools.shell import script_flaws
from trek_tasks.errors import BadInput
from trek_tasks.files import display, load_yaml
from trek_tasks.kinds.base import Command, Flaw, ToolKind, member_files, para_file, serve_args


class ShellKind(ToolKind):
    """``<id>.para`` and ``<id>.sh`` (the main file, executable, LF line ends); tests in
    ``tests/`` run with pytest (they may call ``blcks.tools.shell.ShellRunner``)."""

    name = "shell"
    code_base_key = "shell_code_base"
    zip_prefix = "shell."
    templates = "shell"
    # The sample para, script, test and runshell inputs describe one script.
    sample: tuple[str, ...] = (
        "{name}.para",
        "{name}.sh",
        "tests/test_script.py",
        "inputs/event.yml",
    )
    script_type = "shell"
    main_suffix = ".sh"
    implicit_requirements: tuple[str, ...] = ()
    localhost = True  # accepted as the original's runshell does; the script runs here anyway

    def files(self, folder: Path, script_id: str) -> list[Path]:
        return member_files(folder, script_id, (f"{script_id}.sh",), ())

    def serve_command(self, folder: Path, python: Path, port: int) -> Command:
        return Command(
            serve_args(self, folder, python, port),
            {OUTPUTS_VAR: json.dumps(declared_outputs(para_file(folder, folder.name)))},
        )

    def problems(self, folder: Path, script_id: str) -> list[Flaw]:
        path = self.main_file(folder, script_id)
        if not path.is_file():
            return []  # said by the project's main-file check
        return [
            Flaw(f"{display(path)}:{line}" if line else display(path), message)
            for line, message in script_flaws(str(path))
        ]


def declared_outputs(para: Path) -> list[str]:
    """The output names ``para`` declares (none when it is unreadable: validate says why)."""
    try:
        data = load_yaml(para)
    except BadInput:
        return []
    outputs = data.get("outputs") if isinstance(data, dict) else None
    return [str(name) for name in outputs] if isinstance(outputs, dict) else []

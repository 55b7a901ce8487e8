"""terraform scripts: ``<id>.tf`` (+ ``variables.tf``, ``versions.tf``) served by ``python -m
blcks.serve --kind terraform``, which runs ``terraform`` per call in a fresh working copy
through ``blcks.tools.terraform`` (variables, state, outputs and faults: see there)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from blcks.tools.terraform import failure, located_error
from trek_tasks.files import display
from trek_tasks.kinds.base import Flaw, ToolKind, member_files

SYNTAX_TIMEOUT = 20.0  # seconds `terraform fmt` may take to parse a script's files


class TerraformKind(ToolKind):
    """``<id>.para``, ``<id>.tf`` (its main file) and the folder's other ``*.tf`` files
    (``variables.tf``, ``versions.tf``); tests in ``tests/`` run with pytest (they may call
    ``blcks.tools.terraform.TerraformRunner``)."""

    name = "terraform"
    code_base_key = "terraform_code_base"
    zip_prefix = "terraform."
    templates = "terraform"
    # The sample para, configuration, test and runterraform inputs describe one script.
    sample: tuple[str, ...] = (
        "{name}.para",
        "{name}.tf",
        "variables.tf",
        "tests/test_terraform.py",
        "inputs/event.yml",
    )
    script_type = "terraform"
    main_suffix = ".tf"
    implicit_requirements: tuple[str, ...] = ()  # the terraform binary comes from PATH
    localhost = False  # runterraform has no --localhost

    def files(self, folder: Path, script_id: str) -> list[Path]:
        configs = sorted(path.name for path in folder.glob("*.tf") if path.is_file())
        return member_files(folder, script_id, tuple(configs), ())

    def problems(self, folder: Path, script_id: str) -> list[Flaw]:
        """A syntax error in a ``.tf`` file, as ``terraform fmt`` reports it (file:line);
        nothing to say without a terraform binary (a run says that)."""
        program = shutil.which("terraform")
        if program is None or not self.main_file(folder, script_id).is_file():
            return []
        done = subprocess.run(
            [program, "fmt", "-check", "-list=false", "-no-color"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=SYNTAX_TIMEOUT,
        )
        if done.returncode in (0, 3):  # 3: parses, only laid out differently
            return []
        found = located_error(done.stderr)
        if found is None:
            return [Flaw(display(folder), failure(done.stderr, folder.resolve()))]
        return [Flaw(f"{display(folder / found.file)}:{found.line}", found.summary)]

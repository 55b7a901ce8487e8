"""blcks scripts: a Python ``handler/`` served by ``python -m blcks.serve`` (the SDK)."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from trek_tasks.files import tree_files
from trek_tasks.kinds.base import Command, member_files, para_file

HANDLER = Path("handler")
MAIN = HANDLER / "handler.py"


class BlcksKind:
    """``<id>.para``, ``openfaas.yml`` and ``handler/`` (``handler/handler.py`` its main
    file); tests in ``tests/`` run with pytest."""

    name = "blcks"
    code_base_key = "blcks_code_base"
    zip_prefix = "blcks."
    templates = "blcks"
    # The sample para, handler, handler test and runblcks inputs describe one script: the
    # test would not fit another handler, so initblcks adds them only together.
    sample = ("{name}.para", "handler/handler.py", "tests/test_handler.py", "inputs/event.yml")
    script_type = "blcks"

    def __repr__(self) -> str:
        return "BlcksKind()"

    def detect(self, folder: Path, script_id: str) -> bool:
        return (
            para_file(folder, script_id).is_file() and self.main_file(folder, script_id).is_file()
        )

    def main_file(self, folder: Path, script_id: str) -> Path:
        return folder / MAIN

    def files(self, folder: Path, script_id: str) -> list[Path]:
        return member_files(folder, script_id, ("openfaas.yml",), (str(HANDLER),))

    def test_files(self, folder: Path) -> list[Path]:
        return tree_files(folder / "tests")

    def requirements(self, folder: Path) -> Path:
        return folder / HANDLER / "requirements.txt"

    def serve_command(self, folder: Path, python: Path, port: int) -> Command:
        args = [str(python), "-m", "blcks.serve", "--script-dir", str(folder), "--port", str(port)]
        return Command(args, {})

    def test_command(self, folder: Path, env_dir: Path) -> Command:
        """pytest on trek's interpreter (it has pytest, the SDK and trek_tasks, so a test
        may start a local Marvin) with the script and its environment's packages on the
        path, so the tests see the package versions the script runs with."""
        site = sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)})
        paths = [str(folder), site, os.environ.get("PYTHONPATH", "")]
        args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
        return Command(args, {"PYTHONPATH": os.pathsep.join(p for p in paths if p)})

"""blcks scripts: a Python ``handler/`` served by ``python -m blcks.serve`` (the SDK)."""

from __future__ import annotations

from pathlib import Path

from trek_tasks.files import tree_files
from trek_tasks.kinds.base import (
    Command,
    Flaw,
    has_para_and_main,
    member_files,
    pytest_command,
    serve_args,
)

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
    sample: tuple[str, ...] = (
        "{name}.para",
        "handler/handler.py",
        "tests/test_handler.py",
        "inputs/event.yml",
    )
    script_type = "blcks"
    implicit_requirements: tuple[str, ...] = ()
    localhost = False

    def __repr__(self) -> str:
        return "BlcksKind()"

    def detect(self, folder: Path, script_id: str) -> bool:
        return has_para_and_main(self, folder, script_id)

    def main_file(self, folder: Path, script_id: str) -> Path:
        return folder / MAIN

    def files(self, folder: Path, script_id: str) -> list[Path]:
        return member_files(folder, script_id, ("openfaas.yml",), (str(HANDLER),))

    def test_files(self, folder: Path) -> list[Path]:
        return tree_files(folder / "tests")

    def requirements(self, folder: Path) -> Path:
        return folder / HANDLER / "requirements.txt"

    def serve_command(self, folder: Path, python: Path, port: int) -> Command:
        return Command(serve_args(self, folder, python, port), {})

    def problems(self, folder: Path, script_id: str) -> list[Flaw]:
        return []  # a handler's faults show when it is imported (up) or tested

    def test_command(self, folder: Path, env_dir: Path) -> Command:
        return pytest_command(folder, env_dir)

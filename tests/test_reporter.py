"""The terminal reporter's words for which Marvin a run uses and where the local one listens."""

from __future__ import annotations

from pathlib import Path

import pytest

from trek_tasks.config import global_config_path
from trek_tasks.progress import MarvinMoved, MarvinUsed
from trek_tasks.reporter import Terminal


def terminal() -> tuple[Terminal, list[str]]:
    lines: list[str] = []
    return Terminal(out=lines.append, err=lines.append), lines


def test_the_marvin_a_run_uses_is_said_once_per_command(tmp_path: Path) -> None:
    shown, lines = terminal()
    local = MarvinUsed("http://127.0.0.1:5000", local=True, source=tmp_path / "marvin.log")
    for _ in range(3):  # a watch: one line however many cycles
        shown(local)
    assert lines == [f"Marvin: local, http://127.0.0.1:5000 ({tmp_path / 'marvin.log'})"]
    remote = MarvinUsed("https://m.example", local=False, source=global_config_path())
    shown(remote)  # a change is said again
    assert lines[1:] == [
        f"Marvin: https://m.example (marvin_url in {global_config_path()}; "
        "`trek config --global marvin_url ''` uses the local one)"
    ]
    shown.new_command()
    shown(remote)
    assert len(lines) == 3 and lines[2] == lines[1]


def test_no_marvin_is_said_too() -> None:
    shown, lines = terminal()
    shown(MarvinUsed("", local=False))
    assert lines == [
        "Marvin: none (no project here and no marvin_url); scripts use their MARVIN_URL"
    ]


@pytest.mark.parametrize(
    ("project", "role", "holder"),
    [
        ("/x/other", "marvin", "the local Marvin of /x/other"),
        ("/x/other", "script:detectredis", "blcks detectredis of /x/other"),
        ("", "", "another program"),
    ],
)
def test_a_moved_local_marvin_names_who_holds_router_port(
    project: str, role: str, holder: str
) -> None:
    shown, lines = terminal()
    shown(MarvinMoved(5000, 5001, project, role))
    assert lines == [f"router_port 5000 is held by {holder}; this project's local Marvin uses 5001"]

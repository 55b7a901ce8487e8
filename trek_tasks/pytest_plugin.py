"""The pytest plugin (entry point ``pytest11``): ``pytest`` in a project collects each
recorded run ``tests/recorded/<name>/fixture.yml`` as one test, which replays it
(``recorded.replay``) and fails with the same report ``trek replay`` prints.

Loaded into every pytest session once trek-tasks is installed, so it imports nothing of
trek until a fixture is collected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FIXTURE = "fixture.yml"  # recorded.FIXTURE, written out: importing it here would load trek


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name == FIXTURE and file_path.parent.parent.name == "recorded":
        return RecordedFile.from_parent(parent, path=file_path)
    return None


class RecordedFile(pytest.File):
    """A fixture file: one test, named by its folder."""

    def collect(self) -> Iterator[pytest.Item]:
        yield RecordedRun.from_parent(self, name=self.path.parent.name)


class ReplayChanged(Exception):
    """A replay whose outputs differ; the message is the report."""


class RecordedRun(pytest.Item):
    def runtest(self) -> None:
        from trek_tasks.project import Project, find_root
        from trek_tasks.recorded import replay

        project = Project.load(find_root(self.path.parent))
        [result] = replay(project, [self.path.parent])
        if not result.passed:
            raise ReplayChanged(result.report(project.root))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from trek_tasks.errors import TrekError

        error = excinfo.value
        if isinstance(error, ReplayChanged):
            return str(error)
        if isinstance(error, TrekError):
            return f"trek: error: {error}" + (f"\n{error.detail}" if error.detail else "")
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"recorded run {self.name}"

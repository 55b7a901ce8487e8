"""Up-to-date checks that say why: the one code path for doit's decision and ``trek plan``.

A task's ``uptodate`` entry is a :class:`Check`: doit calls it and gets a bool, as from
any ``uptodate`` callable; the check keeps the reason it found (``reason``), which
``plan`` reads from the status doit computed. The reason and the decision are the same
call, so what ``trek plan`` says is what made doit run the task.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

SETTINGS = "_settings"  # the saved value holding a task's settings (``SettingsCheck``)
OLD_SETTINGS = "_config_changed"  # what doit's ``config_changed`` saved before
# A task's ``meta`` key: the tasks whose product its check reads (a zip, an image; they run
# before it), so it runs whenever one of them does, though its check, asked before they
# ran, says otherwise.
READS_DEPS = "trek_reads"


class Check:
    """A doit ``uptodate`` callable around ``explain``, which returns why the task must
    run or None when it is up to date. doit passes ``task`` and ``values`` when
    ``explain`` names them first, as it does for any ``uptodate`` callable."""

    def __init__(self, explain: Callable[..., str | None]) -> None:
        self.explain = explain
        self.reason: str | None = None
        self.__signature__ = inspect.signature(explain)  # doit reads the magic arguments

    def __call__(self, *args: Any) -> bool:
        self.reason = self.explain(*args)
        return self.reason is None

    def __str__(self) -> str:
        """The reason, once asked: what ``doit info TASK`` prints for a false check."""
        return self.reason or f"{getattr(self.explain, '__name__', 'check')}: up to date"


class SettingsCheck(Check):
    """doit's ``config_changed`` that names what changed: the settings (plain JSON
    values) are saved with the task and compared key by key at the next check."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        super().__init__(self.changed)

    def changed(self, task: Any, values: Mapping[str, Any]) -> str | None:
        last = values.get(SETTINGS)
        if last is None:  # doit's config_changed kept only a digest
            return "settings saved by an older trek" if OLD_SETTINGS in values else "never run"
        now = self.settings
        keys = sorted(k for k in last.keys() | now.keys() if last.get(k) != now.get(k))
        return f"settings changed: {', '.join(keys)}" if keys else None

    def configure_task(self, task: Any) -> None:
        """doit calls this when it makes the task: save the settings after a success."""
        task.value_savers.append(lambda: {SETTINGS: self.settings})

"""The ``trek_vars`` callback: what a play set with ``set_fact``, as the ``vars`` output.

Loaded by ansible-playbook (``ANSIBLE_CALLBACK_PLUGINS`` names this folder), never by
trek; at the end of the run it writes the facts as one JSON object to the file named by
``TREK_ANSIBLE_VARS`` (a later host's value of a fact wins).
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase  # type: ignore[import-not-found,unused-ignore]

SET_FACT = ("set_fact", "ansible.builtin.set_fact", "ansible.legacy.set_fact")


class CallbackModule(CallbackBase):  # type: ignore[misc,unused-ignore]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "trek_vars"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.facts: dict[str, Any] = {}

    def v2_runner_on_ok(self, result: Any) -> None:
        task = getattr(result, "task", None) or result._task
        values = getattr(result, "result", None)
        if not isinstance(values, dict):
            values = result._result
        if task.action in SET_FACT:
            self.facts.update(values.get("ansible_facts") or {})

    def v2_playbook_on_stats(self, stats: Any) -> None:
        path = os.environ.get("TREK_ANSIBLE_VARS")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(self.facts, handle, default=str)

"""Script runtimes: one module per runtime, all satisfying ``runtimes.base.Runtime``.

``RUNTIMES`` maps the config value ``runtime`` to the class implementing it, as
``module:Class`` so that reading the registry imports nothing.
"""

from __future__ import annotations

RUNTIMES: dict[str, str] = {
    "local": "trek_tasks.runtimes.local:LocalRuntime",
}

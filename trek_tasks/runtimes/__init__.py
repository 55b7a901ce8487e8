"""Script runtimes: one module per runtime, all satisfying ``runtimes.base.Runtime``.

``RUNTIMES`` maps the config value ``runtime`` to the class implementing it, as
``module:Class`` so that reading the registry imports nothing. ``inprocess`` serves
scripts from threads of the calling process: it is for tests, so a project's config
may choose only the ``CONFIG_CHOICES``.
"""

from __future__ import annotations

RUNTIMES: dict[str, str] = {
    "local": "trek_tasks.runtimes.local:LocalRuntime",
    "inprocess": "trek_tasks.runtimes.inprocess:InProcessRuntime",
    "docker": "trek_tasks.runtimes.docker:DockerRuntime",
}
TEST_ONLY = frozenset({"inprocess"})
CONFIG_CHOICES = tuple(name for name in RUNTIMES if name not in TEST_ONLY)

"""Dev-loop figures (issue 5), printed as one JSON object.

On the example and on a synthetic 10-script chain:
- ``noop_doit_run_s``: ``doit run`` with everything up to date;
- ``incremental_s``: edit one handler, then ``trek run --auto`` (restarts that script only);
- ``full_reup_s``: edit one handler, then ``trek shutdownenv -a && trek run``;
- ``reuse_s`` (chain): edit the last script, then ``trek run --reuse``.
Each is the median of 5; ``speedup`` is full / incremental.

Run: ``python bench/bench_devloop.py``
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _projects import chain_project, checked, copy_example, doit, seconds, trek  # noqa: E402

REPEAT = 5


class Editor:
    """Appends a new comment to a handler each time it is called (a real content change)."""

    def __init__(self, handler: Path) -> None:
        self.handler = handler
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        with open(self.handler, "a") as out:
            out.write(f"# edit {self.count}\n")


def measure(project: Path, handler: Path, reuse: bool) -> dict[str, float]:
    checked(trek("config", "router_port", "0", cwd=project))
    checked(trek("install", cwd=project))
    checked(doit("run", cwd=project))
    edit = Editor(handler)
    figures = {"noop_doit_run_s": seconds(lambda: checked(doit("run", cwd=project)), REPEAT)}
    figures["incremental_s"] = seconds(
        lambda: checked(trek("run", "--auto", cwd=project)), REPEAT, before=edit
    )

    def full() -> None:
        checked(trek("shutdownenv", "-a", cwd=project))
        checked(trek("run", cwd=project))

    figures["full_reup_s"] = seconds(full, REPEAT, before=edit)
    figures["speedup"] = round(figures["full_reup_s"] / figures["incremental_s"], 1)
    if reuse:
        checked(trek("run", cwd=project))
        figures["reuse_s"] = seconds(
            lambda: checked(trek("run", "--reuse", cwd=project)), REPEAT, before=edit
        )
    trek("shutdownenv", "-a", cwd=project)
    return figures


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        example = copy_example(tmp / "example")
        chain = chain_project(tmp / "chain10", scripts=10)
        results = {
            "example": measure(
                example, example / "src/blcks/detectredis/handler/handler.py", reuse=False
            ),
            "chain10": measure(chain, chain / "src/blcks/s9/handler/handler.py", reuse=True),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

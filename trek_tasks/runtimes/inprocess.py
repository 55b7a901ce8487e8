"""The in-process runtime, for tests: each script served by ``blcks.serve`` from a thread.

No environment is built: the handler imports from this interpreter (its requirements
must be installed here), under a module name of its own so several scripts can be
served at once; ``handler/handler.py`` imports its siblings relatively. Config
``envs`` are not applied (threads share one process environment). The log is what the
script logged through ``blcks.logger`` on its server's threads, kept in memory.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import logging
import os
import secrets
import sys
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blcks import serve
from trek_tasks.errors import StepFailed
from trek_tasks.project import Script
from trek_tasks.runtimes import process
from trek_tasks.runtimes.base import Handle, file_digests, python_tag

THREAD_PREFIX = "trek-inprocess-"
_numbers = itertools.count(1)
_servers: dict[str, _Served] = {}
_lock = threading.Lock()


class _Server(serve.Server):
    """Names its request threads after the handle, so log records find their script."""

    thread_name = ""

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        threading.current_thread().name = self.thread_name
        super().process_request_thread(request, client_address)


@dataclass
class _Served:
    server: _Server
    thread: threading.Thread
    project: str
    script_id: str
    modules: str
    lines: list[str] = field(default_factory=list)


class _Capture(logging.Handler):
    """Appends each record logged on a served script's thread to that script's lines."""

    def emit(self, record: logging.LogRecord) -> None:
        name = threading.current_thread().name
        if name.startswith(THREAD_PREFIX):
            served = _servers.get(name.removeprefix(THREAD_PREFIX))
            if served is not None:
                served.lines.append(self.format(record))


def _capture() -> None:
    from blcks import blcks

    if not any(isinstance(h, _Capture) for h in blcks.logger.handlers):
        capture = _Capture()
        capture.setFormatter(blcks.logger.handlers[0].formatter)
        blcks.logger.addHandler(capture)


def load_handler(folder: Path, alias: str) -> serve.Script:
    """``handler/handler.py`` of ``folder`` imported as ``<alias>.handler``."""
    handler_dir = folder / "handler"
    init = handler_dir / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        alias, init, submodule_search_locations=[str(handler_dir)]
    )
    if spec is None or spec.loader is None or not init.is_file():
        package = types.ModuleType(alias)
        package.__path__ = [str(handler_dir)]
        sys.modules[alias] = package
    else:
        package = importlib.util.module_from_spec(spec)
        sys.modules[alias] = package
        spec.loader.exec_module(package)
    module = importlib.import_module(f"{alias}.handler")
    main = getattr(module, "main", None)
    if not callable(main):
        raise AttributeError("handler/handler.py defines no main(event, context)")
    return serve.Script(str(getattr(module, "FAAS_METHOD_NAME", "") or folder.name), main)


def _forget(alias: str) -> None:
    for name in [m for m in sys.modules if m == alias or m.startswith(alias + ".")]:
        del sys.modules[name]


class InProcessRuntime:
    """Scripts served from threads of this process (tests only)."""

    name = "inprocess"

    def __init__(self) -> None:
        self.installed: set[str] = set()  # nothing is built; "installed" only for env_problem

    def marvin_url_for_script(self, url: str) -> str:
        return url

    def marvin_hosts(self) -> tuple[str, ...]:
        return ()

    def env_key(self, script: Script) -> str:
        return f"{self.name}-{python_tag()}"

    def env_problem(self, script: Script) -> str | None:
        return None if self.env_key(script) in self.installed else "not built"

    def install_env(self, script: Script) -> None:
        self.installed.add(self.env_key(script))

    def start(
        self, script: Script, port: int, env: dict[str, str], log_path: Path, project: str = ""
    ) -> Handle:
        self.install_env(script)
        ref = f"{self.name}-{next(_numbers)}"
        alias = f"_trek_inprocess_{ref.replace('-', '_')}"
        try:
            loaded = load_handler(script.path, alias)
        except Exception as err:
            _forget(alias)
            raise StepFailed(
                f"{script.id} did not start: its handler failed to import: "
                f"{type(err).__name__}: {err}",
                script.id,
            ) from None
        token = secrets.token_hex(16)
        try:
            server = _Server("127.0.0.1", port, loaded, token)
        except OSError as err:
            _forget(alias)
            raise StepFailed(f"{script.id} did not start: {err}", script.id) from None
        server.thread_name = THREAD_PREFIX + ref
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        url = f"http://127.0.0.1:{server.server_port}/"
        served = _Served(server, thread, project, script.id, alias)
        served.lines.append(f"blcks {loaded.name} listening on {url.rstrip('/')}")
        _capture()
        with _lock:
            _servers[ref] = served
        thread.start()
        return Handle(
            script_id=script.id,
            runtime=self.name,
            ref=ref,
            url=url,
            state={"port": server.server_port, "token": token},
            files=file_digests(script),
            env_key=self.env_key(script),
            project=project,
        )

    def healthy(self, handle: Handle) -> bool:
        served = _servers.get(handle.ref)
        if served is None or served.project != handle.project or not served.thread.is_alive():
            return False
        token = str(handle.state.get("token", ""))
        return process.answers(served.server.server_port, os.getpid(), token)

    def stop(self, handle: Handle, wait: bool = True) -> None:
        with _lock:
            served = _servers.get(handle.ref)
            if served is None or served.project != handle.project:
                return
            del _servers[handle.ref]
        served.server.stop()
        served.server.drain()
        served.server.server_close()
        served.thread.join()
        _forget(served.modules)

    def logs(self, handle: Handle, follow: bool, tail: int | None) -> Iterator[str]:
        served = _servers.get(handle.ref)
        if served is None:
            return
        lines = served.lines[:]
        yield from lines if tail is None else lines[-tail:]
        seen = len(lines)
        while follow and handle.ref in _servers:
            if len(served.lines) > seen:
                yield from served.lines[seen:]
                seen = len(served.lines)
            else:
                time.sleep(0.05)

    def leftovers(self, project: str) -> list[Handle]:
        with _lock:
            found = [(ref, s) for ref, s in _servers.items() if s.project == project]
        return [
            Handle(
                script_id=served.script_id,
                runtime=self.name,
                ref=ref,
                url=f"http://127.0.0.1:{served.server.server_port}/",
                project=project,
            )
            for ref, served in found
        ]

    def shutdown(self, project: str) -> None:
        """Nothing runs for a project but its scripts' threads."""

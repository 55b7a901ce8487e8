"""Watch mode: `doit auto` and `trek watch` as real processes editing real files."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FORK_SERVER, REPO, build_reference, free_port, parent_of

from trek_tasks.runtimes import forkserver
from trek_tasks.watch import WatchSet, is_noise, project_watch

GUARD = 60.0  # seconds; only ever a guard against a hang, never an assertion
FIRST_RUN_GUARD = 600.0  # the first full run may build the script environments
HANDLER = "src/blcks/detectredis/handler/handler.py"
REQUIREMENTS = "src/blcks/detectredis/handler/requirements.txt"
ZIP = "bin/blcks.detectredis-0.1.0.zip"
BROKEN_YAML = "graph:\n  nodes: [\n"


class Watching:
    """A watch process; its merged output is read line by line by a thread."""

    def __init__(self, args: list[str], cwd: Path, stdin: int = subprocess.DEVNULL) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, guard: float = GUARD) -> str:
        """The next output line matching ``pattern``; fails with the output if none comes."""
        deadline = time.monotonic() + guard
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines))
            if line is None:
                pytest.fail(f"ended before {pattern!r}; output:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def interrupt(self) -> int:
        """Ctrl-C; returns the exit code once the process has ended and its output is read."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=GUARD)
        self._reader.join(timeout=GUARD)
        while (line := self._queue.get_nowait()) is not None:
            self.lines.append(line)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=GUARD)
        self._reader.join(timeout=GUARD)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        if self.proc.stdin is not None:
            self.proc.stdin.close()


@pytest.fixture
def watching() -> Iterator[list[Watching]]:
    started: list[Watching] = []
    yield started
    for watch in started:
        watch.close()


def start(started: list[Watching], args: list[str], cwd: Path) -> Watching:
    watch = Watching(args, cwd)
    started.append(watch)
    return watch


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    """The reference project with a detectredis handler and the two-line dodo file."""
    root = build_reference(tmp_path / "host.detect.redis")
    (root / "src/blcks/detectredis/handler/handler.py").write_text("VERSION = 1\n")
    return root


def packed_handler(root: Path) -> str:
    with zipfile.ZipFile(root / ZIP) as archive:
        name = next(n for n in archive.namelist() if n.endswith("handler/handler.py"))
        return archive.read(name).decode()


def doit(*args: str) -> list[str]:
    return [sys.executable, "-m", "doit", *args]


def test_doit_auto_repacks_on_edits_and_survives_a_broken_graph(
    reference: Path, watching: list[Watching]
) -> None:
    watch = start(watching, doit("auto", "pack:detectredis"), reference)
    watch.wait_for(r"^Success packing, output: bin/blcks\.detectredis-0\.1\.0\.zip$")
    watch.wait_for(r"^-- watching for changes \(Ctrl-C to stop\)$")
    assert packed_handler(reference) == "VERSION = 1\n"

    # A burst of saves, with output, caches and editor files among them, is one run.
    (reference / HANDLER).write_text("VERSION = 2\n")
    (reference / REQUIREMENTS).write_text("redis>=5\n")
    (reference / HANDLER).with_name(".handler.py.swp").write_text("swap")
    (reference / HANDLER).with_name("handler.py~").write_text("backup")
    (reference / HANDLER).parent.joinpath("__pycache__").mkdir()
    (reference / HANDLER).parent.joinpath("__pycache__", "handler.cpython.pyc").write_bytes(b"")
    (reference / "bin" / "other.zip").write_bytes(b"")
    (reference / ".trek" / "runs").mkdir()
    (reference / ".trek" / "runs" / "1.json").write_text("{}")
    line = watch.wait_for(r"^-- change: ")
    assert line == f"-- change: {HANDLER}, {REQUIREMENTS}; running pack:detectredis"
    watch.wait_for(r"^Success packing")
    assert packed_handler(reference) == "VERSION = 2\n"

    graph = reference / "src" / "graph.yml"
    good = graph.read_text()
    graph.write_text(BROKEN_YAML)
    assert watch.wait_for(r"^-- change: ") == "-- change: src/graph.yml; running pack:detectredis"
    error = watch.wait_for(r"^ERROR: ")
    assert re.match(r"^ERROR: src/graph\.yml:\d+:\d+: invalid YAML", error), error
    assert watch.proc.poll() is None

    graph.write_text(good)
    assert watch.wait_for(r"^-- change: ") == "-- change: src/graph.yml; running pack:detectredis"
    watch.wait_for(r"^-- pack:detectredis$")  # loaded again; nothing to repack
    (reference / HANDLER).write_text("VERSION = 3\n")
    assert watch.wait_for(r"^-- change: ") == f"-- change: {HANDLER}; running pack:detectredis"
    watch.wait_for(r"^Success packing")
    assert packed_handler(reference) == "VERSION = 3\n"

    assert watch.interrupt() == 130
    assert watch.lines[-1] == "-- stopped watching"
    assert not any("Traceback" in line for line in watch.lines)


def test_a_new_script_is_seen_without_restarting(
    reference: Path, tmp_path: Path, watching: list[Watching]
) -> None:
    watch = start(watching, doit("auto", "pack"), reference)
    watch.wait_for(r"^-- watching for changes")
    staged = tmp_path / "detectcopy"
    shutil.copytree(reference / "src" / "blcks" / "detectredis", staged)
    for name in ("detectredis.para", "openfaas.yml"):
        (staged / name).write_text((staged / name).read_text().replace("detectredis", "detectcopy"))
    (staged / "detectredis.para").rename(staged / "detectcopy.para")
    staged.rename(reference / "src" / "blcks" / "detectcopy")
    watch.wait_for(r"^-- change: src/blcks/detectcopy")
    watch.wait_for(r"^Success packing, output: bin/blcks\.detectcopy-")
    assert watch.interrupt() == 130


def test_max_cycles_ends_after_one_run_with_its_exit_code(reference: Path) -> None:
    done = subprocess.run(
        doit("auto", "--max-cycles", "1", "pack:detectredis"),
        cwd=reference,
        capture_output=True,
        text=True,
        timeout=GUARD,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success packing, output: bin/blcks.detectredis-0.1.0.zip" in done.stdout

    (reference / "src" / "graph.yml").write_text(BROKEN_YAML)
    done = subprocess.run(
        doit("auto", "--max-cycles", "1", "pack:detectredis"),
        cwd=reference,
        capture_output=True,
        text=True,
        timeout=GUARD,
    )
    assert done.returncode == 3
    assert re.match(r"^ERROR: src/graph\.yml:\d+:\d+: invalid YAML", done.stderr), done.stderr


def test_an_unknown_task_is_reported_like_doit_run_does(reference: Path) -> None:
    done = subprocess.run(
        doit("auto", "--max-cycles", "1", "pack:nosuch"),
        cwd=reference,
        capture_output=True,
        text=True,
        timeout=GUARD,
    )
    assert done.returncode == 3
    assert done.stderr.startswith(
        'ERROR: command `auto` invalid parameter: "pack:nosuch". Must be a task, or a target.'
    )


def test_trek_watch_reports_a_broken_project_in_trek_words_and_keeps_watching(
    reference: Path, watching: list[Watching]
) -> None:
    graph = reference / "src" / "graph.yml"
    graph.write_text(BROKEN_YAML)
    watch = start(watching, [sys.executable, "-m", "trek_tasks", "watch"], reference)
    error = watch.wait_for(r"^trek: error: ")
    assert re.match(r"^trek: error: src/graph\.yml:\d+:\d+: invalid YAML", error), error
    watch.wait_for(r"^-- watching for changes")
    graph.write_text("graph: [\n")
    assert watch.wait_for(r"^-- change: ") == "-- change: src/graph.yml; running execute"
    watch.wait_for(r"^trek: error: src/graph\.yml:")
    assert watch.interrupt() == 130
    assert watch.lines[-1] == "-- stopped watching"


def test_what_is_watched_and_what_is_noise(tmp_path: Path) -> None:
    root = str(tmp_path)
    watch = project_watch(root, None)
    wanted = [
        "src/graph.yml",
        "src/blcks/x/handler/h.py",
        "src/blcks/x/.trek/config.json",
        "inputs/inventory.yml",
        "trek_packages/n/n.para",
        "manifest.json",
        "packages.json",
        ".trek/config.json",
        "src",
    ]
    ignored = [
        "src/blcks/x/handler/__pycache__/h.pyc",
        "src/blcks/x/bin/x.zip",
        "src/.graph.yml.swp",
        "src/graph.yml~",
        "src/4913",
        "src/blcks/x/.trek/env/x.log",
        ".trek/doit.db",
        ".trek/env/detectredis.log",
        ".trek/runs/1.json",
        "bin/w.zip",
        "dodo.py",
        "README.md",
        "packages.lock.json",
    ]
    assert [p for p in wanted if not watch.wants(os.path.join(root, p))] == []
    assert [p for p in ignored if watch.wants(os.path.join(root, p))] == []
    assert watch.roots() == (root,)


def test_targets_never_trigger_and_file_deps_always_do(tmp_path: Path) -> None:
    out, dep = str(tmp_path / "src" / "out.txt"), str(tmp_path / "lib" / "bin" / "dep.txt")
    watch = WatchSet(frozenset({dep}), frozenset({str(tmp_path / "src")}), frozenset({out}))
    assert watch.wants(dep) and not watch.wants(out)
    made = WatchSet(folders=frozenset({str(tmp_path)}), targets=frozenset({str(tmp_path / "gen")}))
    assert not made.wants(str(tmp_path / "gen" / "a.py")) and made.wants(str(tmp_path / "a.py"))
    assert watch.roots() == (str(tmp_path),)
    assert is_noise(os.path.join("a", "bin", "x")) and not is_noise(os.path.join("a", "x.py"))


@pytest.fixture
def example_up(project: Path, redis_server: int) -> Iterator[Path]:
    """The example with its scripts installed, pointed at the test redis; shut down after."""
    from trek_tasks.cli import main

    assert main(["install", "-p", str(project)]) == 0
    inventory = project / "inputs" / "inventory.yml"
    inventory.write_text(inventory.read_text().replace("port: 6379", f"port: {redis_server}"))
    config_file = project / ".trek" / "config.json"
    config = json.loads(config_file.read_text())
    config["router_port"] = free_port()
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    yield project
    main(["shutdownenv", "-a", "-p", str(project)])


def edit_handler(project: Path, text: str) -> str:
    handler = project / HANDLER
    original = handler.read_text()
    handler.write_text(original + text)
    return original


def test_doit_auto_run_reruns_the_example_and_survives_a_syntax_error(
    example_up: Path, watching: list[Watching]
) -> None:
    from trek_tasks.environment import Environment
    from trek_tasks.project import Project

    watch = start(watching, doit("auto", "run"), example_up)
    watch.wait_for(r"^-- watching for changes", FIRST_RUN_GUARD)
    assert "Done. [host.detect.redis]" in watch.lines, "\n".join(watch.lines)

    original = edit_handler(example_up, "\n# edited\n")
    assert watch.wait_for(r"^-- change: ") == f"-- change: {HANDLER}; running execute"
    watch.wait_for(r"^restart detectredis: handler/handler\.py changed$")
    watch.wait_for(r"^Done\. \[host\.detect\.redis\]$")

    edit_handler(example_up, "\ndef broken(:\n")
    assert watch.wait_for(r"^-- change: ") == f"-- change: {HANDLER}; running execute"
    watch.wait_for(r"^SyntaxError: ")
    assert watch.proc.poll() is None

    (example_up / HANDLER).write_text(original)
    assert watch.wait_for(r"^-- change: ") == f"-- change: {HANDLER}; running execute"
    watch.wait_for(r"^restart detectredis: ")
    watch.wait_for(r"^Done\. \[host\.detect\.redis\]$")

    assert watch.interrupt() == 130
    project = Project.load(example_up)
    env = Environment(project)
    assert [env.stale_reason(s) for s in project.used_scripts()] == [None, None, None]


def test_trek_watch_reruns_and_shuts_down_when_asked(
    example_up: Path, watching: list[Watching]
) -> None:
    command = [sys.executable, "-m", "trek_tasks", "watch", "-p", str(example_up), "--shutdown"]
    watch = start(watching, command, example_up.parent)
    watch.wait_for(r"^-- watching for changes", FIRST_RUN_GUARD)
    assert "Done. [host.detect.redis]" in watch.lines, "\n".join(watch.lines)
    edit_handler(example_up, "\n# edited\n")
    assert watch.wait_for(r"^-- change: ") == f"-- change: {HANDLER}; running execute"
    watch.wait_for(r"^restart detectredis: handler/handler\.py changed$")
    watch.wait_for(r"^Done\. \[host\.detect\.redis\]$")
    if FORK_SERVER:  # the restarted script is a child of its environment's fork server
        handle = json.loads((example_up / ".trek" / "env" / "detectredis.json").read_text())
        server = forkserver.load(str(example_up), handle["env_key"])
        assert server is not None and parent_of(handle["state"]["pid"]) == server.pid
    assert watch.interrupt() == 130
    assert "closing local Marvin..." in watch.lines
    assert not list((example_up / ".trek" / "env").glob("*.json"))


def test_the_watched_folders_follow_the_config(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / ".trek").mkdir(parents=True)
    (root / "manifest.json").write_text('{"entry": "flow/graph.yml"}\n')
    (root / ".trek" / "config.json").write_text(
        json.dumps({"blcks_code_base": "code/blcks", "local_inventory_file": "data/inv.yml"})
    )
    watch = project_watch(str(root), None)
    wanted = ["flow/graph.yml", "code/blcks/x/handler/h.py", "data/inv.yml", "inputs/event.yml"]
    ignored = ["src/blcks/x/handler/h.py", "src/graph.yml", "code/other.py"]
    assert [p for p in wanted if not watch.wants(str(root / p))] == []
    assert [p for p in ignored if watch.wants(str(root / p))] == []

"""Faults while a run is under way (issue 10, item 6), through the real `trek` in a subprocess:
Ctrl-C during a long node, `.trek/` removed mid-run, a full disk.

The detectredis handler of a copy of the example waits at a gate: it touches ``inside``,
then waits (at most 30 s, the project's ``action_timeout``) for ``release``. Timings are
printed (``pytest -s`` shows them); the bounds asserted are guards, far above them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, run_module, set_config, set_redis_ports

from trek_tasks.cli import main
from trek_tasks.runlog import read_lines
from trek_tasks.runtimes import process

HANDLER = Path("src/blcks/detectredis/handler/handler.py")
GUARD = 300.0  # seconds; a first run may build the script environments
STOPPED_WITHIN = 5.0  # a generous bound: measured well under a second
STOPPED = "workflow [host.detect.redis] stopped during node 2 (detectredis)"
RECORD = re.compile(r"^trek: error: \.trek/runs/[0-9a-f-]+\.json: no space left on device$")


class Trek:
    """A `trek` process in its own session (so a signal to its group is a terminal's
    Ctrl-C); its output lines are read by threads."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trek_tasks", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_until(self, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + GUARD
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.wait()
                pytest.fail(f"not ready; output:\n{self.output()}")
            time.sleep(0.01)

    def wait(self) -> int:
        code = self.proc.wait(timeout=GUARD)
        for reader in self.readers:
            reader.join(GUARD)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code

    def interrupt(self) -> tuple[int, float]:
        """Ctrl-C to the process group; the exit code and the seconds it took to exit."""
        sent = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=GUARD)
        took = time.monotonic() - sent
        return self.wait(), took

    def said(self) -> list[str]:
        """stderr's lines but the validation warnings every run repeats and blank ones."""
        return [line for line in self.err if line and not line.startswith("trek: warning:")]

    def output(self) -> str:
        return "\n".join(self.out + self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.wait()


@pytest.fixture
def started() -> Iterator[list[Trek]]:
    running: list[Trek] = []
    yield running
    for trek in running:
        trek.kill()


def start(started: list[Trek], args: list[str], cwd: Path) -> Trek:
    trek = Trek(args, cwd)
    started.append(trek)
    return trek


@pytest.fixture
def gated(project: Path, redis_server: int, tmp_path: Path) -> Iterator[Path]:
    """The example with detectredis waiting at the gate (``inside``, ``release``)."""
    set_config(project, router_port=0)
    set_redis_ports(project, {"S-redis-local": redis_server})
    handler = project / HANDLER
    gate = (
        "def process(tag_name):\n"
        "    import pathlib\n"
        "    import time\n\n"
        f"    pathlib.Path({str(tmp_path / 'inside')!r}).touch()\n"
        "    deadline = time.monotonic() + 30\n"
        f"    while not pathlib.Path({str(tmp_path / 'release')!r}).exists():\n"
        "        if time.monotonic() > deadline:\n"
        "            break\n"
        "        time.sleep(0.01)\n"
    )
    handler.write_text(handler.read_text().replace("def process(tag_name):\n", gate))
    yield project
    main(["shutdownenv", "-a", "-p", str(project)])


def inside(tmp_path: Path) -> Callable[[], bool]:
    return (tmp_path / "inside").exists


def processes_of(project: Path) -> list[int]:
    """Live processes of ours serving ``project``, known by identity: its scripts and local
    Marvin (a fork server a script was started from is a part of the runtime, not counted)."""
    return sorted(
        found.pid
        for found in process.find(str(project))
        if not found.role.startswith("forkserver:")
    )


def everything_of(project: Path) -> list[int]:
    """Every live process of ours for ``project``, fork servers included."""
    return sorted(found.pid for found in process.find(str(project)))


def last_record(project: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((project / ".trek" / "runs" / "last.json").read_text())
    return record


def trek(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_module("trek_tasks", *args, cwd=cwd, timeout=GUARD)


def test_ctrl_c_during_a_long_node_stops_run_once_at_once(
    gated: Path, tmp_path: Path, started: list[Trek]
) -> None:
    run = start(started, ["run", "--once"], gated)
    run.wait_until(inside(tmp_path))
    code, took = run.interrupt()
    print(f"trek run --once: exit {code} {took:.3f} s after Ctrl-C")
    assert code == 130, run.output()
    assert run.said() == [f"Interrupted: {STOPPED}"]
    assert "Traceback" not in run.output()
    assert run.out[-6:] == [
        "Closing environment...",
        "closing blcks blckssettags...",
        "closing blcks detectredis...",
        "closing blcks notification...",
        "closing local Marvin...",
        "Done",
    ]
    record = last_record(gated)
    assert (record["status"], record["error"]) == (
        "interrupted",
        "interrupted during node 2 (detectredis)",
    )
    nodes = [(node["id"], node["status"]) for node in record["nodes"]]
    assert nodes == [("0", "done"), ("2", "interrupted"), *((n, "not run") for n in "1345")]
    assert everything_of(gated) == []
    assert took < STOPPED_WITHIN


def test_ctrl_c_during_a_long_node_stops_watch_at_once_and_keeps_the_runtimes(
    gated: Path, tmp_path: Path, started: list[Trek]
) -> None:
    watch = start(started, ["watch"], gated)
    watch.wait_until(inside(tmp_path))
    code, took = watch.interrupt()
    print(f"trek watch: exit {code} {took:.3f} s after Ctrl-C")
    assert code == 130, watch.output()
    assert watch.out[-1] == f"-- stopped watching ({STOPPED})"
    assert watch.said() == []
    assert last_record(gated)["status"] == "interrupted"
    assert len(processes_of(gated)) == 4  # three scripts and the local Marvin, as after any watch
    clock = time.monotonic()
    down = trek("shutdownenv", "-a", cwd=gated)
    print(f"shutdownenv -a with the abandoned call in flight: {time.monotonic() - clock:.3f} s")
    assert down.returncode == 0, down.stdout + down.stderr
    assert everything_of(gated) == []
    assert took < STOPPED_WITHIN


@pytest.mark.parametrize("once", [True, False], ids=["once", "kept-up"])
def test_trek_removed_mid_run_is_one_line_and_leaves_no_process(
    gated: Path, tmp_path: Path, started: list[Trek], once: bool
) -> None:
    run = start(started, ["run", *(["--once"] if once else [])], gated)
    run.wait_until(inside(tmp_path))
    shutil.rmtree(gated / ".trek")
    (tmp_path / "release").touch()
    assert run.wait() == 1, run.output()
    assert run.said() == [
        "trek: error: .trek/doit.db: removed during the run; doit's record of what it ran is lost"
    ]
    assert "Traceback" not in run.output()
    if not once:
        # Their handles and the Marvin's state are gone: they are found by identity.
        assert len(processes_of(gated)) == 4
        down = trek("shutdownenv", "-a", cwd=gated)
        assert down.returncode == 0, down.stdout + down.stderr
        assert down.stdout.splitlines()[1:] == [
            "closing blcks blckssettags...",
            "closing blcks detectredis...",
            "closing blcks notification...",
            "closing local Marvin...",
            "Done",
        ]
    assert everything_of(gated) == []


@pytest.fixture
def small_disk(gated: Path) -> Iterator[Path]:
    """``gated`` with its ``.trek/`` on a 4 MB tmpfs of its own; yields that folder."""
    state = gated / ".trek"
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    saved = gated.parent / "state-before-mount"
    shutil.copytree(state, saved)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(state)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        shutil.copytree(saved, state, dirs_exist_ok=True)
        yield state
    finally:
        main(["shutdownenv", "-a", "-p", str(gated)])
        subprocess.run(["umount", "-l", str(state)], check=True)


def fill(folder: Path) -> None:
    """Write to ``folder`` until its file system is full."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(64 * 1024))
    except OSError as err:
        assert err.errno == 28, err
    finally:
        os.close(fd)


def test_a_full_disk_when_the_run_record_is_written_is_one_line(
    small_disk: Path, gated: Path, tmp_path: Path, started: list[Trek]
) -> None:
    run = start(started, ["run", "--once"], gated)
    run.wait_until(inside(tmp_path))
    fill(small_disk)
    (tmp_path / "release").touch()
    assert run.wait() == 1, run.output()
    said = run.said()
    assert len(said) == 1 and RECORD.match(said[0]), run.output()
    assert "Traceback" not in run.output()
    # No record and no temp file; only the run's event log, appended line by line as the
    # run went (runlog.py: readers take whole lines only, so a cut last line shows nothing)
    left = list((small_disk / "runs").iterdir())
    assert [path.name.endswith(".events.jsonl") for path in left] == [True]
    events, _ = read_lines(left[0])
    assert events[0]["event"] == "started"
    assert "finished" not in {event["event"] for event in events}  # the run did not finish
    assert everything_of(gated) == []


def test_a_full_disk_when_doit_saves_its_state_is_one_line(small_disk: Path, gated: Path) -> None:
    first = trek("pack", "-a", cwd=gated)
    assert first.returncode == 0, first.stdout + first.stderr
    before = sorted(p.name for p in small_disk.iterdir())
    fill(small_disk)
    handler = gated / HANDLER
    handler.write_text(handler.read_text() + "# edited\n")
    again = trek("pack", "-a", cwd=gated)
    assert again.returncode == 1, again.stdout + again.stderr
    said = [line for line in again.stderr.splitlines() if not line.startswith("trek: warning:")]
    assert said == ["trek: error: .trek/doit.db: no space left on device"]
    assert sorted(p.name for p in small_disk.iterdir()) == sorted([*before, "filler"])

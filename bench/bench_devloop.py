"""Dev-loop figures (issues 5 and 13), printed as one JSON object, section by section.

- ``floors``: a bare ``python -c pass`` (and ``-S``), a bare fork, one loopback HTTP call.
- ``save_bursts``: how far apart the file events of one save are (the watch debounce).
- ``restart``: restart-to-ready of a script, forked from its fork server and afresh.
- ``devloop``, on the example and a synthetic 10-script chain: ``noop_doit_run_s``;
  ``incremental_doit_run_s`` (edit one handler, ``doit run``) with the run's own time;
  ``incremental_trek_run_s`` (``trek run --auto``); ``full_reup_s`` (edit, ``trek
  shutdownenv -a && trek run``), also with ``fork_server`` false; ``speedup`` = full /
  incremental; ``doit_floor_s`` (``doit run`` with no Trek) and ``speedup_ceiling`` (full
  / (floor + the run's own time)); PSS of the idle scripts, forked and fresh; ``reuse_s``.
- ``watch``: ``trek watch`` on the chain, save to result per kind of edit, minus the debounce.
- ``scale``: 100 scripts / 1,000 nodes (see ``scale``).
Each time is a median (of 5 unless said).

Run: ``python bench/bench_devloop.py [--only SECTION[,SECTION]]``
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _projects import (  # noqa: E402
    chain_project,
    checked,
    copy_example,
    doit,
    seconds,
    trek,
    user_env,
)

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


def run_seconds(project: Path) -> float:
    """The last run's own time, from its record (the engine and the scripts, no CLI)."""
    return float(json.loads((project / ".trek" / "runs" / "last.json").read_text())["duration"])


def measure(project: Path, handler: Path, reuse: bool) -> dict[str, object]:
    """The loop on one project; with the fork server (the default) unless named otherwise.

    ``speedup``: ``full_reup_s`` / ``incremental_doit_run_s``; ``speedup_vs_fresh_reup``: the
    same against a full re-up with ``fork_server`` false (every script a new interpreter,
    as before the fork server)."""
    checked(trek("config", "router_port", "0", cwd=project))
    checked(trek("install", cwd=project))
    checked(doit("run", cwd=project))
    edit = Editor(handler)
    figures: dict[str, object] = {
        "noop_doit_run_s": seconds(lambda: checked(doit("run", cwd=project)), REPEAT)
    }
    own: list[float] = []

    def incremental() -> None:
        checked(doit("run", cwd=project))
        own.append(run_seconds(project))

    incremental_s = figures["incremental_doit_run_s"] = seconds(incremental, REPEAT, before=edit)
    figures["incremental_run_own_s"] = round(statistics.median(own), 4)
    figures["incremental_trek_run_s"] = seconds(
        lambda: checked(trek("run", "--auto", cwd=project)), REPEAT, before=edit
    )
    figures["memory_fork_served"] = memory(project)

    def full() -> None:
        checked(trek("shutdownenv", "-a", cwd=project))
        checked(trek("run", cwd=project))

    full_s = figures["full_reup_s"] = seconds(full, REPEAT, before=edit)
    floor_s = figures["doit_floor_s"] = doit_floor()
    # If trek cost nothing in a `doit run` but the run itself (no start-up, no checks, no
    # restart), this is the speedup it would show: the ceiling for ``speedup`` here.
    figures["speedup_ceiling"] = round(full_s / (floor_s + statistics.median(own)), 1)
    checked(trek("config", "fork_server", "false", cwd=project))
    fresh_s = figures["full_reup_fresh_interpreters_s"] = seconds(full, REPEAT, before=edit)
    figures["memory_fresh_interpreters"] = memory(project)
    checked(trek("config", "fork_server", "true", cwd=project))
    checked(trek("shutdownenv", "-a", cwd=project))
    figures["speedup"] = round(full_s / incremental_s, 1)
    figures["speedup_vs_fresh_reup"] = round(fresh_s / incremental_s, 1)
    if reuse:
        checked(trek("run", cwd=project))
        figures["reuse_s"] = seconds(
            lambda: checked(trek("run", "--reuse", cwd=project)), REPEAT, before=edit
        )
    trek("shutdownenv", "-a", cwd=project)
    return figures


def doit_floor() -> float:
    """``doit run`` of a dodo file with one task that is always up to date: the interpreter,
    doit and its plugins, no Trek (what no ``doit run`` of a Trek project goes below)."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "dodo.py").write_text(
            'def task_nothing():\n    return {"actions": None, "uptodate": [True]}\n'
        )
        checked(doit("run", cwd=folder))
        return seconds(lambda: checked(doit("run", cwd=folder)), 10)


# -- restarts, watch mode, floors (issue 13 items 1 and 2) ----------------------------


def restart_to_ready(project: Path, script_id: str, fork: bool) -> dict[str, float]:
    """Median of 10 restarts after a handler edit, in this process: ``start_ms`` from the
    runtime's start until the new server answers as ours (the fork itself, the handler's
    import, listening; with ``fork`` false a new interpreter importing everything), and
    ``up_ms`` for the whole ``Environment.up`` (handle written, the old one stopped, strays
    looked for)."""
    from trek_tasks.environment import Environment
    from trek_tasks.project import Project, Script
    from trek_tasks.runtimes.base import Handle
    from trek_tasks.runtimes.local import LocalRuntime

    starts: list[float] = []

    class Timed(LocalRuntime):
        def start(
            self, script: Script, port: int, env: dict[str, str], log_path: Path, project: str = ""
        ) -> Handle:
            clock = time.perf_counter()
            try:
                return super().start(script, port, env, log_path, project)
            finally:
                starts.append(time.perf_counter() - clock)

    checked(trek("config", "fork_server", "true" if fork else "false", cwd=project))
    checked(trek("initenv", cwd=project))
    env = Environment(Project.load(project), runtime=Timed())
    edit = Editor(project / "src" / "blcks" / script_id / "handler" / "handler.py")
    ups: list[float] = []
    for _ in range(10):
        edit()
        script = Project.load(project).scripts[script_id]
        clock = time.perf_counter()
        env.up(script)
        ups.append(time.perf_counter() - clock)
    checked(trek("shutdownenv", "-a", cwd=project))
    checked(trek("config", "fork_server", "true", cwd=project))
    return {
        "start_ms": round(statistics.median(starts) * 1000, 1),
        "up_ms": round(statistics.median(ups) * 1000, 1),
    }


def floors() -> dict[str, float]:
    """What no restart or run here can go below: a bare interpreter (with and without the
    site packages' start-up files), a bare fork, one HTTP round trip on loopback."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    python = [sys.executable]
    figures = {
        "python_c_pass_ms": seconds(lambda: subprocess.run([*python, "-c", "pass"]), 10) * 1000,
        "python_S_c_pass_ms": seconds(lambda: subprocess.run([*python, "-S", "-c", "pass"]), 10)
        * 1000,
    }

    def fork_and_wait() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    figures["bare_fork_ms"] = seconds(fork_and_wait, 20) * 1000

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def round_trip() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", "/")
        conn.getresponse().read()
        conn.close()

    figures["http_round_trip_ms"] = seconds(round_trip, 50) * 1000
    server.shutdown()
    return {key: round(value, 2) for key, value in figures.items()}


def save_bursts() -> dict[str, float]:
    """How far apart the file events of one save are (what the watch debounce must cover):
    the spread, in ms, of the events of a plain write, an atomic rename and vim's save with
    and without a backup copy, each the largest of 5 saves."""
    import watchfiles

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        target = folder / "handler.py"
        target.write_text("x = 1\n")

        def vim(*settings: str) -> None:
            script = [arg for setting in settings for arg in ("-c", setting)]
            command = ["vim", "-u", "NONE", "-n", *script, "-c", "normal Gox", "-c", "wq"]
            subprocess.run([*command, str(target)], stdin=subprocess.DEVNULL, capture_output=True)

        def atomic() -> None:
            (folder / ".handler.py.tmp").write_text("x = 2\n")
            os.replace(folder / ".handler.py.tmp", target)

        saves = {
            "plain_write": lambda: target.write_text(target.read_text() + "# w\n"),
            "atomic_rename": atomic,
        }
        if shutil.which("vim"):
            saves["vim"] = vim
            saves["vim_backup"] = lambda: vim("set backup writebackup backupcopy=no")
        stop = threading.Event()
        seen: list[float] = []

        def watch() -> None:
            for changes in watchfiles.watch(
                folder, step=1, debounce=1, rust_timeout=50, yield_on_timeout=True, stop_event=stop
            ):
                seen.extend(time.perf_counter() for _ in changes)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        time.sleep(0.5)
        spreads: dict[str, float] = {}
        for label, save in saves.items():
            widest = 0.0
            for _ in range(5):
                seen.clear()
                save()
                time.sleep(0.3)
                if seen:
                    widest = max(widest, (max(seen) - min(seen)) * 1000)
            spreads[f"{label}_spread_ms"] = round(widest, 1)
        stop.set()
        thread.join()
    return spreads


def watch_mode(project: Path, edits: dict[str, Callable[[int], None]], debounce: int) -> dict:
    """``trek watch --debounce D`` kept running; per kind of edit, the median of 5 of: the
    edit until the watch says it saw it (``noticed_ms``: the debounce plus the file events'
    way), until the run's record is written (``save_to_result_ms``), and that minus the
    debounce (``after_debounce_ms``: what the edit costs the loop); ``run_own_ms``, the
    run's own time in it (engine and scripts)."""
    command = [sys.executable, "-m", "trek_tasks", "watch", f"--debounce={debounce}"]
    watch = subprocess.Popen(
        command,
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=user_env(),
    )
    lines: queue.Queue[tuple[float, str]] = queue.Queue()

    def read() -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            lines.put((time.perf_counter(), line.rstrip("\n")))

    threading.Thread(target=read, daemon=True).start()

    def until(prefix: str, timeout: float = 60.0) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            try:
                at, line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return at
        raise SystemExit(f"trek watch did not print {prefix!r} within {timeout:g} s")

    record = project / ".trek" / "runs" / "last.json"

    def run_id() -> str:
        try:
            return str(json.loads(record.read_text())["run_id"])
        except (OSError, ValueError, KeyError):
            return ""

    figures: dict[str, dict[str, float]] = {}
    try:
        until("-- watching")
        for label, edit in edits.items():
            noticed, results, own = [], [], []
            for count in range(5):
                before = run_id()
                time.sleep(0.3)
                clock = time.perf_counter()
                edit(count)
                noticed.append(until("-- change") - clock)
                while run_id() == before:
                    time.sleep(0.0005)
                results.append(time.perf_counter() - clock)
                own.append(run_seconds(project))
            result_ms = statistics.median(results) * 1000
            figures[label] = {
                "noticed_ms": round(statistics.median(noticed) * 1000, 1),
                "save_to_result_ms": round(result_ms, 1),
                "after_debounce_ms": round(result_ms - debounce, 1),
                "run_own_ms": round(statistics.median(own) * 1000, 1),
            }
    finally:
        watch.terminate()
        watch.wait()
    return {"debounce_ms": debounce, **figures}


# -- scale (issue 13 item 3) ---------------------------------------------------------

SCALE_SCRIPTS, SCALE_NODES = 100, 1000


def pss_mb(pid: int) -> float | None:
    """Proportional set size of ``pid`` (its private pages plus its share of the shared
    ones), from /proc/<pid>/smaps_rollup; None when it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return round(int(line.split()[1]) / 1024, 2)
    except OSError:
        return None
    return None


def memory(project: Path) -> dict[str, float]:
    """PSS of each running script (by its handle) and of each live fork server."""
    scripts = [
        pss_mb(json.loads(path.read_text())["state"]["pid"])
        for path in sorted((project / ".trek" / "env").glob("*.json"))
        if path.name != "marvin.json"
    ]
    servers = [
        pss_mb(json.loads(path.read_text())["pid"])
        for path in sorted((project / ".trek" / "forkservers").glob("*.json"))
    ]
    alive = [mb for mb in scripts if mb is not None]
    return {
        "scripts": len(alive),
        "scripts_pss_sum_mb": round(sum(alive), 1),
        "script_pss_mean_mb": round(sum(alive) / max(len(alive), 1), 2),
        "fork_servers_pss_mb": round(sum(mb for mb in servers if mb is not None), 1),
    }


def engine_figures(project: Path) -> dict[str, float]:
    """From the last run record: run time per node, and the engine's own share (the run
    minus the nodes' own durations, which include the HTTP call to the script)."""
    record = json.loads((project / ".trek" / "runs" / "last.json").read_text())
    nodes = record["nodes"]
    own = record["duration"] - sum(n["duration"] for n in nodes)
    return {
        "run_s": round(record["duration"], 3),
        "run_ms_per_node": round(record["duration"] / len(nodes) * 1000, 3),
        "engine_own_ms_per_node": round(own / len(nodes) * 1000, 3),
    }


def scale() -> dict[str, object]:
    """A 100-script / 1,000-node chain (``chain_project``) in a store of its own: ``trek
    initenv`` from an empty store (one environment is built: the scripts' requirements are
    equal, so they share it) and from a warm one, no-op ``doit run``, ``trek run`` with all
    scripts up, engine time per node, PSS of the idle scripts after a run, fork-served and
    (``trek config fork_server false``) in fresh interpreters."""
    figures: dict[str, object] = {"scripts": SCALE_SCRIPTS, "nodes": SCALE_NODES}
    saved = os.environ.get("TREK_HOME")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        os.environ["TREK_HOME"] = str(tmp / "store")  # empty: the first initenv is cold
        project = chain_project(tmp / "scale", scripts=SCALE_SCRIPTS, nodes=SCALE_NODES)
        try:
            checked(trek("install", cwd=project))
            figures["initenv_cold_store_s"] = seconds(
                lambda: checked(trek("initenv", cwd=project)), repeat=1
            )
            figures["initenv_warm_store_s"] = seconds(
                lambda: checked(trek("initenv", cwd=project)),
                repeat=3,
                before=lambda: checked(trek("shutdownenv", "-a", cwd=project)),
            )
            checked(doit("run", cwd=project))
            figures["noop_doit_run_s"] = seconds(lambda: checked(doit("run", cwd=project)), 5)
            figures["trek_run_s"] = seconds(lambda: checked(trek("run", cwd=project)), 3)
            figures["engine"] = engine_figures(project)
            figures["memory_fork_served"] = memory(project)
            checked(trek("config", "fork_server", "false", cwd=project))
            checked(trek("shutdownenv", "-a", cwd=project))
            figures["initenv_fresh_interpreters_s"] = seconds(
                lambda: checked(trek("initenv", cwd=project)), repeat=1
            )
            checked(trek("run", cwd=project))
            figures["memory_fresh_interpreters"] = memory(project)
        finally:
            trek("shutdownenv", "-a", cwd=project)
            if saved is None:
                os.environ.pop("TREK_HOME", None)
            else:
                os.environ["TREK_HOME"] = saved
    return figures


def chain_edits(chain: Path) -> dict[str, Callable[[int], None]]:
    """Edits of three kinds on the 10-script chain: the last handler (restart s9, run), the
    first edge's binding (no restart, run), the last script's para (its description:
    validate, restart s9, run)."""
    handler = chain / "src/blcks/s9/handler/handler.py"
    graph = chain / "src/graph.yml"
    para = chain / "src/blcks/s9/s9.para"

    def edit_handler(count: int) -> None:
        with open(handler, "a") as out:
            out.write(f"# watch edit {count}\n")

    def edit_binding(count: int) -> None:
        text = graph.read_text()
        head, _, tail = text.partition("[{property: value, value: ")
        value, _, rest = tail.partition(",")
        graph.write_text(f"{head}[{{property: value, value: {int(value) + 1},{rest}")

    def edit_para(count: int) -> None:
        text = para.read_text()
        para.write_text(
            text.replace("description: bench", f"description: bench {count}", 1)
            if count == 0
            else text.replace(f"bench {count - 1}", f"bench {count}")
        )

    return {
        "handler_edit": edit_handler,
        "graph_binding_edit": edit_binding,
        "para_edit": edit_para,
    }


def devloop() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        example = copy_example(tmp / "example")
        chain = chain_project(tmp / "chain10", scripts=10)
        return {
            "example": measure(
                example, example / "src/blcks/detectredis/handler/handler.py", reuse=False
            ),
            "chain10": measure(chain, chain / "src/blcks/s9/handler/handler.py", reuse=True),
        }


def restarts() -> dict[str, object]:
    """Restart-to-ready of the example's detectredis (its handler imports redis-py) and of
    a chain script (imports only the SDK), forked and in a fresh interpreter."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        example = copy_example(tmp / "example")
        chain = chain_project(tmp / "chain10", scripts=10)
        for project in (example, chain):
            checked(trek("config", "router_port", "0", cwd=project))
            checked(trek("install", cwd=project))
        return {
            "detectredis_forked": restart_to_ready(example, "detectredis", fork=True),
            "detectredis_fresh_interpreter": restart_to_ready(example, "detectredis", fork=False),
            "chain_script_forked": restart_to_ready(chain, "s9", fork=True),
            "chain_script_fresh_interpreter": restart_to_ready(chain, "s9", fork=False),
        }


def watching() -> dict[str, object]:
    """Watch mode on the 10-script chain, per kind of edit, at the default debounce; and
    the full re-up it is compared with."""
    from trek_tasks.options import WATCH_DEBOUNCE_MS

    with tempfile.TemporaryDirectory() as name:
        chain = chain_project(Path(name) / "chain10", scripts=10)
        checked(trek("config", "router_port", "0", cwd=chain))
        checked(trek("install", cwd=chain))
        checked(trek("run", cwd=chain))
        figures = watch_mode(chain, chain_edits(chain), WATCH_DEBOUNCE_MS)

        def full() -> None:
            checked(trek("shutdownenv", "-a", cwd=chain))
            checked(trek("run", cwd=chain))

        full_s = seconds(full, REPEAT, before=Editor(chain / "src/blcks/s9/handler/handler.py"))
        trek("shutdownenv", "-a", cwd=chain)
    handler_ms = figures["handler_edit"]["after_debounce_ms"]
    return {
        **figures,
        "full_reup_s": full_s,
        "handler_edit_speedup_vs_full_reup": round(full_s * 1000 / handler_ms, 1),
    }


# ``--only NAME[,NAME]`` runs those; all of them by default, in this order.
SECTIONS: dict[str, Callable[[], object]] = {
    "floors": floors,
    "save_bursts": save_bursts,
    "restart": restarts,
    "devloop": devloop,
    "watch": watching,
    "scale": scale,
}


def main(argv: list[str]) -> None:
    names = list(SECTIONS)
    if argv[:1] == ["--only"] and len(argv) == 2:
        names = argv[1].split(",")
        unknown = [n for n in names if n not in SECTIONS]
        if unknown:
            raise SystemExit(f"unknown section {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    print(json.dumps({name: SECTIONS[name]() for name in names}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])

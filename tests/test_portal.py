"""`trek webserver` over real HTTP: a real server subprocess on a free port, serving a copy
of the example; runs started through it are real `trek run` subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from conftest import EXAMPLE, set_config, set_redis_ports
from portal_served import Served, portal_env, webserver

from trek_tasks.cli import main
from trek_tasks.engine import NodeRun, RunResult
from trek_tasks.localrun import save_record
from trek_tasks.lock import file_lock
from trek_tasks.project import Project, copy_sources
from trek_tasks.runlog import read_lines

KEY = "host.detect.redis"
HANDLER = Path("src/blcks/detectredis/handler/handler.py")
NODE_IDS = ["0", "1", "2", "3", "4", "5"]
SECRETS = {
    "marvin_secret": "portal-test-marvin-secret-0123456789",
    "marvin_JWT": "portal-test-jwt-abcdefghijklmnop",
    "docker_password": "portal-test-docker-password-42",
}


@pytest.fixture
def example(example_on_redis: Path) -> Path:
    return example_on_redis


@pytest.fixture
def served(example: Path, isolated_home: Path) -> Iterator[Served]:
    with webserver("-p", str(example), cwd=example.parent, home=isolated_home) as server:
        yield server


def run_through_page(served: Served, reuse: bool = False) -> dict[str, object]:
    token = served.token(KEY)
    answer = served.post(f"/p/{KEY}/run" + ("?reuse=1" if reuse else ""), token)
    assert answer.status_code == 202, answer.text
    return served.action(KEY)


def test_the_projects_page_shows_scripts_last_run_and_environment(served: Served) -> None:
    page = served.get("/")
    assert page.status_code == 200
    assert f'<a href="/p/{KEY}">{KEY}</a>' in page.text
    assert "detectredis <small>(blcks)</small>" in page.text
    assert "never run" in page.text
    assert '<span class="env-down">detectredis: down</span>' in page.text
    run_through_page(served)
    summary = served.get("/api/projects").json()[0]
    assert summary["last_run"]["status"] == "done"
    assert summary["last_run"]["duration"] > 0
    assert [s["id"] for s in summary["scripts"]] == ["blckssettags", "notification", "detectredis"]
    states = {s["id"]: s["state"] for s in summary["environment"]["scripts"]}
    up = {"detectredis": "up", "blckssettags": "up", "notification": "up"}
    assert states == up, summary["environment"]
    assert summary["environment"]["marvin"]["state"] == "up"


def test_the_graph_is_the_dot_of_trek_graph_with_one_element_per_node(served: Served) -> None:
    page = served.get(f"/p/{KEY}").text
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert re.findall(r'<g id="node-([^"]+)" class="node st-not-run"', svg) == [
        "0",
        "2",
        "1",
        "3",
        "4",
        "5",
    ]
    image = served.get(f"/api/p/{KEY}/graph.svg")
    assert image.headers["Content-Type"].startswith("image/svg+xml")
    assert image.text == svg + "</svg>\n"


def node_fills(svg: str) -> dict[str, str]:
    """Each node's fill in an SVG Graphviz drew (its title is the node id)."""
    found = re.findall(r"<title>([^<]*)</title>\s*<(?:polygon|ellipse) fill=\"([^\"]+)\"", svg)
    return {node_id: fill for node_id, fill in found if node_id in NODE_IDS}


def test_the_page_colours_nodes_as_trek_graph_status_draws_them(
    served: Served, example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    statuses = {"0": "done", "2": "reused", "3": "failed", "4": "skipped"}
    nodes = {i: NodeRun(i, "action", "", status) for i, status in statuses.items()}
    result = RunResult(KEY, "20990101-000000-colour", "failed", nodes, 1.0, 0.5)
    save_record(Project.load(example), result)
    page = served.get(f"/p/{KEY}").text
    assert main(["graph", "--status", "-p", str(example)]) == 0
    drawn = (example / ".trek" / "graph-status.svg").read_text()
    white = "#ffffff"
    expected = {"0": "#99ee99", "2": "#99ccff", "3": "#ff8888", "4": "#dddddd", "1": white}
    assert node_fills(page) == node_fills(drawn) == {**expected, "5": white}
    assert '<g id="node-2" class="node st-reused" data-node="2">' in page
    # live updates re-class nodes: the classes' colours are the same ones
    assert '<link rel="stylesheet" href="/status.css">' in page
    css = served.get("/status.css")
    assert css.headers["Content-Type"].startswith("text/css")
    assert ".st-reused polygon, .st-reused ellipse, .status.st-reused { fill: #99ccff; " in css.text
    assert ".st-not-run polygon, .st-not-run ellipse, .status.st-not-run { fill: #ffffff; " in (
        css.text
    )


def test_a_post_without_the_page_token_is_refused(served: Served, example: Path) -> None:
    token = served.token(KEY)
    refused = {
        "no token": served.post(f"/p/{KEY}/run", ""),
        "wrong token": served.post(f"/p/{KEY}/run", token[:-1] + "x"),
        "other origin": served.post(
            f"/p/{KEY}/run", token, headers={"Origin": "http://evil.example"}
        ),
    }
    for why, answer in refused.items():
        assert answer.status_code == 403, why
    assert "the request does not carry this page&#39;s token" in refused["no token"].text
    assert "a request from http://evil.example may not change anything here" in (
        refused["other origin"].text
    )
    form = served.post(f"/p/{KEY}/shutdown", "", data={"token": "nope"})
    assert form.status_code == 403
    assert served.get(f"/api/p/{KEY}").json()["action"] is None  # nothing was started
    assert not (example / ".trek" / "portal").exists()
    rebound = served.get("/", headers={"Host": "evil.example:8080"})
    assert rebound.status_code == 400
    assert "this server does not answer for host &#39;evil.example:8080&#39;" in rebound.text
    assert token not in rebound.text
    assert "Access-Control-Allow-Origin" not in served.get("/api/projects").headers


def test_a_run_from_the_page_streams_node_states_and_lists_six_nodes(
    served: Served, example: Path
) -> None:
    handler = example / HANDLER  # slow enough for the stream to show it running
    handler.write_text(
        handler.read_text().replace(
            "    hosts_manager = ", "    import time\n    time.sleep(1)\n    hosts_manager = "
        )
    )
    token = served.token(KEY)
    assert served.post(f"/p/{KEY}/run", token).status_code == 202
    second = served.post(f"/p/{KEY}/run", token)
    assert second.status_code == 409
    assert second.json()["error"].startswith("the run started from this page is still going")
    seen: list[dict[str, str]] = []
    for message in served.live(KEY):
        run = message["run"]
        seen.append({n: s["status"] for n, s in run["nodes"].items()})
        if run["status"] == "done":
            break
    assert seen[-1] == dict.fromkeys(NODE_IDS, "done")
    assert {"0": "done", "2": "running"} in seen
    action = served.action(KEY)
    assert action["exit_code"] == 0
    assert "Done. [host.detect.redis]" in action["output"]
    runs = served.get(f"/api/p/{KEY}/runs").json()
    assert len(runs) == 1 and runs[0]["status"] == "done" and runs[0]["nodes"] == 6
    page = served.get(f"/p/{KEY}/runs/{runs[0]['run_id']}").text
    rows = re.findall(r'<tr data-node="(\d)".*?<td class="node-status">([^<]*)</td>', page, re.S)
    assert rows == [(n, "done") for n in ["0", "2", "3", "4", "5", "1"]]
    node = served.get(f"/api/p/{KEY}/nodes/2").json()
    assert node["run"]["outputs"]["fail_hosts_count"] == 1
    assert node["run"]["inputs"] == {"tag_name": "redis"}
    assert node["script"] == {"id": "detectredis", "kind": "blcks", "version": "0.1.0"}
    panel = served.get(f"/p/{KEY}/nodes/2?panel=1").text
    assert "S-redis-down" in panel
    # the event stream the run wrote, whole lines only
    events, _ = read_lines(example / ".trek" / "runs" / f"{runs[0]['run_id']}.events.jsonl")
    assert [e["event"] for e in events][:2] == ["started", "node"]
    assert events[-1]["event"] == "finished" and events[-1]["status"] == "done"


def test_a_skipped_node_says_which_filter_with_its_values_and_runs_diff(
    served: Served, example: Path, redis_server: int
) -> None:
    assert run_through_page(served)["exit_code"] == 0
    set_redis_ports(example, {"S-redis-down": redis_server})
    assert run_through_page(served, reuse=True)["name"] == "run --reuse"
    node = served.get(f"/api/p/{KEY}/nodes/5").json()
    why = "edge 4-5: nodes.2.fail_hosts_count (0) > 0 is false"
    assert node["run"]["status"] == "skipped"
    assert node["run"]["reason"] == why
    assert f'<p id="node-reason">skipped: {why}</p>' in unescape(
        served.get(f"/p/{KEY}/nodes/5").text
    )
    first, second = (r["run_id"] for r in reversed(served.get(f"/api/p/{KEY}/runs").json()))
    rows = {r["id"]: r for r in served.get(f"/api/p/{KEY}/diff?a={first}&b={second}").json()}
    assert (rows["5"]["a"], rows["5"]["b"]) == ("done", "skipped")
    assert '-  "fail_hosts_count": 1' in rows["2"]["diff"]
    assert '+  "fail_hosts_count": 0' in rows["2"]["diff"]
    assert rows["0"]["diff"] == []
    page = served.get(f"/p/{KEY}/diff?a={first}&b={second}").text
    assert '<tr data-node="2" class="changed">' in page


def test_the_page_and_the_cli_never_run_the_project_at_once(served: Served, example: Path) -> None:
    with file_lock(example / ".trek" / "run.lock"):  # as a `trek run` holds it
        action = run_through_page(served)
    assert action["exit_code"] == 1
    assert (
        "trek: error: another `trek run` is in progress on this project "
        f"(pid {os.getpid()}); wait for it or stop it"
    ) in action["output"]


def test_a_cli_run_shows_in_the_portal_and_environment_says_why_stale(
    served: Served, example: Path
) -> None:
    assert main(["run", "-p", str(example)]) == 0
    current = served.get(f"/api/p/{KEY}").json()["current"]
    assert current["status"] == "done"
    assert {n: s["status"] for n, s in current["nodes"].items()} == dict.fromkeys(NODE_IDS, "done")
    handler = example / HANDLER
    handler.write_text(handler.read_text() + "\n# edited\n")
    env = served.get(f"/api/p/{KEY}/environment").json()
    detect = next(s for s in env["scripts"] if s["id"] == "detectredis")
    assert (detect["state"], detect["reason"]) == ("stale", "handler/handler.py changed")
    assert isinstance(detect["port"], int)
    page = served.get(f"/p/{KEY}/environment").text
    assert '<td class="reason">handler/handler.py changed</td>' in page
    assert env["marvin"]["state"] == "up" and isinstance(env["marvin"]["port"], int)
    token = served.token(KEY)
    assert served.post(f"/p/{KEY}/shutdown", token).status_code == 202
    assert served.action(KEY)["exit_code"] == 0
    env = served.get(f"/api/p/{KEY}/environment").json()
    assert {s["state"] for s in env["scripts"]} == {"down"}
    assert env["marvin"]["state"] == "down"


def test_a_failed_run_shows_the_failing_node_and_its_log_tail(
    served: Served, example: Path
) -> None:
    handler = example / HANDLER
    handler.write_text(
        handler.read_text().replace(
            "    hosts_manager = ",
            "    raise RuntimeError('portal saw this')\n    hosts_manager = ",
        )
    )
    token = served.token(KEY)
    form = served.post(f"/p/{KEY}/run", "", data={"token": token}, allow_redirects=False)
    assert form.status_code == 303 and form.headers["Location"] == f"/p/{KEY}"
    assert served.action(KEY)["exit_code"] == 1
    run_id = served.get(f"/api/p/{KEY}/runs").json()[0]["run_id"]
    page = served.get(f"/p/{KEY}/runs/{run_id}").text
    assert "<h2>Failed at node 2 (detectredis)</h2>" in page
    tail = page[page.index('<pre id="failed-log">') :]
    assert "RuntimeError: portal saw this" in tail[: tail.index("</pre>")]
    project_page = served.get(f"/p/{KEY}").text
    assert '<g id="node-2" class="node st-failed" data-node="2">' in project_page


def test_unknown_projects_runs_and_nodes_are_404_pages(served: Served) -> None:
    cases = {
        "/p/nope": "no project &#39;nope&#39; is served here",
        f"/p/{KEY}/runs/20990101-000000-abcdef": (
            f"{KEY} has no run &#39;20990101-000000-abcdef&#39;"
        ),
        f"/p/{KEY}/runs/.last": f"{KEY} has no run &#39;.last&#39;",
        f"/p/{KEY}/runs/last": f"{KEY} has no run &#39;last&#39;",
        f"/p/{KEY}/nodes/99": f"the graph of {KEY} has no node &#39;99&#39;",
        "/nothing/here": "The requested URL was not found on the server.",
    }
    for path, said in cases.items():
        answer = served.get(path)
        assert answer.status_code == 404, path
        assert said in answer.text, path
        assert "Traceback" not in answer.text
    api = served.get("/api/p/nope/runs")
    assert api.status_code == 404 and api.json() == {"error": "no project 'nope' is served here"}


def test_a_project_that_does_not_validate_still_shows_with_its_errors(
    tmp_path: Path, isolated_home: Path
) -> None:
    home = tmp_path / "flows"
    broken = copy_sources(EXAMPLE, home / "broken")
    graph = broken / "src" / "graph.yml"
    graph.write_text(graph.read_text().replace("target: '5'", "target: '9'", 1))
    unreadable = copy_sources(EXAMPLE, home / "unreadable")
    (unreadable / "manifest.json").write_text("{ not json")
    cwd = copy_sources(EXAMPLE, tmp_path / "current")
    set_config(cwd, flow_home=str(home))
    cli = subprocess.run(
        [sys.executable, "-m", "trek_tasks", "validate", "-p", str(broken)],
        env=portal_env(isolated_home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    expected = [
        line.removeprefix("trek: error: ")
        for line in cli.stderr.splitlines()
        if line.startswith("trek: error: ")
    ]
    assert cli.returncode == 2 and expected
    with webserver(cwd=cwd, home=isolated_home) as served:
        listed = [p["key"] for p in served.get("/api/projects").json()]
        assert listed == ["current", "broken", "unreadable"]
        assert served.get("/api/p/broken/validation").json()["errors"] == expected
        page = served.get("/p/broken").text
        shown = re.findall(r'<li class="problem">(.*?)</li>', page)
        assert [unescape(line) for line in shown] == expected
        assert '<g id="node-5"' in page  # the graph is still drawn
        bad = served.get("/p/unreadable")
        assert bad.status_code == 200
        assert "manifest.json:1:3: " in bad.text
        assert served.get("/").status_code == 200


def test_no_secret_from_config_appears_in_any_page_or_answer(served: Served, example: Path) -> None:
    set_config(example, **SECRETS)
    paths = ["/", f"/p/{KEY}", f"/p/{KEY}/environment", f"/p/{KEY}/validation", "/api/projects"]
    run_through_page(served)
    run_id = served.get(f"/api/p/{KEY}/runs").json()[0]["run_id"]
    paths += [f"/p/{KEY}/runs", f"/p/{KEY}/runs/{run_id}", f"/api/p/{KEY}/runs/{run_id}"]
    paths += [f"/p/{KEY}/nodes/{n}" for n in NODE_IDS] + [f"/api/p/{KEY}", f"/api/p/{KEY}/nodes/3"]
    log = example / ".trek" / "env" / "detectredis.log"
    log.write_text(log.read_text() + f"leaked {SECRETS['marvin_secret']}\n")
    answers = {path: served.get(path).text for path in paths}
    answers["live"] = json.dumps(next(served.live(KEY)))
    for path, text in answers.items():
        for name, value in SECRETS.items():
            assert value not in text, f"{name} shown by {path}"
    assert "leaked ..." in answers[f"/p/{KEY}/nodes/2"]


def test_records_are_whole_in_every_answer_while_runs_rewrite_them(
    served: Served, example: Path
) -> None:
    run_through_page(served)
    project = Project.load(example)
    run_id = served.get(f"/api/p/{KEY}/runs").json()[0]["run_id"]
    big = {"blob": "x" * 200_000}
    records = [
        RunResult(
            KEY,
            run_id,
            status,
            {"2": NodeRun("2", "action", "detectredis", status, {}, big)},
            1.0,
            0.5,
        )
        for status in ("done", "failed")
    ]
    stop = threading.Event()

    def rewrite() -> None:
        while not stop.is_set():
            for record in records:
                save_record(project, record)

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        for _ in range(40):
            answer = served.get(f"/api/p/{KEY}/runs/{run_id}")
            assert answer.status_code == 200
            assert answer.json()["status"] in ("done", "failed")
            assert served.get(f"/p/{KEY}").status_code == 200
    finally:
        stop.set()
        writer.join()
    (example / ".trek" / "runs" / "20990101-000000-cut.json").write_text('{"nodes": [')
    assert served.get(f"/api/p/{KEY}/runs").json()[0]["status"] == "unreadable"
    assert served.get(f"/p/{KEY}/runs/20990101-000000-cut").status_code == 404


def test_an_event_stream_line_still_being_written_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "r.events.jsonl"
    path.write_bytes(b'{"event": "started", "pid": 1}\n{"event": "node", "no')
    events, offset = read_lines(path)
    assert events == [{"event": "started", "pid": 1}]
    with open(path, "ab") as handle:
        handle.write(b'de": "2", "status": "running"}\n')
    assert read_lines(path, offset) == (
        [{"event": "node", "node": "2", "status": "running"}],
        path.stat().st_size,
    )


def test_webserver_options(example: Path, isolated_home: Path) -> None:
    def trek(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "trek_tasks", "webserver", *args],
            cwd=example,
            env=portal_env(isolated_home),
            capture_output=True,
            text=True,
            timeout=60,
        )

    remote = trek("--host", "0.0.0.0", "--port", "0")
    assert (remote.returncode, remote.stderr) == (
        2,
        "trek: error: --host 0.0.0.0 is not a loopback address: other machines could "
        "start runs; add --allow-remote to serve there anyway\n",
    )
    port = trek("-p", "5050")
    assert (port.returncode, port.stderr) == (
        2,
        "trek: error: -p names the project folder (as in every trek command); to serve on "
        "port 5050 use --port 5050\n",
    )
    outside = subprocess.run(
        [sys.executable, "-m", "trek_tasks", "webserver", "--port", "0"],
        cwd=example.parent,
        env=portal_env(isolated_home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert outside.returncode == 2
    assert outside.stderr == (
        "trek: error: no project to serve: run it inside a project, pass -p PROJECT or set "
        "flow_home (`trek config --global flow_home FOLDER`)\n"
    )
    with webserver("--host", "0.0.0.0", "--allow-remote", cwd=example, home=isolated_home) as s:
        assert s.proc.stderr is not None
        assert s.proc.stderr.readline().startswith("warning: serving on 0.0.0.0:")
        assert s.url.startswith("http://0.0.0.0:")
        assert s.get("/").status_code == 200  # any Host: the server was opened to others

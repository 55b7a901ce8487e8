"""`trek serve`: cron fire times in their zone (DST included), the event endpoint on the
local Marvin, and a real `trek serve` process running the workflow when it is fired."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from conftest import EXAMPLE, last_error, trek_process
from test_watch import (  # noqa: F401  (fixtures)
    FIRST_RUN_GUARD,
    HANDLER,
    Watching,
    edit_handler,
    example_up,
    watching,
)

from trek_tasks.marvin.inventory import load_inventory
from trek_tasks.marvin.server import local_marvin

TAIPEI = "'*/5 * * * *::Asia/Taipei'"
EVENT_SOURCE = """\
          - type: event
            data: 'network.pentium::host.down::1'
            outputs:
              host: {type: string}
              level: {type: integer, default: 1}
"""
TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d"


def set_sources(project: Path, sources: str) -> None:
    """Replace the trigger's ``sources: []`` in the example's graph with ``sources``."""
    graph = project / "src" / "graph.yml"
    text = graph.read_text()
    assert "        sources: []\n" in text
    graph.write_text(text.replace("        sources: []\n", f"        sources:\n{sources}", 1))


def cron(data: str) -> str:
    return f"          - type: cron\n            data: {data}\n"


def test_next_3_on_a_taipei_cron_prints_three_times_five_minutes_apart(project: Path) -> None:
    set_sources(project, cron(TAIPEI))
    before = datetime.now().astimezone()
    done = trek_process("serve", "--next", "3", cwd=project)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    times = []
    for line in lines:
        assert re.fullmatch(rf"{TIME} Asia/Taipei", line), line
        times.append(datetime.fromisoformat(line.removesuffix(" Asia/Taipei")))
    assert all(t.utcoffset() == timedelta(hours=8) for t in times)
    assert all(t.minute % 5 == 0 and t.second == 0 for t in times)
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [timedelta(minutes=5)] * 2
    assert before < times[0] <= before + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # spring forward, 2026-03-29 02:00 CET -> 03:00 CEST: the skipped 02:00 and 02:30
        # fire once, at the first minute after the gap
        (
            "2026-03-29T00:10Z",
            [
                "2026-03-29 01:30:00+01:00 Europe/Berlin",
                "2026-03-29 03:00:00+02:00 Europe/Berlin",
                "2026-03-29 03:30:00+02:00 Europe/Berlin",
            ],
        ),
        # fall back, 2026-10-25 03:00 CEST -> 02:00 CET: 02:00 and 02:30 fire once, the
        # first time the clocks show them
        (
            "2026-10-24T23:40Z",
            [
                "2026-10-25 02:00:00+02:00 Europe/Berlin",
                "2026-10-25 02:30:00+02:00 Europe/Berlin",
                "2026-10-25 03:00:00+01:00 Europe/Berlin",
            ],
        ),
    ],
)
def test_next_across_a_dst_change_fires_each_wall_time_once(
    project: Path, after: str, expected: list[str]
) -> None:
    set_sources(project, cron("'*/30 * * * *::Europe/Berlin'"))
    done = trek_process("serve", "--next", "3", "--after", after, cwd=project)
    assert (done.returncode, done.stdout.splitlines()) == (0, expected), done.stderr


def test_a_daily_time_inside_the_spring_gap_fires_after_it(project: Path) -> None:
    set_sources(project, cron("'30 2 * * *::Europe/Berlin'") + cron("'0 12 * * *'"))
    done = trek_process("serve", "--next", "3", "--after", "2026-03-28T12:00", cwd=project)
    assert done.stdout.splitlines() == [
        "2026-03-29 03:00:00+02:00 Europe/Berlin  (cron 30 2 * * *::Europe/Berlin)",
        "2026-03-29 12:00:00+00:00 UTC  (cron 0 12 * * *::UTC)",
        "2026-03-30 02:30:00+02:00 Europe/Berlin  (cron 30 2 * * *::Europe/Berlin)",
    ], done.stderr


def test_next_without_a_cron_source_says_nothing_is_scheduled(project: Path) -> None:
    done = trek_process("serve", "--next", "2", cwd=project)
    assert (done.returncode, done.stdout) == (
        0,
        "the trigger has no cron source: nothing is scheduled\n",
    )


@pytest.mark.parametrize("args", [("--next", "1"), ()])
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("'*/5 * * *::Asia/Taipei'", "cron '*/5 * * *' has 4 field(s); write 5 "),
        ("'*/5 * * * *::Asia/Taipie'", "unknown timezone 'Asia/Taipie'; did you mean"),
        ("'61 * * * *'", "cron minute '61': '61' is not in 0-59"),
    ],
)
def test_a_bad_cron_or_zone_stops_serve_at_start_with_file_line_col(
    project: Path, args: tuple[str, ...], data: str, message: str
) -> None:
    set_sources(project, cron(data))
    done = trek_process("serve", *args, cwd=project, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("trek: error: ") == 1, done.stderr
    assert last_error(done).startswith(f"trek: error: src/graph.yml:14:19: {message}")
    assert not (project / ".trek" / "env").exists()  # nothing was started


def test_the_local_marvin_checks_events_against_the_trigger_outputs(tmp_path: Path) -> None:
    inventory = load_inventory(EXAMPLE / "inputs" / "inventory.yml")
    with local_marvin(inventory, tmp_path) as client:
        base = f"{client.url}/api/v1/workflows/host.detect.redis"
        auth = {"Authorization": f"Bearer {client.token}"}

        def post(path: str, body: object = None) -> tuple[int, object]:
            answer = requests.post(base + path, json=body, headers=auth, timeout=10)
            return answer.status_code, answer.json()

        assert post("/events", {"host": "db1"}) == (
            404,
            {"code": 404, "msg": "no `trek serve` has registered workflow 'host.detect.redis'"},
        )
        client.put("/api/v1/workflows/host.detect.redis/trigger", {"events": False, "outputs": {}})
        assert post("/events", {"host": "db1"})[0] == 409
        outputs = {"host": {"type": "string"}, "level": {"type": "integer", "default": 1}}
        client.put(
            "/api/v1/workflows/host.detect.redis/trigger", {"events": True, "outputs": outputs}
        )
        for body, message in [
            ({"host": 3}, "event field 'host' must be string, got int 3"),
            ({"level": 2}, "event field 'host' is missing (the trigger's outputs: host, level)"),
            ({"host": "a", "hots": "b"}, "event field 'hots' is not among the trigger's outputs"),
            (["a"], "the event must be a JSON object of the trigger's fields"),
        ]:
            code, answer = post("/events", body)
            assert code == 400 and isinstance(answer, dict), answer
            assert answer["msg"].startswith(message), answer
        assert requests.post(base + "/events", json={"host": "a"}, timeout=10).status_code == 401
        assert post("/events", {"host": "db1"})[0] == 202
        assert post("/run")[0] == 202
        assert post("/fires/take?wait=0") == (
            200,
            {
                "data": [
                    {"id": 1, "kind": "event", "event": {"host": "db1", "level": 1}},
                    {"id": 2, "kind": "manual", "event": {}},
                ]
            },
        )
        assert post("/fires/take?wait=0") == (200, {"data": []})


def marvin_of(project: Path) -> tuple[str, dict[str, str]]:
    """The local Marvin's workflow URL for the example and a token it accepts."""
    from trek_tasks.environment import Environment
    from trek_tasks.marvin import target
    from trek_tasks.project import Project

    loaded = Project.load(project)
    found = target.resolve(loaded.config, Environment(loaded))
    base = f"{found.url}/api/v1/workflows/host.detect.redis"
    return base, {"Authorization": f"Bearer {found.token}"}


def records(project: Path) -> list[dict[str, object]]:
    """The run records, in the order the runs started."""
    found = [json.loads(p.read_text()) for p in (project / ".trek" / "runs").glob("2*.json")]
    return sorted(found, key=lambda record: float(record["started"]))


def trigger_outputs(record: dict[str, object]) -> object:
    nodes = record["nodes"]
    assert isinstance(nodes, list)
    return next(node["outputs"] for node in nodes if node["id"] == "0")


@pytest.fixture
def served(example_up: Path, watching: list[Watching]) -> Iterator[tuple[Path, Watching]]:  # noqa: F811
    """A `trek serve` of the example (event and far-off cron sources) with stdin a pipe."""
    set_sources(example_up, EVENT_SOURCE + cron("'0 0 1 1 *::Asia/Taipei'"))
    serve = Watching([sys.executable, "-m", "trek_tasks", "serve"], example_up, subprocess.PIPE)
    watching.append(serve)
    serve.wait_for(r"^-- serving host\.detect\.redis: ", FIRST_RUN_GUARD)
    yield example_up, serve


def test_an_event_posted_to_a_running_serve_makes_a_run_record_with_it(
    served: tuple[Path, Watching],
) -> None:
    project, serve = served
    base, auth = marvin_of(project)
    assert f"events: POST {base}/events" in serve.lines[-1]
    answer = requests.post(f"{base}/events", json={"host": 7}, headers=auth, timeout=10)
    assert (answer.status_code, answer.json()["msg"]) == (
        400,
        "event field 'host' must be string, got int 7",
    )
    answer = requests.post(f"{base}/events", json={"host": "db1"}, headers=auth, timeout=10)
    assert answer.status_code == 202, answer.text
    fired = serve.wait_for(r"^-- fire: ")
    assert fired == "-- fire: event 1 from the local Marvin; running host.detect.redis"
    serve.wait_for(r"^Done\. \[host\.detect\.redis\]$")
    [record] = records(project)
    assert record["status"] == "done"
    assert trigger_outputs(record) == {"host": "db1", "level": 1}
    assert serve.interrupt() == 130
    assert serve.lines[-1] == "-- stopped serving"
    from trek_tasks.environment import Environment
    from trek_tasks.project import Project

    assert Environment(Project.load(project)).running_ids()  # left up without --shutdown


def test_serve_applies_edits_between_runs_and_coalesces_plain_fires(
    served: tuple[Path, Watching],
) -> None:
    project, serve = served
    base, auth = marvin_of(project)

    assert serve.proc.stdin is not None
    serve.proc.stdin.write("\n")  # Enter: a manual run with inputs/event.yml
    serve.proc.stdin.flush()
    assert serve.wait_for(r"^-- fire: ") == (
        "-- fire: manual run (Enter); running host.detect.redis"
    )
    # during that run: two manual runs and two events; when it ends both events run and
    # one manual run, the other is skipped and said
    for path, body in (("/run", None), ("/events", {"host": "a"}), ("/run", None)):
        requests.post(base + path, json=body, headers=auth, timeout=10).raise_for_status()
    requests.post(f"{base}/events", json={"host": "b"}, headers=auth, timeout=10)
    serve.wait_for(r"^Done\. ")
    fired = [serve.wait_for(r"^-- (fire|skipped)") for _ in range(4)]
    assert fired == [
        "-- fire: manual 1 from the local Marvin; running host.detect.redis",
        "-- fire: event 2 from the local Marvin; running host.detect.redis",
        "-- skipped manual 3 from the local Marvin: manual 1 from the local Marvin came "
        "first (one cron or manual run)",
        "-- fire: event 4 from the local Marvin; running host.detect.redis",
    ]
    serve.wait_for(r"^Done\. ")
    outputs = [trigger_outputs(record) for record in records(project)]
    assert outputs == [{}, {}, {"host": "a", "level": 1}, {"host": "b", "level": 1}]

    edit_handler(project, "\n# edited\n")
    assert serve.wait_for(r"^-- change: ") == f"-- change: {HANDLER}; applying it"
    serve.wait_for(r"^restart detectredis: handler/handler\.py changed$")
    assert len(records(project)) == 4  # an edit runs nothing by itself
    requests.post(f"{base}/run", headers=auth, timeout=10).raise_for_status()
    serve.wait_for(r"^Done\. ")
    assert len(records(project)) == 5
    assert serve.interrupt() == 130


def test_a_cron_fire_runs_the_workflow_and_a_broken_edit_is_survived(
    example_up: Path,  # noqa: F811
    watching: list[Watching],  # noqa: F811
) -> None:
    set_sources(example_up, cron("'* * * * *::Asia/Taipei'"))
    serve = Watching([sys.executable, "-m", "trek_tasks", "serve"], example_up)
    watching.append(serve)
    serving = r"^-- serving host\.detect\.redis: cron \* \* \* \* \*::Asia/Taipei, "
    serve.wait_for(serving, FIRST_RUN_GUARD)
    due = serve.wait_for(r"^-- next cron fire: ").removeprefix("-- next cron fire: ")
    assert re.fullmatch(rf"{TIME} Asia/Taipei", due) and due.endswith(":00+08:00 Asia/Taipei")
    fired = serve.wait_for(r"^-- fire: ", guard=90)
    assert fired == f"-- fire: cron * * * * *::Asia/Taipei at {due}; running host.detect.redis"
    serve.wait_for(r"^Done\. \[host\.detect\.redis\]$")
    assert [trigger_outputs(record) for record in records(example_up)] == [{}]

    graph = example_up / "src" / "graph.yml"
    good = graph.read_text()
    graph.write_text(good.replace("  nodes:\n", "  nodes: [\n", 1))
    assert serve.wait_for(r"^-- change: ") == "-- change: src/graph.yml; applying it"
    assert re.match(r"^trek: error: src/graph\.yml:\d+:\d+: ", serve.wait_for(r"^trek: error: "))
    graph.write_text(good)
    assert serve.wait_for(r"^-- change: ") == "-- change: src/graph.yml; applying it"
    assert serve.proc.poll() is None
    assert serve.interrupt() == 130
    assert serve.lines[-1] == "-- stopped serving"

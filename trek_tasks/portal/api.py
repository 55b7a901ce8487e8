"""The portal's JSON API (what the pages show) and the live stream of a project's runs.

``GET /api/p/<key>/live`` is a server-sent event stream: a ``data:`` line holding the
run going now (or the last one) with each node's status and the page's last action, sent
whenever either changes. It follows ``.trek/runs/<id>.events.jsonl``, which every run
appends to (``runlog.py``), so a run from a terminal is live on the page too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from trek_tasks.errors import TrekError
from trek_tasks.portal import found, model
from trek_tasks.portal.served import Portal, portal_of
from trek_tasks.runlog import EVENTS_SUFFIX, LiveRun, newest_events, read_lines

if TYPE_CHECKING:
    from flask import Flask, Response

    from trek_tasks.portal.model import Site

POLL = 0.1  # seconds between looks at the event stream
KEEPALIVE = 5.0  # seconds of silence before a comment line (a gone client shows then)


def live(portal: Portal, site: Site) -> Iterator[str]:
    """The stream's messages for ``site``, forever (the client ends it)."""
    path = None
    offset = 0
    run = LiveRun("")
    said = None
    quiet_since = time.monotonic()
    while True:
        newest = newest_events(site.state)
        if newest is not None and newest != path:
            path, offset, run = newest, 0, LiveRun(newest.name.removesuffix(EVENTS_SUFFIX))
        if path is not None:
            events, offset = read_lines(path, offset)
            for event in events:
                run.take(event)
        current = run.to_json() if path is not None else model.current_run(site)
        message = {"run": current, "action": portal.actions.status(site.root)}
        if message != said:
            said = message
            quiet_since = time.monotonic()
            yield f"data: {portal.masked(json.dumps(message))}\n\n"
        elif time.monotonic() - quiet_since > KEEPALIVE:
            quiet_since = time.monotonic()
            yield ": still here\n\n"
        time.sleep(POLL)


def register(app: Flask) -> None:
    from flask import Response, abort, jsonify, request

    portal = portal_of(app)

    def answer(data: Any) -> Response:
        return jsonify(data)

    @app.get("/api/projects")
    def api_projects() -> Response:
        return answer([model.summary(s) for s in portal.sites])

    @app.get("/api/p/<key>")
    def api_project(key: str) -> Response:
        site = found.site(portal, key)
        project, error = model.load(site)
        nodes = (
            [{"id": n.id, "type": n.type, "script_id": n.script_id} for n in project.workflow.nodes]
            if project
            else []
        )
        return answer(
            {
                **model.summary(site),
                "nodes": nodes,
                "current": model.current_run(site),
                "action": portal.actions.status(site.root),
            }
        )

    @app.get("/api/p/<key>/graph.svg")
    def api_graph(key: str) -> Response:
        site = found.site(portal, key)
        project = found.project(site)
        try:
            svg = model.graph_svg(project, model.current_run(site)["nodes"])
        except TrekError as err:
            abort(500, str(err))
        return Response(svg, mimetype="image/svg+xml")

    @app.get("/api/p/<key>/nodes/<node_id>")
    def api_node(key: str, node_id: str) -> Response:
        return answer(found.node(found.site(portal, key), node_id))

    @app.get("/api/p/<key>/runs")
    def api_runs(key: str) -> Response:
        return answer(model.run_history(found.site(portal, key)))

    @app.get("/api/p/<key>/runs/<run_id>")
    def api_run(key: str, run_id: str) -> Response:
        return answer(found.record(found.site(portal, key), run_id))

    @app.get("/api/p/<key>/diff")
    def api_diff(key: str) -> Response:
        site = found.site(portal, key)
        a, b = request.args.get("a", ""), request.args.get("b", "")
        return answer(model.diff_runs(found.record(site, a), found.record(site, b)))

    @app.get("/api/p/<key>/environment")
    def api_environment(key: str) -> Response:
        site = found.site(portal, key)
        project, error = model.load(site)
        return answer(model.environment(project) if project else {"error": error})

    @app.get("/api/p/<key>/validation")
    def api_validation(key: str) -> Response:
        site = found.site(portal, key)
        project, error = model.load(site)
        return answer(model.validation(project, error))

    @app.get("/api/p/<key>/live")
    def api_live(key: str) -> Response:
        site = found.site(portal, key)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return Response(live(portal, site), mimetype="text/event-stream", headers=headers)

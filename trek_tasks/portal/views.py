"""The portal's HTML pages and its two actions (Run, Shut down)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from trek_tasks.errors import TrekError
from trek_tasks.portal import found, model
from trek_tasks.portal.served import TOKEN_HEADER, portal_of

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.wrappers import Response as BaseResponse

    from trek_tasks.portal.model import Site


def when(stamp: Any) -> str:
    """A record's ``started`` (epoch seconds) as local date and time."""
    if not isinstance(stamp, int | float) or stamp <= 0:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def seconds(value: Any) -> str:
    if not isinstance(value, int | float):
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def register(app: Flask) -> None:
    from flask import abort, jsonify, redirect, render_template, request, url_for

    portal = portal_of(app)
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["seconds"] = seconds
    app.jinja_env.filters["pretty"] = model.pretty

    @app.context_processor
    def common() -> dict[str, Any]:
        return {"token": portal.token, "sites": portal.sites}

    @app.get("/status.css")
    def status_css() -> BaseResponse:
        return app.response_class(model.status_css(), mimetype="text/css")

    @app.get("/")
    def projects() -> str:
        return render_template("projects.html", projects=[model.summary(s) for s in portal.sites])

    @app.get("/p/<key>")
    def project_page(key: str) -> str:
        site = found.site(portal, key)
        project, error = model.load(site)
        current = model.current_run(site)
        svg, graph_error = "", ""
        if project is not None:
            try:
                svg = model.graph_svg(project, current["nodes"])
            except TrekError as err:
                graph_error = str(err)
        return render_template(
            "project.html",
            site=site,
            project=project,
            error=error,
            validation=model.validation(project, error),
            current=current,
            svg=svg,
            graph_error=graph_error,
            action=portal.actions.status(site.root),
        )

    @app.get("/p/<key>/nodes/<node_id>")
    def node_page(key: str, node_id: str) -> str:
        site = found.site(portal, key)
        detail = found.node(site, node_id)
        template = "node_panel.html" if request.args.get("panel") else "node.html"
        return render_template(template, site=site, detail=detail)

    @app.get("/p/<key>/runs")
    def runs_page(key: str) -> str:
        site = found.site(portal, key)
        return render_template("runs.html", site=site, runs=model.run_history(site))

    @app.get("/p/<key>/runs/<run_id>")
    def run_page(key: str, run_id: str) -> str:
        site = found.site(portal, key)
        record = found.record(site, run_id)
        project, _ = model.load(site)
        failed = next((n for n in record["nodes"] if n.get("status") == "failed"), None)
        script_id = str(failed.get("script_id", "")) if failed else ""
        tail = model.log_tail(project, script_id) if project else []
        return render_template(
            "run.html",
            site=site,
            record=record,
            nodes=model.ordered_nodes(record),
            failed=failed,
            tail=tail,
        )

    @app.get("/p/<key>/diff")
    def diff_page(key: str) -> str:
        site = found.site(portal, key)
        a, b = request.args.get("a", ""), request.args.get("b", "")
        rows = model.diff_runs(found.record(site, a), found.record(site, b))
        return render_template("diff.html", site=site, a=a, b=b, rows=rows)

    @app.get("/p/<key>/environment")
    def environment_page(key: str) -> str:
        site = found.site(portal, key)
        project, error = model.load(site)
        env = model.environment(project) if project else {"error": error, "scripts": []}
        return render_template("environment.html", site=site, env=env)

    @app.get("/p/<key>/validation")
    def validation_page(key: str) -> str:
        site = found.site(portal, key)
        project, error = model.load(site)
        return render_template(
            "validation.html", site=site, validation=model.validation(project, error)
        )

    def started(site: Site, start: Any) -> BaseResponse | tuple[BaseResponse, int]:
        """Start an action; the project page for a form, JSON for the API (header token)."""
        from trek_tasks.portal.actions import Busy

        from_api = TOKEN_HEADER in request.headers
        try:
            action = start()
        except Busy as err:
            if from_api:
                return jsonify(error=err.message), 409
            abort(409, err.message)
        if from_api:
            return jsonify(action.to_json()), 202
        return redirect(url_for("project_page", key=site.key), code=303)

    @app.post("/p/<key>/run")
    def run_action(key: str) -> BaseResponse | tuple[BaseResponse, int]:
        site = found.site(portal, key)
        reuse = request.form.get("reuse") == "1" or request.args.get("reuse") == "1"
        return started(site, lambda: portal.actions.run(site.root, reuse))

    @app.post("/p/<key>/shutdown")
    def shutdown_action(key: str) -> BaseResponse | tuple[BaseResponse, int]:
        site = found.site(portal, key)
        return started(site, lambda: portal.actions.shutdown(site.root))

    @app.errorhandler(400)
    @app.errorhandler(403)
    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(409)
    @app.errorhandler(500)
    def failed(err: Any) -> tuple[Any, int]:
        from werkzeug.exceptions import HTTPException

        code = (err.code or 500) if isinstance(err, HTTPException) else 500
        what = err.description if isinstance(err, HTTPException) else "internal error"
        if code == 500:
            what = "the portal failed to answer; see the server's terminal"
        if request.path.startswith("/api/"):
            return jsonify(error=what), code
        # no token in an error page: a refused host (DNS rebinding) must not learn it
        return render_template("error.html", code=code, what=what, token=""), code

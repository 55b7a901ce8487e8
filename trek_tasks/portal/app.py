"""The portal's Flask application: the projects it serves, its token, and its guards.

Safety rules (docs/portal.md):
- every request must name a host the server was bound as (a page cannot be fetched
  through a DNS name rebound to 127.0.0.1), unless the server was started for other
  machines (``--allow-remote``);
- every POST must carry the server's token (made at start, embedded in each page) in
  the ``X-Trek-Token`` header or a ``token`` form field, and an ``Origin``, when sent,
  of the same host: a page of another site can neither read the token nor post;
- no CORS header is ever sent; every credential the served projects' config holds is
  masked in every answer, streamed ones included.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from trek_tasks.portal.served import TOKEN_HEADER, Portal
from trek_tasks.resources import templates_dir

if TYPE_CHECKING:
    from flask import Flask, Response


def create_app(portal: Portal, debug: bool = False) -> Flask:
    """The application serving ``portal``'s projects."""
    from flask import Flask, abort, request

    from trek_tasks.portal import api, views

    folder = templates_dir() / "portal"
    app = Flask(
        "trek_tasks.portal",
        template_folder=str(folder),
        static_folder=str(folder / "static"),
        static_url_path="/static",
    )
    app.config.update(TEMPLATES_AUTO_RELOAD=debug, PROPAGATE_EXCEPTIONS=False)
    app.extensions["trek_portal"] = portal

    @app.before_request
    def guard() -> None:
        if portal.hosts and request.host not in portal.hosts:
            abort(400, f"this server does not answer for host {request.host!r}")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            sent = request.headers.get(TOKEN_HEADER) or request.form.get("token", "")
            if not hmac.compare_digest(sent.encode(), portal.token.encode()):
                abort(403, "the request does not carry this page's token; reload the page")
            origin = request.headers.get("Origin")
            if origin and urlsplit(origin).netloc != request.host:
                abort(403, f"a request from {origin} may not change anything here")

    @app.after_request
    def harden(response: Response) -> Response:
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
        )
        response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" makes Origin "null"
        if not response.is_streamed and not response.direct_passthrough:
            text = response.get_data(as_text=True)
            masked = portal.masked(text)
            if masked != text:
                response.set_data(masked)
        return response

    views.register(app)
    api.register(app)
    return app

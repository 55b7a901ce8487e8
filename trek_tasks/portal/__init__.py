"""``trek webserver``: the management portal (Flask, served by werkzeug's threaded server).

``app.create_app`` builds the application around a ``served.Portal`` (the projects,
the token, the hosts it answers for); ``views`` holds the HTML pages and the two
actions (Run, Shut down), ``api`` the same data as JSON and the live stream of a run
(server-sent events), ``model`` what every page shows, ``actions`` the subprocesses the
buttons start. docs/portal.md says what each page shows and how the portal is kept safe.
Flask is imported only here and below, never by ``trek --help``.
"""

"""What the portal shows, as plain data: the pages render it and the API answers it.

Every reader here tolerates a broken project: a project that does not load or validate
is still listed, with its errors; a record that cannot be read shows as unreadable.
Nothing here returns a config credential (``config.CREDENTIAL_KEYS``); ``credentials``
names them so the app can mask them in anything else it serves (a log line).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from html import escape, unescape
from pathlib import Path
from typing import Any

from trek_tasks.config import Config
from trek_tasks.errors import ManyErrors, TrekError
from trek_tasks.project import Project, find_root
from trek_tasks.runlog import live_run, named_record, newest_events, read_record, records
from trek_tasks.state import StateLayout

STATUSES = ("done", "failed", "skipped", "reused", "running", "not run", "interrupted")
_SVG_NODE = re.compile(r'<g id="node\d+" class="node">\s*<title>(.*?)</title>', re.S)


@dataclass(frozen=True)
class Site:
    """One project the portal serves: ``key`` names it in URLs."""

    key: str
    root: Path

    @property
    def state(self) -> StateLayout:
        return StateLayout.for_project(self.root)


def find_sites(current: Path | None, flow_home: Path | None) -> list[Site]:
    """The current project (when there is one) and each project folder directly under
    ``flow_home``, each once; keys are folder names, made unique with ``-2``, ``-3``..."""
    roots: list[Path] = [current] if current else []
    if flow_home is not None and flow_home.is_dir():
        roots += [p for p in sorted(flow_home.iterdir()) if (p / "manifest.json").is_file()]
    sites: list[Site] = []
    keys: set[str] = set()
    for root in dict.fromkeys(r.resolve() for r in roots):
        key, n = root.name, 1
        while key in keys:
            n += 1
            key = f"{root.name}-{n}"
        keys.add(key)
        sites.append(Site(key, root))
    return sites


def flow_home(config: Config) -> Path | None:
    """Config ``flow_home`` as a folder: ``~`` expanded; a relative one is taken from the
    folder holding the ``.trek/`` of the config file that sets it."""
    value = str(config["flow_home"] or "")
    if not value:
        return None
    folder = Path(value).expanduser()
    source = config.sources.get("flow_home")
    if not folder.is_absolute() and source is not None:
        folder = source.parent.parent / folder
    return folder


def current_root(path: Path | None) -> Path | None:
    """The project at or above ``path`` (``-p``; default the current folder): ``-p`` must
    name one, the current folder need not be in one."""
    if path is not None:
        return find_root(path)
    try:
        return find_root(Path.cwd())
    except TrekError:
        return None


def load(site: Site) -> tuple[Project | None, str]:
    """The project, or None and why it cannot be read."""
    try:
        return Project.load(site.root), ""
    except TrekError as err:
        return None, str(err)


def credentials(sites: Iterable[Site]) -> tuple[str, ...]:
    """The credentials the served projects' config sets, and each one's generated local
    Marvin secret: never to be shown."""
    from trek_tasks.config import CREDENTIAL_KEYS

    found: set[str] = set()
    for site in sites:
        try:
            config = Config.load(site.root)
        except TrekError:
            continue
        found.update(str(config[key]) for key in CREDENTIAL_KEYS if config[key])
        try:
            found.add(site.state.marvin_secret.read_text().strip())
        except OSError:
            pass
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


# validation --------------------------------------------------------------------------


def validation(project: Project | None, error: str) -> dict[str, Any]:
    """``trek validate``'s result: every error as ``file:line:col: what``, the warnings."""
    from trek_tasks.validate import validate_project

    if project is None:
        return {"valid": False, "errors": [error], "warnings": []}
    try:
        warnings = validate_project(project)
    except ManyErrors as err:
        return {"valid": False, "errors": [str(e) for e in err.errors], "warnings": []}
    except TrekError as err:
        return {"valid": False, "errors": [str(err)], "warnings": []}
    return {"valid": True, "errors": [], "warnings": warnings}


# environment -------------------------------------------------------------------------


def port_of(url: str) -> int | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).port
    except ValueError:
        return None


def environment(project: Project) -> dict[str, Any]:
    """Each script the graph uses: up, stale (with the reason ``trek run`` gives when it
    restarts it) or down; the local Marvin; the ports they listen on."""
    from trek_tasks.environment import Environment
    from trek_tasks.marvin import target

    try:
        env = Environment(project)
    except TrekError as err:
        return {"error": str(err), "scripts": [], "marvin": None}
    scripts = []
    for script in project.used_scripts():
        reason = env.stale_reason(script)
        state = "up" if reason is None else "down" if reason == "not running" else "stale"
        handle = env.handle(script.id)
        scripts.append(
            {
                "id": script.id,
                "kind": script.kind.name,
                "state": state,
                "reason": reason or "",
                "runtime": handle.runtime if handle else "",
                "port": port_of(handle.url) if handle else None,
            }
        )
    marvin: dict[str, Any]
    if target.is_remote(project.config):
        marvin = {"state": "remote", "reason": "marvin_url is set", "port": None}
    else:
        try:
            reason = env.marvin_stale_reason()
        except TrekError as err:
            reason = str(err)
        saved = env.marvin_state() or {}
        marvin = {
            "state": "up" if reason is None else "down" if reason == "not running" else "stale",
            "reason": reason or "",
            "port": saved.get("port") if reason is None else None,
        }
    return {"error": "", "runtime": env.runtime.name, "scripts": scripts, "marvin": marvin}


def log_tail(project: Project, script_id: str) -> list[str]:
    """The last lines ``script_id`` logged (``trek logs --tail``), as a failed run shows them."""
    from trek_tasks.environment import Environment
    from trek_tasks.localrun import LOG_TAIL, readable

    if not script_id:
        return []
    try:
        return readable(Environment(project).logs(script_id, tail=LOG_TAIL))
    except (TrekError, OSError):
        return []


# runs --------------------------------------------------------------------------------


def run_history(site: Site) -> list[dict[str, Any]]:
    """The recorded runs, newest first: when, result, duration, what failed."""
    runs: list[dict[str, Any]] = []
    for run_id, record in records(site.state):
        if record is None:
            runs.append({"run_id": run_id, "status": "unreadable"})
            continue
        runs.append(
            {
                "run_id": run_id,
                "started": record.get("started", 0),
                "status": record.get("status", ""),
                "duration": record.get("duration", 0),
                "error": record.get("error", ""),
                "nodes": len(record["nodes"]),
            }
        )
    return runs


def last_record(site: Site) -> dict[str, Any] | None:
    return read_record(site.state.last_run)


def run_record(site: Site, run_id: str) -> dict[str, Any] | None:
    """The record of ``run_id`` (None: no such run, or an id that is no file name)."""
    return None if run_id == "last" else named_record(site.state, run_id)


def current_run(site: Site) -> dict[str, Any]:
    """The node statuses to colour the graph with: the run going now, else the last one
    (``run_id`` "" when there is none); a node missing from ``nodes`` has not run."""
    record = last_record(site)
    events = newest_events(site.state)
    if events is not None and (record is None or events.name >= str(record.get("run_id"))):
        return live_run(events).to_json()
    if record is None:
        return {"run_id": "", "status": "", "error": "", "nodes": {}}
    nodes = {
        str(n.get("id")): {k: n.get(k) for k in ("status", "duration", "error", "reason")}
        for n in record["nodes"]
        if isinstance(n, dict)
    }
    return {
        "run_id": str(record.get("run_id", "")),
        "status": str(record.get("status", "")),
        "error": str(record.get("error", "")),
        "nodes": nodes,
    }


def node_detail(project: Project, site: Site, node_id: str) -> dict[str, Any] | None:
    """One node: its script, and in the last run its inputs, outputs, duration, why it was
    skipped or failed; its script's log tail. None for a node the graph does not have."""
    node = project.workflow.node(node_id)
    if node is None:
        return None
    record = last_record(site) or {"nodes": []}
    ran = next(
        (n for n in record["nodes"] if isinstance(n, dict) and str(n.get("id")) == node_id), None
    )
    script = project.scripts.get(node.script_id) if node.script_id else None
    return {
        "node": asdict(node),
        "script": {"id": script.id, "kind": script.kind.name, "version": script.version}
        if script
        else None,
        "run_id": str(record.get("run_id", "")),
        "run": ran,
        "log": log_tail(project, node.script_id),
    }


def ordered_nodes(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A record's nodes in execution order (as the record keeps them)."""
    return [n for n in record["nodes"] if isinstance(n, dict)]


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def diff_runs(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Per node (in ``b``'s order, then ``a``'s others): both statuses and a unified diff
    of the outputs (empty when they are equal)."""
    nodes_a = {str(n.get("id")): n for n in ordered_nodes(a)}
    nodes_b = {str(n.get("id")): n for n in ordered_nodes(b)}
    rows = []
    for node_id in dict.fromkeys([*nodes_b, *nodes_a]):
        na, nb = nodes_a.get(node_id, {}), nodes_b.get(node_id, {})
        lines = difflib.unified_diff(
            pretty(na.get("outputs", {})).splitlines(),
            pretty(nb.get("outputs", {})).splitlines(),
            str(a.get("run_id")),
            str(b.get("run_id")),
            lineterm="",
        )
        rows.append(
            {
                "id": node_id,
                "script_id": nb.get("script_id") or na.get("script_id") or "",
                "a": na.get("status", "absent"),
                "b": nb.get("status", "absent"),
                "diff": list(lines),
            }
        )
    return rows


# graph -------------------------------------------------------------------------------


def status_css() -> str:
    """The style of the status classes (``st-<status>``) of nodes, rows and labels: the
    fills ``trek graph --status`` draws (``graph.STATUS_COLOURS``), so a node a live update
    re-classes looks as the DOT draws it."""
    from trek_tasks.graph import STATUS_COLOURS

    rules = []
    for status, colour in STATUS_COLOURS.items():
        css = "st-" + status.replace(" ", "-")
        rules.append(
            f".{css} polygon, .{css} ellipse, .status.{css} "
            f"{{ fill: {colour}; background: {colour}; }}"
        )
    return "\n".join(rules) + "\n"


def graph_svg(project: Project, nodes: dict[str, dict[str, Any]]) -> str:
    """The graph as ``trek graph --status`` draws it for the node statuses of a run
    (``current_run``'s ``nodes``; its legend names no run, as live updates move on to the
    next), each node's group given the id ``node-<node id>``, ``data-node`` and the class
    of its status."""
    from trek_tasks.graph import render_svg

    statuses = {node_id: str(node.get("status") or "not run") for node_id, node in nodes.items()}
    svg = render_svg(project.workflow, project.name, statuses)
    svg = svg[svg.index("<svg") :]  # no XML prolog or doctype inside the page
    svg = re.sub(r'^<svg width="[^"]*" height="[^"]*"', "<svg", svg)  # the page sizes it

    def tag(found: re.Match[str]) -> str:
        node_id = unescape(found.group(1))
        status = statuses.get(node_id, "not run")
        css = "st-" + status.replace(" ", "-")
        return (
            f'<g id="node-{escape(node_id)}" class="node {css}" data-node="{escape(node_id)}">'
            f"<title>{found.group(1)}</title>"
        )

    return _SVG_NODE.sub(tag, svg)


# the projects page -------------------------------------------------------------------


def summary(site: Site) -> dict[str, Any]:
    """One project for the list: its scripts, last run (when, result, duration) and
    environment state; ``error`` when it cannot be read."""
    project, error = load(site)
    record = last_record(site)
    last = (
        {k: record.get(k) for k in ("run_id", "started", "status", "duration", "error")}
        if record
        else None
    )
    data: dict[str, Any] = {
        "key": site.key,
        "path": str(site.root),
        "name": project.name if project else site.root.name,
        "error": error,
        "last_run": last,
        "scripts": [],
        "environment": None,
    }
    if project is not None:
        data["scripts"] = [
            {"id": s.id, "kind": s.kind.name, "installed": s.installed}
            for s in project.scripts.values()
        ]
        data["environment"] = environment(project)
    return data

"""What a URL names, or a 404 page saying what is not there (pages and API alike)."""

from __future__ import annotations

from typing import Any, NoReturn

from trek_tasks.portal import model
from trek_tasks.portal.model import Site
from trek_tasks.portal.served import Portal
from trek_tasks.project import Project


def _missing(what: str) -> NoReturn:
    from flask import abort

    abort(404, what)


def site(portal: Portal, key: str) -> Site:
    found = portal.site(key)
    if found is None:
        _missing(f"no project {key!r} is served here")
    return found


def project(place: Site) -> Project:
    found, error = model.load(place)
    if found is None:
        _missing(f"{place.key} cannot be read: {error}")
    return found


def node(place: Site, node_id: str) -> dict[str, Any]:
    detail = model.node_detail(project(place), place, node_id)
    if detail is None:
        _missing(f"the graph of {place.key} has no node {node_id!r}")
    return detail


def record(place: Site, run_id: str) -> dict[str, Any]:
    found = model.run_record(place, run_id)
    if found is None:
        _missing(f"{place.key} has no run {run_id!r}")
    return found

"""Trek steps as functions of a project: what task actions and CLI commands call.

They report their progress as events (``trek_tasks.events``), never by printing."""

from __future__ import annotations

from pathlib import Path

from trek_tasks.events import emit
from trek_tasks.files import write_atomic
from trek_tasks.graph import render_images, to_dot
from trek_tasks.pack import script_zip, sha256, stale_script_zips, workflow_members, write_zip
from trek_tasks.project import Project, Script


def graph_file(project: Project) -> Path:
    return project.state.graph


def check_workflow_schema(project: Project) -> None:
    """The workflow file passes its schema (the cross-checks, which need the scripts, are
    left to ``validate``): what a picture of it needs."""
    from trek_tasks.files import load_marked
    from trek_tasks.validate import check_file

    check_file(load_marked(project.entry, project.root), "graph")


def write_graph(project: Project) -> Path:
    """Write ``.trek/graph.gv`` and its images, of a workflow file that passes its schema."""
    check_workflow_schema(project)
    gv = graph_file(project)
    write_atomic(gv, to_dot(project.workflow, project.name))
    images = render_images(gv)
    from trek_tasks.progress import GraphWritten

    emit(GraphWritten(gv, tuple(p.suffix[1:] for p in images)))
    return gv


def write_status_graph(project: Project, run_id: str = "last") -> Path:
    """Write ``.trek/graph-status.gv`` and its images: the graph with each node filled by
    its status in run ``run_id`` (``last``: the last run) and a legend; BadInput naming the
    known runs for an unknown one. ``graph.gv`` stays the plain picture."""
    from trek_tasks.progress import GraphWritten
    from trek_tasks.runlog import record_of

    record = record_of(project.state, run_id)
    check_workflow_schema(project)
    statuses = {
        str(n.get("id")): str(n.get("status") or "not run")
        for n in record["nodes"]
        if isinstance(n, dict)
    }
    gv = project.state.status_graph
    write_atomic(gv, to_dot(project.workflow, project.name, statuses, str(record.get("run_id"))))
    images = render_images(gv)
    emit(GraphWritten(gv, tuple(p.suffix[1:] for p in images)))
    return gv


def pack_workflow_to(project: Project, dest: Path, auto_pos: bool = False) -> str:
    from trek_tasks.progress import Packed

    digest = write_zip(dest, workflow_members(project, auto_pos))
    emit(Packed(dest))
    return digest


def pack_script_to(script: Script, dest: Path) -> str:
    from trek_tasks.progress import Packed, Packing

    emit(Packing(script.path, script.kind.name))
    data = script_zip(script)
    write_atomic(dest, data)
    digest = sha256(data)
    emit(Packed(dest))
    return digest


def remove_stale_zips(project: Project) -> list[Path]:
    """Delete the script zips in ``bin/`` no own script packs into any more."""
    from trek_tasks.progress import StaleZipRemoved

    removed = stale_script_zips(project)
    for path in removed:
        path.unlink(missing_ok=True)
        emit(StaleZipRemoved(path))
    return removed

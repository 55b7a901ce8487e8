"""Trek steps as functions of a project: what task actions and CLI commands call."""

from __future__ import annotations

from pathlib import Path

from trek_tasks.files import display, write_atomic
from trek_tasks.graph import render_images, to_dot
from trek_tasks.pack import script_members, workflow_members, write_zip
from trek_tasks.project import Project, Script


def graph_file(project: Project) -> Path:
    return project.state_dir / "graph.gv"


def write_graph(project: Project) -> Path:
    """Write ``.trek/graph.gv`` and its images."""
    gv = graph_file(project)
    write_atomic(gv, to_dot(project.workflow, project.name))
    images = render_images(gv)
    print(f"Graph written: {display(gv)} ({', '.join(p.suffix[1:] for p in images)})")
    return gv


def pack_workflow_to(project: Project, dest: Path, auto_pos: bool = False) -> str:
    digest = write_zip(dest, workflow_members(project, auto_pos))
    print(f"Success packing, output: {display(dest)}")
    return digest


def pack_script_to(script: Script, dest: Path) -> str:
    print(f"Packing blcks: {display(script.path)}")
    digest = write_zip(dest, script_members(script))
    print(f"Success packing, output: {display(dest)}")
    return digest

"""What a run would do, and why: plan, why."""

from __future__ import annotations

import json
from pathlib import Path

import click

from trek_tasks.commands import command, load_project, path_option


@command()
@path_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
@click.option(
    "--reuse", is_flag=True, help="Also say which nodes `trek run --reuse` would run or reuse."
)
@click.argument("tasks", nargs=-1)
def plan(path: Path | None, as_json: bool, reuse: bool, tasks: tuple[str, ...]) -> None:
    """Say what `trek run` (or `doit TASK...`) would execute now and why; run nothing.

    One line per task that would execute (`up:detectredis: handler/handler.py changed`),
    nothing for what is up to date; with --reuse, one per node run or reused."""
    from trek_tasks.plan import RUN_TASKS, plan_nodes, plan_tasks

    project = load_project(path)
    found = plan_tasks(project, list(tasks) or RUN_TASKS)
    nodes = [n for n in plan_nodes(project) if n.action != "skip"] if reuse else []
    if as_json:
        data = {"tasks": [s.to_json() for s in found.steps], "nodes": [n.to_json() for n in nodes]}
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for step in found.steps:
        click.echo(f"{step.task}: {step.reason}")
    for node in nodes:
        click.echo(node.line())


@command()
@path_option
@click.argument("name")
def why(path: Path | None, name: str) -> None:
    """Say why a task would execute or be up to date (and what runs before it), or what
    `trek run --reuse` would do with a node."""
    from trek_tasks.errors import BadInput
    from trek_tasks.plan import known_tasks, plan_nodes, plan_tasks

    project = load_project(path)
    tasks = known_tasks(project)
    if name in tasks:
        found = plan_tasks(project, [name])
        step = found.step(name)
        click.echo(f"{name}: {step.reason if step else 'up to date'}")
        for before in found.steps:
            if before.task != name:
                click.echo(f"  after {before.task}: {before.reason}")
        return
    node_ids = [node.id for node in project.workflow.nodes]
    if name not in node_ids:
        raise BadInput(
            f"no task or node '{name}'; tasks: {', '.join(tasks)}; nodes: {', '.join(node_ids)}"
        )
    node = next((n for n in plan_nodes(project) if n.node == name), None)
    if node is None:
        kind = next(n.type for n in project.workflow.nodes if n.id == name)
        click.echo(f"node {name} ({kind}): runs no script; `trek run` always passes it")
        return
    click.echo(f"{node.line()} (under --reuse; without it every node runs)")
